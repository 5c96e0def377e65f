package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// tracedClient is a redisx client on a fresh redis-server whose spans go to
// the returned exporter, synchronously.
func tracedClient(t *testing.T) (redis.UniversalClient, *tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	t.Helper()
	r := platformtest.StartRedis(t)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	c, err := redisx.New(r.URL(), redisx.Options{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, spans, tp
}

// setup names the spans of connection set-up (dial, HELLO, CLIENT SETINFO).
var setup = map[string]bool{"redis.dial": true, "hello": true, "client": true, "redis.pipeline client": true}

// A pipeline (or MULTI) is one client span named by its distinct command
// names, in the lead's trace, without any argument in it; single commands
// keep their redisotel span.
func TestPipelineIsOneSpanWithoutArguments(t *testing.T) {
	c, spans, tp := tracedClient(t)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "step")
	const secret = "person@example.com"
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "k1", secret, 0)
		p.Get(ctx, "k1")
		p.Set(ctx, "k2", secret, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "n")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "k1").Err(); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var names []string
	for _, s := range spans.GetSpans() {
		if s.Name == "step" || setup[s.Name] {
			continue
		}
		if s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %q is not a child of the caller's span", s.Name)
		}
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.String(), secret) {
				t.Errorf("span %q carries an argument: %s=%s", s.Name, a.Key, a.Value.String())
			}
		}
		names = append(names, s.Name)
	}
	want := "redis.pipeline set get|redis.pipeline multi incr exec|get"
	if got := strings.Join(names, "|"); got != want {
		t.Fatalf("spans %q, want %q", got, want)
	}
}

// Waiting for work (blocking pops, blocking stream reads) and liveness
// probes make no span: an idle worker's poll would otherwise be a trace of
// its own several times a second. Commands that do work keep theirs.
func TestWaitsAndProbesMakeNoSpan(t *testing.T) {
	c, spans, tp := tracedClient(t)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "step")
	defer parent.End()
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: "s", Values: []string{"k", "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.BLPop(ctx, 10*time.Millisecond, "empty").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("BLPOP: %v", err)
	}
	if err := c.XRead(ctx, &redis.XReadArgs{Streams: []string{"s", "0"}, Block: 10 * time.Millisecond}).Err(); err != nil {
		t.Fatalf("XREAD BLOCK: %v", err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XRead(ctx, &redis.XReadArgs{Streams: []string{"s", "0"}, Block: -1}).Err(); err != nil {
		t.Fatalf("XREAD: %v", err)
	}
	var names []string
	for _, s := range spans.GetSpans() {
		if !setup[s.Name] {
			names = append(names, s.Name)
		}
	}
	if want := []string{"xadd", "xread"}; !slices.Equal(names, want) {
		t.Fatalf("spans %v, want %v (the XADD and the non-blocking XREAD only)", names, want)
	}
}

// A call made outside any trace (a batch serving many leads, a poller)
// makes no span: it would be a trace of one span. The same calls inside a
// trace make theirs.
func TestCallsOutsideATraceMakeNoSpan(t *testing.T) {
	c, spans, tp := tracedClient(t)
	calls := func(ctx context.Context) {
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Get(ctx, "k")
			p.Incr(ctx, "n")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	calls(context.Background())
	var names []string
	for _, s := range spans.GetSpans() {
		if !setup[s.Name] {
			names = append(names, s.Name)
		}
	}
	if len(names) != 0 {
		t.Fatalf("calls outside a trace made spans %v", names)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "step")
	calls(ctx)
	parent.End()
	for _, s := range spans.GetSpans() {
		if !setup[s.Name] && s.Name != "step" {
			names = append(names, s.Name)
		}
	}
	if want := []string{"set", "redis.pipeline get incr"}; !slices.Equal(names, want) {
		t.Fatalf("calls inside a trace made spans %v, want %v", names, want)
	}
}

// ServerCPU reads a real server's clock, which work makes grow.
func TestServerCPU(t *testing.T) {
	r := platformtest.StartRedis(t)
	rdb := r.Client()
	ctx := context.Background()
	before, err := redisx.ServerCPU(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		pipe := rdb.Pipeline()
		for j := range 1000 {
			pipe.Set(ctx, "k", j, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		after, err := redisx.ServerCPU(ctx, rdb)
		if err != nil {
			t.Fatal(err)
		}
		if after < before {
			t.Fatalf("server CPU went back: %v then %v", before, after)
		}
		if after > before {
			return
		}
	}
	t.Fatalf("server CPU still %v after a million SETs", before)
}

// ReadsProcessed counts round trips: a pipeline is one read, as is each
// single command (the INFO that reads the count is one too).
func TestReadsProcessedCountsRoundTrips(t *testing.T) {
	rdb := platformtest.StartRedis(t).Client()
	ctx := context.Background()
	read := func() int64 {
		n, err := redisx.ReadsProcessed(ctx, rdb)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	pipeline := func() {
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 10 {
				p.Incr(ctx, fmt.Sprint("k", i))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Warm up: a new connection's set-up (HELLO, CLIENT SETINFO) is two
	// more reads.
	read()
	pipeline()
	r0 := read()
	pipeline()
	r1 := read()
	for range 3 {
		rdb.Get(ctx, "k1")
	}
	r2 := read()
	if r1-r0 != 2 || r2-r1 != 4 {
		t.Fatalf("reads: a pipeline of 10 then its INFO +%d (want 2), 3 GETs then INFO +%d (want 4)", r1-r0, r2-r1)
	}
}
