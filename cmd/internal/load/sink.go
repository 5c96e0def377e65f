package load

import (
	"context"
	"fmt"
	"net"
	"slices"
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
	byName  map[string]int64 // spans per "service.name span-name"
	// durations (ms) per "service.name span-name", for the steps' latency
	durations map[string][]float32
}

func newSink() *Sink {
	return &Sink{srv: grpc.NewServer(), byOwner: map[string]int64{}, byName: map[string]int64{}, durations: map[string][]float32{}}
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
	s := newSink()
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
		s.mu.Lock()
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
			if redisScopes[ss.GetScope().GetName()] {
				r += int64(len(ss.GetSpans()))
				s.byOwner[service] += int64(len(ss.GetSpans()))
			}
			for _, sp := range ss.GetSpans() {
				k := service + " " + sp.GetName()
				s.byName[k]++
				if end, start := sp.GetEndTimeUnixNano(), sp.GetStartTimeUnixNano(); end >= start {
					s.durations[k] = append(s.durations[k], float32(end-start)/1e6)
				}
			}
		}
		s.mu.Unlock()
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
	return perLead(s.byOwner, leads, len(s.byOwner))
}

// SpansByName is the spans per lead of the top most frequent
// "service span-name" pairs, largest first: where a lead's spans (and
// round trips, named by command) come from.
func (s *Sink) SpansByName(leads int64, top int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return perLead(s.byName, leads, top)
}

// perLead formats the top counts of m as "key per-lead" strings, largest first.
func perLead(m map[string]int64, leads int64, top int) []string {
	return topPerLead(m, leads, top, "%s %.2f")
}

// topPerLead formats the top values of m, each divided by leads, with
// format (key, per-lead value), largest first.
func topPerLead(m map[string]int64, leads int64, top int, format string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	out := make([]string, 0, min(top, len(keys)))
	for _, k := range keys[:min(top, len(keys))] {
		out = append(out, fmt.Sprintf(format, k, float64(m[k])/float64(max(leads, 1))))
	}
	return out
}

// SlowestSteps is the latency (p50 / p99, ms) of the top slowest spans by
// p50 among the "service span-name" pairs at least half the leads have:
// where a lead's journey waits.
func (s *Sink) SlowestSteps(leads int64, top int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	type step struct {
		name     string
		p50, p99 float32
	}
	var steps []step
	for k, ds := range s.durations {
		if int64(len(ds))*2 < leads || len(ds) == 0 {
			continue
		}
		sorted := slices.Clone(ds)
		slices.Sort(sorted)
		steps = append(steps, step{k, sorted[len(sorted)/2], sorted[min(len(sorted)-1, len(sorted)*99/100)]})
	}
	sort.Slice(steps, func(i, j int) bool {
		return steps[i].p50 > steps[j].p50 || steps[i].p50 == steps[j].p50 && steps[i].name < steps[j].name
	})
	out := make([]string, 0, min(top, len(steps)))
	for _, st := range steps[:min(top, len(steps))] {
		out = append(out, fmt.Sprintf("%s %.1f/%.1f", st.name, st.p50, st.p99))
	}
	return out
}

// Stop stops the collector.
func (s *Sink) Stop() { s.srv.Stop() }
