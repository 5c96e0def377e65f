package platform_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// echo is a tiny service registered by hand (no proto of its own): it takes
// an EngagementSignal, whose protovalidate rules the interceptor enforces.
type echoServer interface {
	Echo(context.Context, *leadv1.EngagementSignal) (*leadv1.EngagementSignal, error)
}

type echo struct {
	calls   atomic.Int64
	callers chan string
	// hold, when set, makes Echo wait until the file exists (SIGTERM test).
	entered, release string
}

const echoMethod = "/leadflow.test.v1.EchoService/Echo"

func (e *echo) Echo(ctx context.Context, in *leadv1.EngagementSignal) (*leadv1.EngagementSignal, error) {
	e.calls.Add(1)
	if e.callers != nil {
		e.callers <- platform.Caller(ctx)
	}
	if e.release != "" {
		_ = os.WriteFile(e.entered, nil, 0o600)
		for {
			if _, err := os.Stat(e.release); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return in, nil
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "leadflow.test.v1.EchoService",
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(leadv1.EngagementSignal)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				return srv.(echoServer).Echo(ctx, req.(*leadv1.EngagementSignal))
			}
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: echoMethod}, h)
		},
	}},
}

func (e *echo) service() platform.Service {
	return platform.Service{
		Register: func(s *grpc.Server) { s.RegisterService(&echoDesc, e) },
		Names:    []string{echoDesc.ServiceName},
	}
}

func validSignal() *leadv1.EngagementSignal {
	return &leadv1.EngagementSignal{
		Id:         "sig-1",
		LeadId:     "lead-1",
		Type:       leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW,
		OccurredAt: timestamppb.Now(),
	}
}

func callEcho(ctx context.Context, conn *grpc.ClientConn, in *leadv1.EngagementSignal) (*leadv1.EngagementSignal, error) {
	out := new(leadv1.EngagementSignal)
	err := conn.Invoke(ctx, echoMethod, in, out)
	return out, err
}

