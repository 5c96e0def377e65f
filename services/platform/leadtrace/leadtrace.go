// Package leadtrace keeps a lead's whole journey in one trace (DESIGN.md §5):
// capture starts the journey and stores its W3C traceparent with the lead;
// every later step, in any service, hours later, is a child of that journey
// span and links to the request that caused it.
package leadtrace

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Span attributes every lead step carries.
const (
	AttrLeadID  = "leadflow.lead.id"
	AttrOutcome = "leadflow.outcome"
)

var tc propagation.TraceContext

// StartJourney starts a lead's journey: a new root span (a new trace) linked to
// the span in ctx (the request that captured the lead). It returns the
// traceparent to store with the lead.
func StartJourney(ctx context.Context, tr trace.Tracer, name, leadID string) (context.Context, trace.Span, string) {
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithAttributes(attribute.String(AttrLeadID, leadID)),
	}
	if link := trace.LinkFromContext(ctx); link.SpanContext.IsValid() {
		opts = append(opts, trace.WithLinks(link))
	}
	ctx, span := tr.Start(ctx, name, opts...)
	return ctx, span, Traceparent(ctx)
}

// Start starts a step of the lead's journey: a child of the journey span named
// by traceparent, linked to the span in ctx when that belongs to another trace.
// With no (or a malformed) traceparent it is a plain child of ctx's span.
// The returned context keeps ctx's deadline and values.
func Start(ctx context.Context, tr trace.Tracer, traceparent, name, leadID string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithAttributes(attribute.String(AttrLeadID, leadID))}
	parent := SpanContext(traceparent)
	if !parent.IsValid() {
		return tr.Start(ctx, name, opts...)
	}
	if cur := trace.SpanContextFromContext(ctx); cur.IsValid() && cur.TraceID() != parent.TraceID() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: cur}))
	} else if cur.IsValid() {
		// Already inside the lead's trace (a hand-off carried it): stay a child of ctx.
		return tr.Start(ctx, name, opts...)
	}
	return tr.Start(trace.ContextWithRemoteSpanContext(ctx, parent), name, opts...)
}

// SpanContext parses a W3C traceparent.
func SpanContext(traceparent string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(tc.Extract(context.Background(), &traceparentCarrier{traceparent}))
}

// traceparentCarrier carries the traceparent header alone, which is all a
// lead's stored context is: a map carrier cost an allocation per parse
// and per format, several times per lead in every service.
type traceparentCarrier struct{ traceparent string }

func (c *traceparentCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.traceparent
	}
	return ""
}

func (c *traceparentCarrier) Set(key, value string) {
	if key == "traceparent" {
		c.traceparent = value
	}
}

func (c *traceparentCarrier) Keys() []string { return []string{"traceparent"} }

// ContextWith returns ctx carrying the remote span context of traceparent, so
// spans and outgoing calls made with it join the lead's trace.
func ContextWith(ctx context.Context, traceparent string) context.Context {
	if sc := SpanContext(traceparent); sc.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}

// Traceparent is the W3C traceparent of ctx's span ("" when there is none).
func Traceparent(ctx context.Context) string {
	var carrier traceparentCarrier
	tc.Inject(ctx, &carrier)
	return carrier.traceparent
}

// TraceID is the trace id (32 hex digits) of a traceparent, or "".
func TraceID(traceparent string) string {
	if sc := SpanContext(traceparent); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// SetOutcome records the step's outcome ("created", "merged", "queued", …).
func SetOutcome(span trace.Span, outcome string) {
	span.SetAttributes(attribute.String(AttrOutcome, outcome))
}

// Fail records err on the span (its message must hold no personal data) and
// marks the step's outcome as "error".
func Fail(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	SetOutcome(span, "error")
}
