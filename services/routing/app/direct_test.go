package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/routing/app"
)

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !fn(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// deliveries are the (direct, attempt) of the status hand-off spans in the
// trace with id traceID.
func deliveries(spans *tracetest.InMemoryExporter, traceID string) [][2]int64 {
	var out [][2]int64
	for _, s := range spans.GetSpans() {
		if s.Name != "jobs routing-scoring" || s.SpanContext.TraceID().String() != traceID {
			continue
		}
		var d [2]int64
		for _, a := range s.Attributes {
			switch string(a.Key) {
			case "leadflow.jobs.direct":
				if a.Value.AsBool() {
					d[0] = 1
				}
			case "leadflow.jobs.attempt":
				d[1] = a.Value.AsInt64()
			}
		}
		out = append(out, d)
	}
	return out
}

// acceptOne routes lead in trace tp and accepts it for anna.
func acceptOne(t *testing.T, h *harness, lead, tp string) {
	t.Helper()
	ctx := context.Background()
	if _, err := h.client.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: &leadv1.LeadProfile{LeadId: lead, Traceparent: tp}, Score: &leadv1.Score{Total: 70}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.AcceptLead(ctx, &routingv1.AcceptLeadRequest{LeadId: lead, RepId: "anna"}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) callsFor(lead string) int {
	n := 0
	for _, c := range h.scoring.Calls() {
		if c.GetLeadId() == lead {
			n++
		}
	}
	return n
}

// The replica whose write scheduled a status hand-off sends it to scoring
// itself: once, as attempt 1 of a direct delivery in the lead's trace, and
// the queue is left empty. When the call fails, the job goes to the
// workers (attempt 2, after its backoff) and direct hand-offs pause.
func TestStatusHandoffGoesStraightToScoring(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: config()}); err != nil {
		t.Fatal(err)
	}
	q := h.router.Handoff()
	waitFor(t, "the direct deliverer", q.DirectUsable)

	const tp = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	acceptOne(t, h, "direct-1", tp)
	waitFor(t, "the hand-off to be acknowledged", func() bool { d, _ := q.Depth(ctx); return d == 0 && h.callsFor("direct-1") > 0 })
	if n := h.callsFor("direct-1"); n != 1 {
		t.Fatalf("scoring got the WORKING hand-off %d times, want 1", n)
	}
	waitFor(t, "the delivery span", func() bool { return len(deliveries(h.spans, leadtrace.TraceID(tp))) > 0 })
	if got := deliveries(h.spans, leadtrace.TraceID(tp)); len(got) != 1 || got[0] != [2]int64{1, 1} {
		t.Fatalf("deliveries (direct, attempt) in the lead's trace: %v, want one direct attempt 1", got)
	}

	// Scoring fails once: the workers deliver it after the backoff, once,
	// and meanwhile direct hand-offs pause.
	h.scoring.mu.Lock()
	h.scoring.fail = 1
	h.scoring.mu.Unlock()
	const tp2 = "00-6bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	acceptOne(t, h, "direct-2", tp2)
	waitFor(t, "the direct deliverer to pause", func() bool { return !q.DirectUsable() })
	waitFor(t, "the retried hand-off", func() bool { d, _ := q.Depth(ctx); return d == 0 && h.callsFor("direct-2") > 0 })
	if n := h.callsFor("direct-2"); n != 1 {
		t.Fatalf("scoring got the retried hand-off %d times, want 1", n)
	}
	waitFor(t, "both delivery spans", func() bool { return len(deliveries(h.spans, leadtrace.TraceID(tp2))) == 2 })
	got := deliveries(h.spans, leadtrace.TraceID(tp2))
	if !(got[0] == [2]int64{1, 1} && got[1] == [2]int64{0, 2} || got[1] == [2]int64{1, 1} && got[0] == [2]int64{0, 2}) {
		t.Fatalf("deliveries (direct, attempt): %v, want a direct attempt 1 and a worker's attempt 2", got)
	}
}

func TestDirectSettingsAreValidated(t *testing.T) {
	for name, value := range map[string]string{"LEADFLOW_ROUTING_DIRECT_TIMEOUT": "2m", "LEADFLOW_ROUTING_DIRECT_PAUSE": "0s"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			if _, err := app.LoadConfig(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("%s=%s: %v, want an error naming it", name, value, err)
			}
		})
	}
	t.Setenv("LEADFLOW_ROUTING_DIRECT_TIMEOUT", "0")
	if _, err := app.LoadConfig(); err != nil {
		t.Fatalf("0 turns the direct hand-off off: %v", err)
	}
}
