package leadtrace

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// SpanContext reads a traceparent exactly as the W3C propagator reads the
// header, and Traceparent writes what it writes.
func TestTraceparentReadsAndWritesAsThePropagator(t *testing.T) {
	for _, tp := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-04",       // reserved flag in version 0
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       // upper case
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       // zero span id
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", // a future version
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
		"not a traceparent",
		"",
	} {
		var tc propagation.TraceContext
		want := trace.SpanContextFromContext(tc.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp}))
		got := SpanContext(tp)
		if !got.Equal(want) || got.IsRemote() != want.IsRemote() {
			t.Errorf("SpanContext(%q) = %v, want %v", tp, got, want)
		}
		carrier := propagation.MapCarrier{}
		ctx := ContextWith(context.Background(), tp)
		tc.Inject(ctx, carrier)
		if got := Traceparent(ctx); got != carrier["traceparent"] {
			t.Errorf("Traceparent after %q = %q, want %q", tp, got, carrier["traceparent"])
		}
	}
	if got := Traceparent(ContextWith(context.Background(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("round trip = %q", got)
	}
}
