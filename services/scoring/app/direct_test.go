package app_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/scoring/app"
	"github.com/leadflow/leadflow/services/scoring/service"
)

// direct turns the direct route hand-off on, as the service's defaults do.
func direct(c *app.Config) { c.DirectRouteTimeout, c.DirectRoutePause = 5*time.Second, time.Minute }

// mql stores a lead that is an MQL on arrival (55 + API interest 5 = 60).
func (e *env) mql(id string) {
	e.t.Helper()
	p := profile(id)
	p.ProductInterests = []string{"api"}
	r := must[*scoringv1.UpsertLeadResponse](e.t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: p}))
	if !r.GetMqlHandoffScheduled() {
		e.t.Fatalf("%s: no hand-off: %+v", id, r)
	}
}

// routed counts the RouteLead requests routing received, per lead.
func (e *env) routed() map[string]int {
	routes, _, _ := e.peer.snapshot()
	n := map[string]int{}
	for _, r := range routes {
		n[r.GetProfile().GetLeadId()]++
	}
	return n
}

func (e *env) routingJobs() int64 {
	e.t.Helper()
	q, _ := e.sc.Queues()
	d, err := q.Depth(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// settled checks a lead's route hand-off left nothing behind: no outbox
// effect, no flush mark.
func (e *env) settled(id string) {
	e.t.Helper()
	rec, err := e.sc.Store().GetLead(e.ctx, id)
	if err != nil || len(rec.Outbox) != 0 {
		e.t.Fatalf("%s: outbox %+v left (%v)", id, rec.Outbox, err)
	}
	marks, err := e.sc.Store().FlushPending(e.ctx, 100)
	for _, m := range marks {
		if m.LeadID == id || err != nil {
			e.t.Fatalf("%s: flush mark left: %+v %v", id, marks, err)
		}
	}
}

// routedOnce checks each lead was routed exactly once and left nothing
// behind (settled).
func (e *env) routedOnce(ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		if e.routed()[id] != 1 {
			e.t.Fatalf("routed %v, want %s once", e.routed(), id)
		}
		e.settled(id)
	}
}

// Route hand-offs go straight to routing, in one RouteLeads call for the
// leads queued together, with no job; until routing answered, each stays in
// its lead's outbox with the flush mark set (what a crash leaves to the
// sweeper); after, it is acknowledged and marked delivered, and its span in
// the lead's trace is the parent of routing's.
func TestDirectRouteHandOffGoesWithoutAJob(t *testing.T) {
	e := setup(t, direct)
	ids := []string{"d1", "d2", "d3"}
	for _, id := range ids {
		e.mql(id)
		rec, err := e.sc.Store().GetLead(e.ctx, id)
		if err != nil || len(rec.Outbox) != 1 || rec.Outbox[0].Key != "route:"+id+":1" {
			t.Fatalf("%s: before routing answered the outbox is %+v (%v), want the route effect", id, rec.Outbox, err)
		}
	}
	if marks, _ := e.sc.Store().FlushPending(e.ctx, 10); len(marks) != 3 {
		t.Fatalf("flush marks before delivery: %+v, want the 3 leads", marks)
	}
	if n := e.routingJobs(); n != 0 {
		t.Fatalf("%d routing jobs scheduled, want none", n)
	}

	if n := e.sc.DeliverDirectRoutes(e.ctx); n != 3 {
		t.Fatalf("delivered %d, want 3", n)
	}
	e.peer.mu.Lock()
	batches := append([]int(nil), e.peer.batches...)
	e.peer.mu.Unlock()
	if len(batches) != 1 || batches[0] != 3 {
		t.Fatalf("RouteLeads calls %v, want one with the 3 leads", batches)
	}
	e.routedOnce(ids...)
	for _, id := range ids {
		if ok, err := e.sc.Store().Delivered(e.ctx, id, "route:"+id+":1"); !ok || err != nil {
			t.Fatalf("%s: not marked delivered (%v)", id, err)
		}
	}
	if n := e.processRouting(); n != 0 || e.routingJobs() != 0 {
		t.Fatalf("processed %d more, %d jobs: nothing should be left", n, e.routingJobs())
	}

	routes, _, _ := e.peer.snapshot()
	spans := map[string]string{} // span id → outcome
	for _, s := range e.spans.GetSpans() {
		if s.Name != "scoring.deliver.route" {
			continue
		}
		for _, a := range s.Attributes {
			if string(a.Key) == leadtrace.AttrOutcome {
				spans[s.SpanContext.SpanID().String()] = a.Value.AsString()
			}
		}
	}
	for _, r := range routes {
		if sc := leadtrace.SpanContext(r.GetTraceparent()); spans[sc.SpanID().String()] != "delivered" || sc.TraceID().String() != leadtrace.TraceID(profile("x").GetTraceparent()) {
			t.Fatalf("lead %s: traceparent %s names no delivered scoring.deliver.route span of its trace (%v)", r.GetProfile().GetLeadId(), r.GetTraceparent(), spans)
		}
	}
}

// A failed call hands its leads to the job queue (which delivers them when
// routing is back) and pauses the direct hand-off; a lead routing refused
// alone goes to the job queue without a pause.
func TestDirectRouteFailureDefersToTheJobQueue(t *testing.T) {
	e := setup(t, direct)
	e.peer.down.Store(true)
	e.mql("f1")
	if n := e.sc.DeliverDirectRoutes(e.ctx); n != 1 {
		t.Fatalf("settled %d, want 1", n)
	}
	if e.routingJobs() != 1 {
		t.Fatalf("routing jobs %d, want f1's", e.routingJobs())
	}
	e.settled("f1")

	// Paused: the next hand-off is a job at once.
	e.mql("f2")
	if n := e.sc.DeliverDirectRoutes(e.ctx); n != 0 || e.routingJobs() != 2 {
		t.Fatalf("while paused: %d sent directly, %d jobs; want 0 and 2", n, e.routingJobs())
	}
	e.peer.down.Store(false)
	if n := e.processRouting(); n != 2 {
		t.Fatalf("jobs delivered %d, want 2", n)
	}
	if r := e.routed(); r["f1"] != 1 || r["f2"] != 1 {
		t.Fatalf("routed %v, want f1 and f2 once", r)
	}

	// After the pause, direct again; one lead refused goes alone to a job.
	e.clock.Advance(2 * time.Minute)
	e.peer.mu.Lock()
	e.peer.failLead = "f3"
	e.peer.mu.Unlock()
	e.mql("f3")
	e.mql("f4")
	if n := e.sc.DeliverDirectRoutes(e.ctx); n != 2 {
		t.Fatalf("settled %d, want f3 and f4", n)
	}
	if r := e.routed(); r["f3"] != 0 || r["f4"] != 1 || e.routingJobs() != 1 {
		t.Fatalf("routed %v with %d jobs: want f4 routed, f3 a job", r, e.routingJobs())
	}
	e.settled("f3")
	e.settled("f4")
	e.mql("f5")
	if n := e.sc.DeliverDirectRoutes(e.ctx); n != 1 || e.routed()["f5"] != 1 {
		t.Fatalf("a refused lead paused the direct hand-off: %d sent, routed %v", n, e.routed())
	}
	e.peer.mu.Lock()
	e.peer.failLead = ""
	e.peer.mu.Unlock()
	e.clock.Advance(2 * time.Minute)
	if n := e.processRouting(); n != 1 || e.routed()["f3"] != 1 {
		t.Fatalf("f3's job: %d delivered, routed %v", n, e.routed())
	}
}

// A process that dies with hand-offs queued for the deliverer loses
// nothing: the flush mark is still set, so the sweeper of the next process
// sends them, once.
func TestDirectRouteQueuedAtACrashIsSweptAndRoutedOnce(t *testing.T) {
	e := setup(t, direct)
	e.mql("c1")
	// The process dies: a new one on the same Redis, with an empty queue.
	e.newService(platformtest.Runtime(t, "scoring", e.redis.URL()))
	if n, err := e.sc.Sweep(e.ctx); err != nil || n != 0 {
		t.Fatalf("first sweep: %d %v", n, err)
	}
	if n, err := e.sc.Sweep(e.ctx); err != nil || n != 1 {
		t.Fatalf("second sweep: %d %v", n, err)
	}
	if n := e.processRouting(); n != 1 {
		t.Fatalf("delivered %d after the sweep, want 1", n)
	}
	if r := e.routed(); r["c1"] != 1 {
		t.Fatalf("routed %v, want c1 once", r)
	}
	e.settled("c1")
}

// A blackholed routing costs the callers nothing: their calls answer while
// the deliverer waits; after the timeout the waiting hand-offs are jobs,
// and the next ones go to the job queue without a call (the pause).
func TestDirectRouteBlackholeHoldsNoCaller(t *testing.T) {
	e := setup(t, direct, func(c *app.Config) { c.DirectRouteTimeout = 3 * time.Second })
	e.peer.mu.Lock()
	e.peer.hang, e.peer.entered = make(chan struct{}), make(chan struct{}, 8)
	e.peer.mu.Unlock()
	ctx, stop := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.sc.RunDirectRoutes(ctx) })
	defer func() { stop(); wg.Wait() }()

	e.mql("h1")
	<-e.peer.entered
	e.mql("h2") // would wait for routing's answer if flushes waited for routing
	if e.peer.inFlight.Load() == 0 {
		t.Fatal("h2's call answered only after routing gave up on h1: callers wait for routing")
	}
	for deadline := time.Now().Add(30 * time.Second); e.routingJobs() < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("routing jobs %d, want h1's and h2's", e.routingJobs())
		}
	}
	calls := 1 + len(e.peer.entered)
	e.mql("h3")
	if e.routingJobs() != 3 || 1+len(e.peer.entered) != calls {
		t.Fatalf("after a timeout h3 went to routing (jobs %d, calls %d → %d), want a job at once", e.routingJobs(), calls, 1+len(e.peer.entered))
	}
	e.peer.mu.Lock()
	e.peer.hang = nil
	e.peer.mu.Unlock()
	stop()
	wg.Wait()
	if n := e.processRouting(); n != 3 {
		t.Fatalf("jobs delivered %d, want 3", n)
	}
	e.routedOnce("h1", "h2", "h3")
}

