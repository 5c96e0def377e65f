package telemetry

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

func TestOTLPGRPCTracesFollowsTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		exporter, tracesProtocol, protocol string
		want                               bool
	}{
		{"otlp", "grpc", "", true},
		{"", "", "grpc", true},
		{"otlp", "", "grpc", true},
		{"otlp", "http/protobuf", "grpc", false}, // the per-signal variable wins
		{"otlp", "", "", false},                  // autoexport's default: http/protobuf
		{"console", "grpc", "", false},
		{"none", "grpc", "", false},
	} {
		t.Run(fmt.Sprintf("%s/%s/%s", tc.exporter, tc.tracesProtocol, tc.protocol), func(t *testing.T) {
			t.Setenv("OTEL_TRACES_EXPORTER", tc.exporter)
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", tc.tracesProtocol)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
			if got := otlpGRPCTraces(); got != tc.want {
				t.Fatalf("otlpGRPCTraces() = %v, want %v", got, tc.want)
			}
		})
	}
}

type countingCollector struct {
	collectortracev1.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (c *countingCollector) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

// A service configured for OTLP over gRPC (the exporter Setup builds itself,
// with its redial bound) whose collector starts only after the service did,
// and after a first export failed, delivers its spans once it is up.
func TestSpansReachACollectorThatStartsLate(t *testing.T) {
	// A free port, nobody listening yet (platformtest would import this
	// package back).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+addr)
	ctx := context.Background()
	var tel *Telemetry
	tel, err = Setup(ctx, "telemetry-test", Options{LogWriter: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(ctx) }()
	tp := tel.TracerProvider.(interface {
		ForceFlush(context.Context) error
	})
	tracer := tel.TracerProvider.Tracer("test")
	_, span := tracer.Start(ctx, "before the collector")
	span.End()
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = tp.ForceFlush(fctx) // nobody listens: this batch is dropped
	cancel()

	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	c := &countingCollector{}
	collectortracev1.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	// Export a span a second until one arrives (bounded; no speed is
	// asserted: the redial bound is seen in make bench-1m's span counts).
	for i := range 60 {
		_, span := tracer.Start(ctx, "after the collector")
		span.End()
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = tp.ForceFlush(fctx)
		cancel()
		if c.spans.Load() > 0 {
			t.Logf("spans arrived after %d flushes", i+1)
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatal("no span reached the collector within a minute of it starting")
}
