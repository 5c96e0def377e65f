package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"

	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/redisx"
	"github.com/leadflow/leadflow/services/platform/telemetry"
)

const instrumentationName = "github.com/leadflow/leadflow"

// Runtime is what a service is built on: configuration, logger, telemetry,
// Redis, the event publisher and the auth policy.
type Runtime struct {
	Name   string
	Config Base
	Logger *slog.Logger
	Redis  redis.UniversalClient
	Events *events.Publisher
	Auth   *AuthPolicy

	tel    *telemetry.Telemetry
	tracer trace.Tracer
	meter  metric.Meter

	connsMu sync.Mutex
	conns   []*grpc.ClientConn // dialled peers, closed with the runtime
}

// Option changes how NewRuntime builds the runtime.
type Option func(*runtimeOptions)

type runtimeOptions struct {
	tel telemetry.Options
}

// WithSpanExporter sends every span to exp synchronously (tests use
// tracetest.NewInMemoryExporter). exp stays the caller's: shutting the runtime
// down does not shut it down, so several runtimes can share one.
func WithSpanExporter(exp sdktrace.SpanExporter) Option {
	return func(o *runtimeOptions) { o.tel.SpanExporter = exp }
}

// WithMetricReader reads metrics with r instead of what OTEL_* says (tests).
func WithMetricReader(r sdkmetric.Reader) Option {
	return func(o *runtimeOptions) { o.tel.MetricReader = r }
}

// WithLogOutput writes the JSON logs to w instead of stderr.
func WithLogOutput(w io.Writer) Option {
	return func(o *runtimeOptions) { o.tel.LogWriter = w }
}

// NewRuntime builds the runtime for base.Service. It does not wait for Redis:
// readiness follows Redis (see Serve).
func NewRuntime(ctx context.Context, base Base, opts ...Option) (*Runtime, error) {
	if base.Service == "" {
		return nil, errors.New("platform: Base.Service is empty")
	}
	if err := base.Validate(); err != nil {
		return nil, err
	}
	var o runtimeOptions
	o.tel.LogLevel = base.LogLevel
	for _, opt := range opts {
		opt(&o)
	}
	auth, err := LoadAuthPolicy(base)
	if err != nil {
		return nil, err
	}
	tel, err := telemetry.Setup(ctx, base.Service, o.tel)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	rdb, err := redisx.New(base.RedisURL, redisx.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	if err != nil {
		_ = tel.Shutdown(ctx)
		return nil, fmt.Errorf("LEADFLOW_REDIS_URL: %w", err)
	}
	rt := &Runtime{
		Name:   base.Service,
		Config: base,
		Logger: tel.Logger,
		Redis:  rdb,
		Auth:   auth,
		tel:    tel,
		tracer: tel.TracerProvider.Tracer(instrumentationName + "/" + base.Service),
		meter:  tel.MeterProvider.Meter(instrumentationName + "/" + base.Service),
	}
	rt.Events = events.NewPublisher(rdb, base.Service)
	if auth.IsDev() {
		rt.Logger.Warn("no auth policy configured: the development token is accepted for every method", "token_hint", "leadflow-dev")
	}
	return rt, nil
}

// Tracer is the service's tracer.
func (rt *Runtime) Tracer() trace.Tracer { return rt.tracer }

// Meter is the service's meter.
func (rt *Runtime) Meter() metric.Meter { return rt.meter }

// TracerProvider is the service's tracer provider.
func (rt *Runtime) TracerProvider() trace.TracerProvider { return rt.tel.TracerProvider }

// Close closes the connections Dial made, closes Redis and flushes telemetry.
// Serve calls it; call it yourself only for a runtime that is never served.
func (rt *Runtime) Close(ctx context.Context) error {
	rt.connsMu.Lock()
	for _, c := range rt.conns {
		// A service may have closed its own already; that error means nothing.
		_ = c.Close()
	}
	rt.conns = nil
	rt.connsMu.Unlock()
	return errors.Join(rt.Redis.Close(), rt.tel.Shutdown(ctx))
}

// statsFilter leaves health checks and reflection out of traces and metrics.
func statsFilter(info *stats.RPCTagInfo) bool { return !publicMethod(info.FullMethodName) }

// Dial connects to another service: traced, authenticated with the client
// token, with a default deadline, and with transparent retries on Unavailable
// for the methods named idempotent ("/pkg.Service/Method"). The connection is
// closed with the runtime, after the workers that use it have stopped.
func (rt *Runtime) Dial(target string, idempotent ...string) (*grpc.ClientConn, error) {
	sc, err := retryServiceConfig(idempotent)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerCreds(rt.Config.ClientToken)),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(rt.tel.TracerProvider),
			otelgrpc.WithMeterProvider(rt.tel.MeterProvider),
			otelgrpc.WithPropagators(rt.tel.Propagator),
			otelgrpc.WithFilter(statsFilter),
		)),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithChainUnaryInterceptor(defaultDeadline(rt.Config.ClientTimeout)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(rt.Config.MaxMessageBytes)),
	)
	if err != nil {
		return nil, err
	}
	rt.connsMu.Lock()
	rt.conns = append(rt.conns, conn)
	rt.connsMu.Unlock()
	return conn, nil
}

func defaultDeadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// retryServiceConfig is the gRPC service config that retries Unavailable, a
// few times with backoff, only on methods that are safe to repeat.
func retryServiceConfig(idempotent []string) (string, error) {
	type name struct {
		Service string `json:"service"`
		Method  string `json:"method,omitempty"`
	}
	var names []name
	for _, m := range idempotent {
		svc, meth, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		if !ok || svc == "" || meth == "" {
			return "", fmt.Errorf("platform: idempotent method %q is not \"/pkg.Service/Method\"", m)
		}
		names = append(names, name{Service: svc, Method: meth})
	}
	// round_robin spreads calls over every address the target resolves to
	// (a headless Service, or dns:/// with several A records).
	cfg := map[string]any{"loadBalancingConfig": []any{map[string]any{"round_robin": map[string]any{}}}}
	if len(names) == 0 {
		b, err := json.Marshal(cfg)
		return string(b), err
	}
	cfg["methodConfig"] = []any{map[string]any{
		"name": names,
		"retryPolicy": map[string]any{
			"maxAttempts":          4,
			"initialBackoff":       "0.1s",
			"maxBackoff":           "1s",
			"backoffMultiplier":    2,
			"retryableStatusCodes": []string{"UNAVAILABLE"},
		},
	}}
	b, err := json.Marshal(cfg)
	return string(b), err
}