// At shutdown the queued hand-offs become jobs, and later flushes schedule
// jobs: nothing waits on a stopped deliverer.
func TestDirectRoutesQueuedAtShutdownBecomeJobs(t *testing.T) {
	e := setup(t, direct)
	e.mql("s1")
	e.mql("s2")
	ctx, stop := context.WithCancel(e.ctx)
	stop()
	if err := e.sc.RunDirectRoutes(ctx); err != nil {
		t.Fatal(err)
	}
	if e.routingJobs() != 2 {
		t.Fatalf("routing jobs %d, want s1's and s2's", e.routingJobs())
	}
	e.mql("s3")
	if e.routingJobs() != 3 {
		t.Fatalf("after shutdown a hand-off was not scheduled as a job (%d jobs)", e.routingJobs())
	}
	if n := e.processRouting(); n != 3 {
		t.Fatalf("delivered %d, want 3", n)
	}
	e.routedOnce("s1", "s2", "s3")
}

// A routing without RouteLeads gets its leads through the job queue, which
// sends them one by one.
func TestDirectRouteOnAnOlderRoutingFallsBackToTheJobs(t *testing.T) {
	e := setup(t, direct)
	e.peer.noBatch.Store(true)
	e.mql("o1")
	e.mql("o2")
	if n := e.processRouting(); n != 4 { // 2 deferred, then 2 jobs
		t.Fatalf("settled %d, want 2 deferred and 2 delivered by jobs", n)
	}
	if r := e.routed(); r["o1"] != 1 || r["o2"] != 1 {
		t.Fatalf("routed %v, want each once", r)
	}
}

