package events_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/sdk/trace"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/identity"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

func TestPublishStampsAndRoundTrips(t *testing.T) {
	r := platformtest.StartRedis(t)
	rdb := r.Client()
	p := events.NewPublisher(rdb, "capture")
	tp := trace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(identity.With(context.Background(), "web-forms"), "SubmitLead")
	defer span.End()

	ev := &eventsv1.LeadEvent{LeadId: "lead-1", Payload: &eventsv1.LeadEvent_LeadCaptured{LeadCaptured: &eventsv1.LeadCaptured{Source: "google", Campaign: "q4"}}}
	if err := p.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	entries, err := rdb.XRange(ctx, events.StreamKey, "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("stream: %v %v", entries, err)
	}
	got, err := events.Decode(entries[0].Values)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uuid.Parse(got.GetId()); err != nil {
		t.Errorf("id %q is not a UUID", got.GetId())
	}
	if got.GetProducer() != "capture" || got.GetActor() != "web-forms" || got.GetOccurredAt() == nil {
		t.Errorf("not stamped: %v", got)
	}
	if got.GetTraceId() != span.SpanContext().TraceID().String() {
		t.Errorf("trace id %q, want %s", got.GetTraceId(), span.SpanContext().TraceID())
	}
	if got.GetLeadCaptured().GetCampaign() != "q4" {
		t.Errorf("payload lost: %v", got)
	}
}

func TestDecodeRejectsPoison(t *testing.T) {
	for _, values := range []map[string]any{
		{},
		{"e": "not protobuf \xff\xff"},
		{"e": ""},
	} {
		if _, err := events.Decode(values); err == nil {
			t.Errorf("Decode(%q) accepted a poison entry", values)
		}
	}
}