func waitHealth(t *testing.T, conn *grpc.ClientConn, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(15 * time.Second)
	var last healthpb.HealthCheckResponse_ServingStatus
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil {
			last = resp.GetStatus()
			if last == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("health of %q: want %v, last saw %v", service, want, last)
}

func TestHealthFollowsRedis(t *testing.T) {
	r := platformtest.StartRedis(t)
	rt := platformtest.Runtime(t, "capture", r.URL())
	conn := platformtest.Serve(t, rt, (&echo{}).service())

	waitHealth(t, conn, echoDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	r.Kill()
	waitHealth(t, conn, echoDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	// Liveness ("") stays SERVING: a Redis outage must not restart every pod.
	waitHealth(t, conn, "", healthpb.HealthCheckResponse_SERVING)
	r.Start()
	waitHealth(t, conn, echoDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

func TestInvalidRequestNamesEveryFieldAndSkipsHandler(t *testing.T) {
	r := platformtest.StartRedis(t)
	rt := platformtest.Runtime(t, "capture", r.URL())
	e := &echo{}
	conn := platformtest.Serve(t, rt, e.service())
	ctx := context.Background()

	bad := &leadv1.EngagementSignal{LeadId: "lead-1", Subject: string(make([]byte, 3000))}
	_, err := callEcho(ctx, conn, bad)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
	}
	var fields []string
	for _, v := range platform.FieldViolations(err) {
		fields = append(fields, v.Field)
		if v.Description == "" {
			t.Errorf("violation of %s has no description", v.Field)
		}
	}
	for _, want := range []string{"id", "type", "occurred_at", "subject"} {
		if !slices.Contains(fields, want) {
			t.Errorf("violations %v do not name %q", fields, want)
		}
	}
	if n := e.calls.Load(); n != 0 {
		t.Fatalf("handler ran %d times for an invalid request", n)
	}
	if _, err := callEcho(ctx, conn, validSignal()); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestAuthentication(t *testing.T) {
	r := platformtest.StartRedis(t)
	base := platformtest.Base("capture", r.URL())
	base.AuthTokens = `{"callers":[
	  {"identity":"scoring","token":"scoring-secret-token","allow":["/leadflow.test.v1.EchoService/*"]},
	  {"identity":"reporting","token":"reporting-secret-token","allow":["/leadflow.reporting.v1.ReportingService/*"]}]}`
	rt := platformtest.RuntimeWith(t, base)
	e := &echo{callers: make(chan string, 1)}
	addr := platformtest.ServeAt(t, rt, e.service())
	ctx := context.Background()

	cases := []struct {
		name, token string
		want        codes.Code
	}{
		{"no token", "", codes.Unauthenticated},
		{"unknown token", "not-a-real-token", codes.Unauthenticated},
		{"dev token is off when a policy is set", platform.DevToken, codes.Unauthenticated},
		{"token for another service", "reporting-secret-token", codes.PermissionDenied},
		{"allowed", "scoring-secret-token", codes.OK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := callEcho(ctx, platformtest.Dial(t, addr, c.token), validSignal())
			if got := status.Code(err); got != c.want {
				t.Fatalf("code = %v (%v), want %v", got, err, c.want)
			}
		})
	}
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want only for the allowed caller", n)
	}
	if id := <-e.callers; id != "scoring" {
		t.Fatalf("caller identity = %q, want scoring", id)
	}
	// Health needs no token: probes have none.
	waitHealth(t, platformtest.Dial(t, addr, ""), echoDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

func TestTraceContextCrossesClientServerHopAndStoredLeadContext(t *testing.T) {
	r := platformtest.StartRedis(t)
	exp := platformtest.Spans()
	server := platformtest.Runtime(t, "scoring", r.URL(), platform.WithSpanExporter(exp))
	client := platformtest.Runtime(t, "capture", r.URL(), platform.WithSpanExporter(exp))
	addr := platformtest.ServeAt(t, server, (&echo{}).service())
	t.Cleanup(func() { _ = client.Close(context.Background()) })

	conn, err := client.Dial(addr, echoMethod)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The request that captures a lead, then the journey it starts.
	reqCtx, reqSpan := client.Tracer().Start(context.Background(), "SubmitLead")
	jctx, journey, traceparent := leadtrace.StartJourney(reqCtx, client.Tracer(), "lead.journey", "lead-1")
	if _, err := callEcho(jctx, conn, validSignal()); err != nil {
		t.Fatal(err)
	}
	journey.End()
	reqSpan.End()

	// Hours later, another request (another trace) continues the journey.
	laterCtx, laterReq := server.Tracer().Start(context.Background(), "AcceptLead")
	_, step := leadtrace.Start(laterCtx, server.Tracer(), traceparent, "routing.accept", "lead-1")
	leadtrace.SetOutcome(step, "accepted")
	step.End()
	laterReq.End()

	// The server ends its span after the reply is on its way, so the client
	// can be done first: wait for the span (bounded) before looking.
	spans := exp.GetSpans()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); spans = exp.GetSpans() {
		if slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool { return s.SpanKind == trace.SpanKindServer }) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	journeyTrace := journey.SpanContext().TraceID()
	if journeyTrace == reqSpan.SpanContext().TraceID() {
		t.Fatal("the journey must be its own trace, linked to the request")
	}
	if leadtrace.TraceID(traceparent) != journeyTrace.String() {
		t.Fatalf("traceparent %q is not the journey's trace", traceparent)
	}
	var serverSpan, stepSpan *tracetest.SpanStub
	for i := range spans {
		s := &spans[i]
		switch {
		case s.SpanKind == trace.SpanKindServer && s.Name == "leadflow.test.v1.EchoService/Echo":
			serverSpan = s
		case s.Name == "routing.accept":
			stepSpan = s
		}
	}
	if serverSpan == nil || stepSpan == nil {
		t.Fatalf("missing spans; got %v", names(spans))
	}
	if serverSpan.SpanContext.TraceID() != journeyTrace {
		t.Errorf("server span is in trace %s, want the journey's %s", serverSpan.SpanContext.TraceID(), journeyTrace)
	}
	if stepSpan.SpanContext.TraceID() != journeyTrace || stepSpan.Parent.SpanID() != journey.SpanContext().SpanID() {
		t.Errorf("later step is not a child of the journey span")
	}
	if len(stepSpan.Links) != 1 || stepSpan.Links[0].SpanContext.TraceID() != laterReq.SpanContext().TraceID() {
		t.Errorf("later step is not linked to the request that caused it: %v", stepSpan.Links)
	}
	attrs := map[string]string{}
	for _, a := range stepSpan.Attributes {
		attrs[string(a.Key)] = a.Value.AsString()
	}
	if attrs[leadtrace.AttrLeadID] != "lead-1" || attrs[leadtrace.AttrOutcome] != "accepted" {
		t.Errorf("step attributes = %v", attrs)
	}
	for _, s := range spans {
		if s.Name == "grpc.health.v1.Health/Check" {
			t.Errorf("health checks must not be traced")
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// TestSIGTERMDrainsInFlightCall runs platform.Main in a child process, sends
// it SIGTERM while a call is in flight, and checks that the call completes
// and the process exits cleanly.
func TestSIGTERMDrainsInFlightCall(t *testing.T) {
	if dir := os.Getenv("LEADFLOW_TEST_SIGTERM_DIR"); dir != "" {
		e := &echo{entered: filepath.Join(dir, "entered"), release: filepath.Join(dir, "release")}
		platform.Main("capture", func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
			return e.service(), nil
		})
		return
	}
	r := platformtest.StartRedis(t)
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(platformtest.FreePort(t))
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGTERMDrainsInFlightCall$")
	cmd.Env = append(os.Environ(),
		"LEADFLOW_TEST_SIGTERM_DIR="+dir,
		"LEADFLOW_GRPC_ADDR="+addr,
		"LEADFLOW_REDIS_URL="+r.URL(),
		"LEADFLOW_HEALTH_INTERVAL=100ms",
	)
	out := &platformtest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	conn := platformtest.Dial(t, addr, platform.DevToken)
	waitHealth(t, conn, echoDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	result := make(chan error, 1)
	go func() {
		_, err := callEcho(context.Background(), conn, validSignal())
		result <- err
	}()
	waitFile(t, filepath.Join(dir, "entered"))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The process must still be draining: it may not exit while the call runs.
	select {
	case err := <-exited:
		t.Fatalf("process exited with a call in flight: %v\n%s", err, out)
	case <-time.After(300 * time.Millisecond):
	}
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatalf("in-flight call failed during shutdown: %v\n%s", err, out)
	}
	if err := <-exited; err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("exit: %v\n%s", err, out)
		}
		t.Fatal(err)
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}