// A QUALIFIED lead's deal hand-off goes to pipeline from the replica that
// wrote it: once, as a direct attempt 1 in the lead's trace, with nothing
// left for the workers (the clock is frozen, so they could not have taken
// it: a born-claimed job is due only when its lease ends).
func TestDealHandOffGoesStraightToPipeline(t *testing.T) {
	e := setup(t, func(c *app.Config) { c.DirectDealTimeout, c.DirectDealPause = 5*time.Second, time.Minute })
	_, q := e.sc.Queues()
	ctx, cancel := context.WithCancel(e.ctx)
	stopped := make(chan struct{})
	go func() { _ = q.RunDirect(ctx, jobs.PerJob(e.sc.DeliverPipeline)); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	for end := time.Now().Add(10 * time.Second); !q.DirectUsable(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the direct deliverer did not start")
		}
	}
	qualifyReady(t, e, "dd1")
	setStatus(t, e, "dd1", leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, "", "qual-dd1")
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, _, deals := e.peer.snapshot()
		d, _ := q.Depth(e.ctx)
		if deals["dd1"] == 1 && d == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("deals %v, queue depth %d: want one deal for dd1 and an empty queue", deals, d)
		}
	}
	if n := e.processPipeline(); n != 0 {
		t.Fatalf("the workers claimed %d deal jobs, want 0", n)
	}
	var direct int
	for _, s := range e.spans.GetSpans() {
		if s.Name != "jobs "+service.PipelineQueue || s.SpanContext.TraceID().String() != leadtrace.TraceID(profile("dd1").GetTraceparent()) {
			continue
		}
		for _, a := range s.Attributes {
			if string(a.Key) == "leadflow.jobs.direct" && a.Value.AsBool() {
				direct++
			}
		}
	}
	if direct != 1 {
		t.Fatalf("%d direct deal deliveries in the lead's trace, want 1", direct)
	}
}

func TestDirectSettingsAreValidated(t *testing.T) {
	for name, value := range map[string]string{
		"LEADFLOW_SCORING_DIRECT_ROUTE_TIMEOUT": "-1s", "LEADFLOW_SCORING_DIRECT_DEAL_TIMEOUT": "2m", "LEADFLOW_SCORING_DIRECT_DEAL_PAUSE": "0s",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			if _, err := app.LoadConfig(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("%s=%s: %v, want an error naming it", name, value, err)
			}
		})
	}
}
