package load

import (
	"context"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// export sends req to the sink through its gRPC server, as the suite's
// OTLP exporters do.
func export(t *testing.T, s *Sink, req *collectortracev1.ExportTraceServiceRequest) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := collectortracev1.NewTraceServiceClient(conn).Export(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

func resourceSpans(service string, scopes map[string][]string) *tracev1.ResourceSpans {
	rs := &tracev1.ResourceSpans{Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{
		{Key: "service.name", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: service}}},
	}}}
	for scope, names := range scopes {
		ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: scope}}
		for _, n := range names {
			ss.Spans = append(ss.Spans, &tracev1.Span{Name: n})
		}
		rs.ScopeSpans = append(rs.ScopeSpans, ss)
	}
	return rs
}

// The sink counts every span, the Redis ones per service, and all of them
// per service and span name, as per-lead figures largest first.
func TestSinkCountsSpansByServiceAndName(t *testing.T) {
	s := newSink()
	req := &collectortracev1.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{
		resourceSpans("scoring", map[string][]string{
			"github.com/redis/go-redis/extra/redisotel": {"evalsha", "evalsha", "get"},
			"leadflow": {"scoring.UpsertLead", "scoring.UpsertLead"},
		}),
		resourceSpans("capture", map[string][]string{"leadflow": {"capture.lead", "capture.lead"}}),
	}}
	export(t, s, req)
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.count(b); err != nil {
		t.Fatal(err)
	}
	if s.Spans() != 14 || s.RedisSpans() != 6 {
		t.Fatalf("spans %d, Redis spans %d; want 14, 6", s.Spans(), s.RedisSpans())
	}
	if got := fmt.Sprint(s.RedisSpansByService(4)); got != "[scoring 1.50]" {
		t.Fatalf("Redis spans by service = %s", got)
	}
	want := "[capture capture.lead 1.00 scoring evalsha 1.00 scoring scoring.UpsertLead 1.00]"
	if got := fmt.Sprint(s.SpansByName(4, 3)); got != want {
		t.Fatalf("spans by name = %s, want %s", got, want)
	}
}

// The slowest steps are the span names at least half the leads have,
// slowest p50 first, each with its p50 and p99.
func TestSinkReportsTheSlowestStepsMostLeadsTake(t *testing.T) {
	s := newSink()
	spans := func(name string, ms ...int) []*tracev1.Span {
		var out []*tracev1.Span
		for _, d := range ms {
			out = append(out, &tracev1.Span{Name: name, StartTimeUnixNano: 1e9, EndTimeUnixNano: 1e9 + uint64(d)*1e6})
		}
		return out
	}
	ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "leadflow"}}
	ss.Spans = append(ss.Spans, spans("scoring.deliver.route", 4, 6, 8, 100)...)
	ss.Spans = append(ss.Spans, spans("routing.route", 2, 3, 3, 50)...)
	ss.Spans = append(ss.Spans, spans("scoring.sweep", 900)...) // rare: one lead of four
	rs := &tracev1.ResourceSpans{ScopeSpans: []*tracev1.ScopeSpans{ss}}
	export(t, s, &collectortracev1.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{rs}})
	want := "[? scoring.deliver.route 8.0/100.0 ? routing.route 3.0/50.0]"
	if got := fmt.Sprint(s.SlowestSteps(4, 5)); got != want {
		t.Fatalf("slowest steps = %s, want %s", got, want)
	}
	if got := fmt.Sprint(s.SlowestSteps(4, 1)); got != "[? scoring.deliver.route 8.0/100.0]" {
		t.Fatalf("top 1 = %s", got)
	}
}

// A malformed export request is refused with InvalidArgument.
func TestSinkRefusesAMalformedRequest(t *testing.T) {
	s := newSink()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.serve(lis)
	defer s.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Field 1 (resource_spans) says 100 bytes follow; there are 2.
	err = conn.Invoke(context.Background(), "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &rawMessage{0x0a, 100, 1, 2}, &rawMessage{}, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed request: %v, want InvalidArgument", err)
	}
	if s.Spans() != 0 {
		t.Fatalf("spans %d after a malformed request", s.Spans())
	}
}
