package load

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/leadflow/leadflow/services/platform/redisx"
)

// Sink is an in-process OTLP/gRPC trace collector that counts and discards
// spans: the suite exports its traces to it (batch exporter, as in
// production) so a benchmark runs with tracing fully on and no collector.
type Sink struct {
	collectortracev1.UnimplementedTraceServiceServer
	srv   *grpc.Server
	spans atomic.Int64
	redis atomic.Int64

	mu      sync.Mutex
	byOwner map[string]int64 // go-redis spans per service.name
}

// redisScopes are the instrumentation scopes of the Redis spans: go-redis's
// tracing hook (one span per command) and platform/redisx's (one per
// pipeline or MULTI), i.e. one per Redis round trip.
var redisScopes = map[string]bool{"github.com/redis/go-redis/extra/redisotel": true, redisx.PipelineScope: true}

// StartSink listens on addr (host:port) and serves the trace collector.
func StartSink(addr string) (*Sink, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{srv: grpc.NewServer(), byOwner: map[string]int64{}}
	collectortracev1.RegisterTraceServiceServer(s.srv, s)
	go func() { _ = s.srv.Serve(lis) }()
	return s, nil
}

// Export counts the request's spans.
func (s *Sink) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	var n, r int64
	for _, rs := range req.GetResourceSpans() {
		service := "?"
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
			if redisScopes[ss.GetScope().GetName()] {
				r += int64(len(ss.GetSpans()))
				s.mu.Lock()
				s.byOwner[service] += int64(len(ss.GetSpans()))
				s.mu.Unlock()
			}
		}
	}
	s.spans.Add(n)
	s.redis.Add(r)
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

// Spans is the number of spans received.
func (s *Sink) Spans() int64 { return s.spans.Load() }

// RedisSpans is the number of go-redis spans received: the suite's Redis
// round trips (commands and pipelines; blocking reads and PINGs have no
// span, see platform/redisx).
func (s *Sink) RedisSpans() int64 { return s.redis.Load() }

// RedisSpansByService is RedisSpans per service (the resource's
// service.name), as "service per-lead" strings, largest first.
func (s *Sink) RedisSpansByService(leads int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.byOwner))
	for k := range s.byOwner {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return s.byOwner[names[i]] > s.byOwner[names[j]] })
	out := make([]string, 0, len(names))
	for _, k := range names {
		out = append(out, fmt.Sprintf("%s %.1f", k, float64(s.byOwner[k])/float64(max(leads, 1))))
	}
	return out
}

// Stop stops the collector.
func (s *Sink) Stop() { s.srv.Stop() }
