package fault

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/leadflow/leadflow/cmd/internal/load"
	"github.com/leadflow/leadflow/cmd/internal/suitetest"
	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// Fault 5: a 10 s network blackhole between the services and Redis (bytes
// dropped, connections left open): callers get their deadline (no call
// hangs past it), readiness goes NOT_SERVING and back to SERVING, and no
// goroutine leaks once the suite is stopped (goleak).
func TestRedisBlackhole(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	r := platformtest.StartRedis(t)
	rp := StartProxy(t, "redis", r.Addr())
	p, c := suitetest.BootProxied(t, func(string) string { return "redis://" + rp.Addr() + "/0" }, func(_, addr string) string { return addr }, suitetest.Options{})
	capName := capturev1.CaptureService_ServiceDesc.ServiceName
	health := func() healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := healthClient(t, p.Addrs["capture"]).Check(ctx, &healthpb.HealthCheckRequest{Service: capName})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return resp.GetStatus()
	}
	if h := health(); h != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("capture readiness before the blackhole: %s", h)
	}

	blackholeFor := 10 * time.Second
	rp.Blackhole(t)
	start := time.Now()

	// Callers get their deadline.
	const deadline = time.Second
	var calls, onTime int
	var late time.Duration
	codesSeen := map[codes.Code]int{}
	var notServingAt time.Duration = -1
	for i := 0; time.Since(start) < blackholeFor-2*time.Second; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		t0 := time.Now()
		_, err := c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: load.Submission("blackhole", i)})
		took := time.Since(t0)
		cancel()
		calls++
		codesSeen[status.Code(err)]++
		if took <= deadline+500*time.Millisecond {
			onTime++
		} else if took > late {
			late = took
		}
		if notServingAt < 0 && health() == healthpb.HealthCheckResponse_NOT_SERVING {
			notServingAt = time.Since(start)
		}
	}
	for time.Since(start) < blackholeFor {
		if notServingAt < 0 && health() == healthpb.HealthCheckResponse_NOT_SERVING {
			notServingAt = time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rp.Heal(t)
	healedAt := time.Now()
	back := suitetest.Eventually(30*time.Second, func() bool { return health() == healthpb.HealthCheckResponse_SERVING })
	servingAfter := time.Since(healedAt)
	var ok bool
	resumed := suitetest.Eventually(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: load.Submission("blackhole-after", 1)})
		ok = err == nil
		return ok
	})
	t.Logf("blackhole %s: %d calls with a %s deadline, %d returned by deadline+500ms (slowest late one %s), codes %v; readiness NOT_SERVING %s into the blackhole, SERVING again %s after it healed; calls succeed again: %t",
		blackholeFor, calls, deadline, onTime, late.Round(time.Millisecond), codesSeen, notServingAt.Round(time.Millisecond), servingAfter.Round(time.Millisecond), resumed)
	if onTime != calls {
		t.Errorf("%d of %d calls overran their deadline by more than 500 ms (slowest %s)", calls-onTime, calls, late)
	}
	for code := range codesSeen {
		if code != codes.DeadlineExceeded && code != codes.Unavailable {
			t.Errorf("a caller saw %s during the blackhole, want DeadlineExceeded or Unavailable", code)
		}
	}
	if notServingAt < 0 {
		t.Error("capture readiness never went NOT_SERVING during the blackhole")
	}
	if !back || !resumed {
		t.Fatalf("after the blackhole: readiness SERVING %t, calls succeed %t", back, resumed)
	}

	// No goroutine leaks once everything is stopped.
	_ = c.Close()
	p.StopAll()
	closeHealthClients()
	rp.Stop()
	// The redis-server process of the test is still running (stopped at
	// cleanup): its waiter is not a leak.
	redisWaiter := goleak.IgnoreAnyFunction("github.com/leadflow/leadflow/services/platform/platformtest.launch.func1")
	// The fault proxy is the test's tool, not the suite: toxiproxy v2.12.0
	// can leave a toxic's pipe blocked on a send when a proxy stops with
	// bytes in flight (seen once in CI, 2026-11-25).
	proxyPipe := goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run")
	find := func() error {
		var err error
		for i := 0; i < 20; i++ { // lazily exiting goroutines get up to 2 s
			if err = goleak.Find(ignore, redisWaiter, proxyPipe); err == nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}
	// Every leak fails the test, idle gRPC client connections included (the
	// runtime closes the peer connections it dialled).
	if err := find(); err != nil {
		t.Errorf("goroutines leaked after the suite stopped: %v", err)
	}
}
