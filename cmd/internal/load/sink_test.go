package load

import (
	"context"
	"fmt"
	"testing"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

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
	s := &Sink{byOwner: map[string]int64{}, byName: map[string]int64{}}
	req := &collectortracev1.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{
		resourceSpans("scoring", map[string][]string{
			"github.com/redis/go-redis/extra/redisotel": {"evalsha", "evalsha", "get"},
			"leadflow": {"scoring.UpsertLead", "scoring.UpsertLead"},
		}),
		resourceSpans("capture", map[string][]string{"leadflow": {"capture.lead", "capture.lead"}}),
	}}
	for range 2 {
		if _, err := s.Export(context.Background(), req); err != nil {
			t.Fatal(err)
		}
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
