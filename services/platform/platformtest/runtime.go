package platformtest

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/leadflow/leadflow/services/platform"
)

// Base is a test configuration: loopback listener, short health interval,
// the dev token, peers unset (set the ones a test serves).
func Base(service, redisURL string) platform.Base {
	return platform.Base{
		Service:         service,
		GRPCAddr:        "127.0.0.1:0",
		RedisURL:        redisURL,
		ClientToken:     platform.DevToken,
		ShutdownTimeout: 5 * time.Second,
		MaxDeadline:     30 * time.Second,
		ClientTimeout:   5 * time.Second,
		MaxMessageBytes: 4 << 20,
		HealthInterval:  100 * time.Millisecond,
		LogLevel:        "debug",
	}
}

// Runtime builds a runtime for a test on redisURL; logs go to the test log.
func Runtime(t testing.TB, service, redisURL string, opts ...platform.Option) *platform.Runtime {
	t.Helper()
	return RuntimeWith(t, Base(service, redisURL), opts...)
}

// RuntimeWith builds a runtime from base. A runtime that is never served is
// closed at cleanup.
func RuntimeWith(t testing.TB, base platform.Base, opts ...platform.Option) *platform.Runtime {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(w.stop)
	rt, err := platform.NewRuntime(context.Background(), base, append([]platform.Option{platform.WithLogOutput(w)}, opts...)...)
	if err != nil {
		t.Fatalf("runtime: %v", err)
	}
	return rt
}

// Spans is an in-memory span exporter; pass platform.WithSpanExporter(exp).
func Spans() *tracetest.InMemoryExporter { return tracetest.NewInMemoryExporter() }

// Serve serves svc on a loopback port until the test ends and returns a
// client connection that presents the runtime's client token.
func Serve(t testing.TB, rt *platform.Runtime, svc platform.Service) *grpc.ClientConn {
	t.Helper()
	return Dial(t, ServeAt(t, rt, svc), rt.Config.ClientToken)
}

// ServeAt serves svc on a loopback port until the test ends and returns its address.
func ServeAt(t testing.TB, rt *platform.Runtime, svc platform.Service) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.ServeListener(ctx, lis, svc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("serve %s: %v", rt.Name, err)
		}
	})
	return lis.Addr().String()
}

// Dial connects to addr presenting token ("" for none).
func Dial(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), method, req, reply, cc, o...)
		}), grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), desc, cc, method, o...)
		}))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// LogBuffer collects log output for assertions (e.g. that no e-mail address
// was logged); pass platform.WithLogOutput(buf).
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogWriter forwards logs to t.Log until the test ends (workers may
// still log while they stop; those lines are dropped, not a panic).
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
