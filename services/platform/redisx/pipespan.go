package redisx

import (
	"context"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// PipelineScope is the instrumentation scope of the pipeline spans.
const PipelineScope = "github.com/leadflow/leadflow/services/platform/redisx"

// pipelineSpans traces each pipeline (and MULTI) as one client span named
// "redis.pipeline <command names>", as redisotel names it. redisotel's own
// pipeline hook renders every argument of every command to build that name,
// even with statements off: about 6 % of the suite's CPU under load.
type pipelineSpans struct {
	tracer trace.Tracer
	opts   []trace.SpanStartOption
}

func newPipelineSpans(tp trace.TracerProvider, addr string) *pipelineSpans {
	attrs := []attribute.KeyValue{attribute.String("db.system", "redis")}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		attrs = append(attrs, attribute.String("server.address", host), attribute.String("server.port", port))
	}
	return &pipelineSpans{
		tracer: tp.Tracer(PipelineScope),
		opts:   []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)},
	}
}

func (h *pipelineSpans) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *pipelineSpans) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *pipelineSpans) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ctx, span := h.tracer.Start(ctx, "redis.pipeline "+pipelineSummary(cmds), append(h.opts, trace.WithAttributes(attribute.Int("db.redis.num_cmd", len(cmds))))...)
		defer span.End()
		err := next(ctx, cmds)
		if err != nil && err != redis.Nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	}
}

// pipelineSummary is the first ten distinct command names, in order.
func pipelineSummary(cmds []redis.Cmder) string {
	const limit = 10
	var names [limit]string
	n := 0
	var b strings.Builder
outer:
	for _, c := range cmds {
		if n == limit {
			break
		}
		name := c.FullName()
		for _, seen := range names[:n] {
			if seen == name {
				continue outer
			}
		}
		names[n] = name
		if n > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(name)
		n++
	}
	return b.String()
}

// inTrace is a TracerProvider whose tracers start spans only inside a
// trace. A Redis call made outside any traced operation (a batch that
// coalesces many leads' calls, a poller, a sweeper) would otherwise be a
// trace of one span: noise to whoever reads the traces, and under load
// about a third of the spans a lead costs at moderate rates.
type inTrace struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p inTrace) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return inTraceTracer{t: p.tp.Tracer(name, opts...)}
}

type inTraceTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (t inTraceTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx) // not recording
	}
	return t.t.Start(ctx, name, opts...)
}
