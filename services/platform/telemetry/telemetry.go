// Package telemetry sets up OpenTelemetry traces, metrics and the JSON logger
// for one service, configured by the standard OTEL_* variables.
package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Telemetry holds one service's providers and logger.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	Logger         *slog.Logger

	shutdowns []func(context.Context) error
}

// Options override what the environment says; tests use them.
type Options struct {
	// SpanExporter, when set, receives every span synchronously (tests).
	SpanExporter sdktrace.SpanExporter
	// MetricReader, when set, is used instead of the environment's (tests).
	MetricReader sdkmetric.Reader
	// LogWriter receives the JSON logs; default os.Stderr.
	LogWriter io.Writer
	// LogLevel is debug, info, warn or error.
	LogLevel string
}

// Setup builds the providers. Traces and metrics are exported only when the
// environment asks for it (OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER, or an
// OTLP endpoint); otherwise spans are still created (so trace ids reach logs
// and stored leads) but go nowhere.
func Setup(ctx context.Context, service string, o Options) (*Telemetry, error) {
	t := &Telemetry{Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
	res, err := resource.Merge(
		resource.NewSchemaless(semconv.ServiceName(service), attribute.String("service.namespace", "leadflow")),
		resourceFromEnv(ctx),
	)
	if err != nil {
		return nil, err
	}

	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	switch {
	case o.SpanExporter != nil:
		// The injected exporter belongs to the caller (often shared by
		// several runtimes in one test): the runtime never shuts it down.
		tpOpts = append(tpOpts, sdktrace.WithSyncer(callerOwned{o.SpanExporter}))
	case exportRequested("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
		exp, err := spanExporter(ctx)
		if err != nil {
			return nil, err
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
		}
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	t.TracerProvider = tp
	t.shutdowns = append(t.shutdowns, tp.Shutdown)

	var reader sdkmetric.Reader
	switch {
	case o.MetricReader != nil:
		reader = o.MetricReader
	case exportRequested("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, errors.Join(err, tp.Shutdown(ctx))
		}
		if !autoexport.IsNoneMetricReader(r) {
			reader = r
		}
	}
	if reader != nil {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
		t.MeterProvider = mp
		t.shutdowns = append(t.shutdowns, mp.Shutdown)
	} else {
		t.MeterProvider = metricnoop.NewMeterProvider()
	}

	w := o.LogWriter
	if w == nil {
		w = os.Stderr
	}
	t.Logger = NewLogger(w, o.LogLevel).With("service", service)
	return t, nil
}

// exportRequested reports whether the environment names an exporter for the
// signal, or an OTLP endpoint for it or for all signals.
func exportRequested(exporterVar, endpointVar string) bool {
	if v := os.Getenv(exporterVar); v != "" {
		return v != "none"
	}
	return os.Getenv(endpointVar) != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// CollectorRedial is the longest an OTLP/gRPC span exporter waits between
// attempts to reach its collector. gRPC's default backoff grows to two
// minutes, and every batch exported while the channel waits is dropped:
// after a collector restart a service lost up to two minutes of spans.
const CollectorRedial = 5 * time.Second

// spanExporter is autoexport's, except that an OTLP/gRPC exporter redials
// its collector at least every CollectorRedial.
func spanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if !otlpGRPCTraces() {
		return autoexport.NewSpanExporter(ctx)
	}
	// otlptracegrpc reads the OTEL_EXPORTER_OTLP_* variables itself, as
	// autoexport's would.
	return otlptracegrpc.New(ctx, otlptracegrpc.WithDialOption(grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: CollectorRedial},
		MinConnectTimeout: CollectorRedial,
	})))
}

// otlpGRPCTraces reports whether the environment asks for OTLP traces over
// gRPC (autoexport's default protocol is http/protobuf).
func otlpGRPCTraces() bool {
	if e := os.Getenv("OTEL_TRACES_EXPORTER"); e != "" && e != "otlp" {
		return false
	}
	p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	return p == "grpc"
}

func resourceFromEnv(ctx context.Context) *resource.Resource {
	r, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID())
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES still yields the parts that parsed.
		return r
	}
	return r
}

type callerOwned struct{ sdktrace.SpanExporter }

func (callerOwned) Shutdown(context.Context) error { return nil }

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdowns) - 1; i >= 0; i-- {
		errs = append(errs, t.shutdowns[i](ctx))
	}
	return errors.Join(errs...)
}

// NewLogger is the JSON logger every service uses: it adds trace_id and
// span_id of the context's span to each record logged with a context.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(traceHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})})
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
