package app_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/leadflow/leadflow/services/capture/app"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// withDirect runs the replica's hand-off workers and its direct deliverer.
func withDirect(c *app.Config) {
	c.HandoffWorkers, c.DirectTimeout, c.DirectPause = 1, 5*time.Second, time.Minute
}

// upserts is how many times scoring got lead id.
func (e *env) upserts(id string) int {
	e.scoring.mu.Lock()
	defer e.scoring.mu.Unlock()
	return e.scoring.upserts[id]
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !fn(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// The replica that wrote a lead hands it to scoring itself: each revision's
// hand-off is delivered once, by the direct deliverer (its delivery span
// says so, in the lead's trace), with the profile the write left (never read
// back) and its revision, and leaves nothing in the queue.
func TestHandoffGoesStraightToScoring(t *testing.T) {
	e := newEnv(t, envOpt{cfg: withDirect})
	waitFor(t, "the direct deliverer", e.app.Queue.DirectUsable)
	ctx := context.Background()
	before, err := redisx.CommandCalls(ctx, e.redis.Client())
	if err != nil {
		t.Fatal(err)
	}
	r := submit(t, e, submission("direct@straight.io", ""), "")
	waitFor(t, "the lead to reach scoring", func() bool { return e.upserts(r.GetLeadId()) > 0 })
	waitFor(t, "the hand-off to be acknowledged", func() bool { d, _ := e.app.Queue.Depth(ctx); return d == 0 })
	after, err := redisx.CommandCalls(ctx, e.redis.Client())
	if err != nil {
		t.Fatal(err)
	}
	// The profile the write left is sent as it is, with its revision.
	if n := after["hgetall"] - before["hgetall"]; n != 0 {
		t.Errorf("the lead was read back %d times for its direct hand-off, want 0", n)
	}
	e.scoring.mu.Lock()
	got := e.scoring.profiles[r.GetLeadId()]
	e.scoring.mu.Unlock()
	if got.GetRevision() != 1 || got.GetJobTitle() != "Head of Data" || got.GetOrganisation().GetCountryCode() != "SE" {
		t.Errorf("scoring got %v; want the new lead's profile at revision 1", got)
	}
	// A merge hands on revision 2, also directly.
	submit(t, e, submission("direct@straight.io", "+46 8 123 456 78"), "")
	waitFor(t, "the merge to reach scoring", func() bool { return e.upserts(r.GetLeadId()) == 2 })
	e.scoring.mu.Lock()
	got = e.scoring.profiles[r.GetLeadId()]
	e.scoring.mu.Unlock()
	if got.GetRevision() != 2 {
		t.Errorf("the merge's profile has revision %d, want 2", got.GetRevision())
	}
	// Each delivery span ends after its acknowledgement.
	directSpans := func() int {
		n := 0
		for _, s := range e.spans.GetSpans() {
			if s.Name != "jobs capture-to-scoring" || s.SpanContext.TraceID().String() != r.GetTraceId() {
				continue
			}
			for _, a := range s.Attributes {
				if a.Key == "leadflow.jobs.direct" && a.Value.AsBool() {
					n++
				}
			}
		}
		return n
	}
	waitFor(t, "two direct delivery spans in the lead's trace (the new lead and the merge)", func() bool { return directSpans() == 2 })
	// The clock has not moved, so the workers could not have had it (a
	// born-claimed job is due only after its lease); and it is not sent again.
	e.clock.Advance(time.Minute)
	e.deliverAll(t)
	if n := e.upserts(r.GetLeadId()); n != 2 {
		t.Fatalf("scoring got the lead %d times, want 2 (once per revision)", n)
	}
}

// A scoring that fails the direct hand-off leaves it to the workers, with
// their backoff, and pauses direct hand-offs: the lead reaches scoring once
// scoring is back, and a lead submitted during the pause goes to the workers
// at once. Nothing is lost or sent twice.
func TestDirectHandoffFailureFallsBackToTheWorkers(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	e := newEnv(t, envOpt{cfg: withDirect, metrics: reader, clock: platformtest.NewClock(time.Now())})
	waitFor(t, "the direct deliverer", e.app.Queue.DirectUsable)
	e.scoring.setDown(true)
	first := submit(t, e, submission("first@fallback.io", ""), "")
	waitFor(t, "the pause", func() bool { return !e.app.Queue.DirectUsable() })
	if n := metricSum(t, reader, "leadflow.jobs.direct", "outcome", "deferred"); n != 1 {
		t.Errorf("deferred direct hand-offs: %d, want 1", n)
	}
	e.scoring.setDown(false)
	second := submit(t, e, submission("second@fallback.io", ""), "")
	// The paused replica's worker takes the second lead at once; the first
	// waits for its backoff (500ms ± 20 %).
	waitFor(t, "the second lead to reach scoring", func() bool { return e.upserts(second.GetLeadId()) == 1 })
	e.clock.Advance(time.Second)
	waitFor(t, "the first lead to reach scoring", func() bool { return e.upserts(first.GetLeadId()) == 1 })
	waitFor(t, "the queue to empty", func() bool { d, _ := e.app.Queue.Depth(context.Background()); return d == 0 })
	e.clock.Advance(time.Minute)
	e.deliverAll(t)
	if a, b := e.upserts(first.GetLeadId()), e.upserts(second.GetLeadId()); a != 1 || b != 1 {
		t.Fatalf("scoring got the leads %d and %d times, want once each", a, b)
	}
	if !e.app.Queue.DirectUsable() {
		t.Error("direct hand-offs did not resume after the pause")
	}
}

func TestDirectTimeoutIsValidated(t *testing.T) {
	for _, c := range []struct {
		timeout, pause time.Duration
		ok             bool
	}{{0, 0, true}, {2 * time.Second, 10 * time.Second, true}, {-time.Second, time.Second, false}, {2 * time.Minute, time.Second, false}, {time.Second, 0, false}} {
		cfg := app.DefaultConfig()
		cfg.DirectTimeout, cfg.DirectPause = c.timeout, c.pause
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("timeout %v pause %v: %v", c.timeout, c.pause, err)
		}
	}
}
