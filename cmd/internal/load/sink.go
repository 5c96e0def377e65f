package load

import (
	"context"
	"net"
	"sync/atomic"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// Sink is an in-process OTLP/gRPC trace collector that counts and discards
// spans: the suite exports its traces to it (batch exporter, as in
// production) so a benchmark runs with tracing fully on and no collector.
type Sink struct {
	collectortracev1.UnimplementedTraceServiceServer
	srv   *grpc.Server
	spans atomic.Int64
	redis atomic.Int64
}

// redisScope is the instrumentation scope of go-redis's tracing hook: one
// span per command or pipeline sent, i.e. per Redis round trip.
const redisScope = "github.com/redis/go-redis/extra/redisotel"

// StartSink listens on addr (host:port) and serves the trace collector.
func StartSink(addr string) (*Sink, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{srv: grpc.NewServer()}
	collectortracev1.RegisterTraceServiceServer(s.srv, s)
	go func() { _ = s.srv.Serve(lis) }()
	return s, nil
}

// Export counts the request's spans.
func (s *Sink) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	var n, r int64
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
			if ss.GetScope().GetName() == redisScope {
				r += int64(len(ss.GetSpans()))
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
// round trips (commands and pipelines, blocking reads included).
func (s *Sink) RedisSpans() int64 { return s.redis.Load() }

// Stop stops the collector.
func (s *Sink) Stop() { s.srv.Stop() }
