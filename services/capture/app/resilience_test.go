package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	"github.com/leadflow/leadflow/services/capture/app"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// The hand-off worker runs in Service.Workers: leads reach scoring without
// anyone calling ProcessDue.
func TestWorkerDeliversInTheBackground(t *testing.T) {
	e := newEnv(t, envOpt{
		clock: platformtest.NewClock(time.Now()),
		cfg:   func(c *app.Config) { c.HandoffWorkers = 1 },
	})
	// The worker's queue uses the injected clock; keep it moving with real time.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				e.clock.Advance(20 * time.Millisecond)
			}
		}
	}()
	r := submit(t, e, submission("bg@worker.io", ""), "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.scoring.mu.Lock()
		n := e.scoring.upserts[r.GetLeadId()]
		e.scoring.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not deliver the lead within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Redis going away makes SubmitLead answer Unavailable (retryable); leads
// accepted before the crash survive it (AOF) and still reach scoring.
func TestRedisOutageIsUnavailableAndAcceptedLeadsSurvive(t *testing.T) {
	r := platformtest.StartRedis(t, platformtest.WithAOF())
	e := newEnv(t, envOpt{redis: r})
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, submit(t, e, submission(fmt.Sprintf("aof%d@durable.io", i), ""), fmt.Sprintf("k%d", i)).GetLeadId())
	}
	r.Kill()
	_, err := e.client.SubmitLead(ctxT(t), &capturev1.SubmitLeadRequest{Submission: submission("down@durable.io", ""), IdempotencyKey: "k-down"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("with Redis down: %v", err)
	}
	r.Start()
	// The client retries with the same key once Redis is back.
	var resp *capturev1.SubmitLeadResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err = e.client.SubmitLead(ctxT(t), &capturev1.SubmitLeadRequest{Submission: submission("down@durable.io", ""), IdempotencyKey: "k-down"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	ids = append(ids, resp.GetLeadId())
	e.deliverAll(t)
	for _, id := range ids {
		if e.scoring.upserts[id] == 0 {
			t.Fatalf("lead %s lost", id)
		}
	}
}

func TestLoadConfigNamesTheVariable(t *testing.T) {
	t.Setenv("LEADFLOW_CAPTURE_DEFAULT_REGION", "XX")
	t.Setenv("LEADFLOW_CAPTURE_HANDOFF_MAX_ATTEMPTS", "0")
	_, err := app.LoadConfig()
	if err == nil || !strings.Contains(err.Error(), "LEADFLOW_CAPTURE_DEFAULT_REGION") || !strings.Contains(err.Error(), "LEADFLOW_CAPTURE_HANDOFF_MAX_ATTEMPTS") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("LEADFLOW_CAPTURE_IDEMPOTENCY_TTL", "soon")
	if _, err := app.LoadConfig(); err == nil || !strings.Contains(err.Error(), "LEADFLOW_CAPTURE_IDEMPOTENCY_TTL") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("LEADFLOW_CAPTURE_DEFAULT_REGION", "DE")
	t.Setenv("LEADFLOW_CAPTURE_HANDOFF_MAX_ATTEMPTS", "5")
	t.Setenv("LEADFLOW_CAPTURE_IDEMPOTENCY_TTL", "2h")
	c, err := app.LoadConfig()
	if err != nil || c.DefaultRegion != "DE" || c.IdempotencyTTL != 2*time.Hour || c.VisitorTTL != 720*time.Hour {
		t.Fatalf("config %+v %v", c, err)
	}
}
