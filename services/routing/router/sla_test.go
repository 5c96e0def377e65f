package router_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/routing/router"
)

func slaConfig(action routingv1.BreachAction, parkAfter int32) *routingv1.RoutingConfig {
	return &routingv1.RoutingConfig{
		DefaultTeamId: "t",
		Teams:         []*routingv1.Team{{Id: "t", TeamLeadRepId: "lead", Reps: []*routingv1.Rep{rep("a", 1, 10), rep("b", 1, 10), rep("lead", 1, 10)}}},
		SlaPolicies: []*routingv1.SlaPolicy{{Id: "p", FirstTouchWithin: durationpb.New(time.Hour), TouchesRequired: 3, TouchesWithin: durationpb.New(48 * time.Hour),
			Action: action, ParkAfterReassignments: parkAfter}},
	}
}

// An SLA breach reassigns the lead exactly once even when two instances
// process the due timer at the same moment.
func TestSLABreachReassignsExactlyOnceAcrossInstances(t *testing.T) {
	e := newEnv(t)
	r1, _ := e.router()
	r2, _ := e.router()
	cfg := slaConfig(routingv1.BreachAction_BREACH_ACTION_REASSIGN, 0)
	cfg.Teams[0].Reps[2].Availability = routingv1.Availability_AVAILABILITY_AWAY // the team lead takes no leads
	apply(t, r1, cfg)
	ctx := context.Background()

	p, s := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	d := route(t, r1, p, s)
	first := d.GetRepId()
	if first == "" || d.GetFirstTouchDue() == nil {
		t.Fatalf("not assigned with a deadline: %v", d)
	}
	// A second lead touched in time never breaches its first-touch SLA.
	p2, s2 := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	d2 := route(t, r1, p2, s2)
	if _, first2, within, _, err := r2.RecordTouch(ctx, p2.GetLeadId(), d2.GetRepId(), routingv1.TouchType_TOUCH_TYPE_CALL, "t1"); err != nil || !first2 || !within {
		t.Fatalf("touch: first=%v within=%v err=%v", first2, within, err)
	}

	// Nothing is due yet.
	if n, err := r1.ProcessSLA(ctx); err != nil || n != 0 {
		t.Fatalf("early ProcessSLA: %d %v", n, err)
	}
	e.clock.Advance(61 * time.Minute)
	var wg sync.WaitGroup
	for _, r := range []interface {
		ProcessSLA(context.Context) (int, error)
	}{r1, r2, r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.ProcessSLA(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()

	a, err := r1.GetAssignment(ctx, p.GetLeadId())
	if err != nil {
		t.Fatal(err)
	}
	if a.GetRepId() == first || a.GetRepId() == "" || a.GetSlaReassignments() != 1 || a.GetSequence() != 2 {
		t.Fatalf("after breach: %v (first holder %s)", a, first)
	}
	ds, _, _ := r1.Decisions(ctx, p.GetLeadId(), 0, 10)
	breaches := 0
	for _, d := range ds {
		if d.GetKind() != routingv1.DecisionKind_DECISION_KIND_SLA_BREACH {
			continue
		}
		breaches++
		for _, c := range d.GetCandidates() {
			if c.GetRepId() == first && (c.GetEligible() || c.GetReasons()[0] != routingv1.IneligibleReason_INELIGIBLE_REASON_BREACHED_BEFORE) {
				t.Fatalf("breaching rep %s explained as %v", first, c)
			}
		}
	}
	if breaches != 1 {
		t.Fatalf("%d SLA breach decisions, want exactly 1: %v", breaches, ds)
	}
	if n := countEvents(t, e, func(ev string) bool { return ev == "sla_breached" }); n != 1 {
		t.Fatalf("%d SlaBreached events, want 1", n)
	}
	// The touched lead stayed where it was.
	if a2, _ := r1.GetAssignment(ctx, p2.GetLeadId()); a2.GetRepId() != d2.GetRepId() || a2.GetSequence() != 1 {
		t.Fatalf("touched lead moved: %v", a2)
	}
	// The new holder's clock runs from the reassignment; breaching again
	// with both reps excluded queues the lead.
	e.clock.Advance(61 * time.Minute)
	if _, err := r2.ProcessSLA(ctx); err != nil {
		t.Fatal(err)
	}
	a, _ = r1.GetAssignment(ctx, p.GetLeadId())
	if a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_QUEUED || len(a.GetRejectedBy()) != 2 {
		t.Fatalf("after second breach: %v", a)
	}
}

func TestSLAParkAndNotify(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	ctx := context.Background()

	apply(t, r, slaConfig(routingv1.BreachAction_BREACH_ACTION_REASSIGN, 1))
	p, s := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	route(t, r, p, s)
	e.clock.Advance(61 * time.Minute)
	if _, err := r.ProcessSLA(ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(61 * time.Minute)
	if _, err := r.ProcessSLA(ctx); err != nil {
		t.Fatal(err)
	}
	a, _ := r.GetAssignment(ctx, p.GetLeadId())
	if a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_PARKED {
		t.Fatalf("after N reassignments the lead should be parked: %v", a)
	}
	entries, _, np, _, _ := r.GetQueue(ctx, "t", 0, 10)
	if np != 1 || !entries[len(entries)-1].GetParked() {
		t.Fatalf("parked list: %v", entries)
	}
	// A manager takes it out of the parked list.
	d, err := r.Reassign(ctx, p.GetLeadId(), "lead", "manager takes it", false)
	if err != nil || d.GetRepId() != "lead" {
		t.Fatalf("reassign parked: %v %v", d, err)
	}

	// NOTIFY_TEAM_LEAD leaves the lead and tells the team lead once.
	apply(t, r, slaConfig(routingv1.BreachAction_BREACH_ACTION_NOTIFY_TEAM_LEAD, 0))
	p, s = lead("DE", leadv1.Heat_HEAT_HOT, 80)
	d = route(t, r, p, s)
	e.clock.Advance(61 * time.Minute)
	for range 2 {
		if _, err := r.ProcessSLA(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a, _ := r.GetAssignment(ctx, p.GetLeadId()); a.GetRepId() != d.GetRepId() {
		t.Fatalf("notify moved the lead: %v", a)
	}
	items, err := r.Store().ReadInbox(ctx, "t", "lead", "", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	notices := 0
	for _, it := range items {
		if it.Kind == "sla_breach" && it.Lead == p.GetLeadId() {
			notices++
		}
	}
	if notices != 1 {
		t.Fatalf("%d breach notices to the team lead, want 1", notices)
	}
}

// A restart of Redis (AOF) and of the routing instances loses neither a
// timer nor a queued lead.
func TestRestartKeepsTimersAndQueue(t *testing.T) {
	e := newEnv(t, platformtest.WithAOF())
	r, _ := e.router()
	cfg := slaConfig(routingv1.BreachAction_BREACH_ACTION_REASSIGN, 0)
	cfg.Teams[0].Reps = []*routingv1.Rep{rep("a", 1, 1), rep("b", 1, 1)}
	cfg.Teams[0].TeamLeadRepId = ""
	apply(t, r, cfg)
	ctx := context.Background()
	var ids []string
	for range 3 {
		p, s := lead("DE", leadv1.Heat_HEAT_WARM, 50)
		route(t, r, p, s)
		ids = append(ids, p.GetLeadId())
	}
	e.redis.Restart()

	r2, _ := e.router() // a new instance: nothing in memory
	if depth, err := r2.Store().QueueDepth(ctx, "t"); err != nil || depth != 1 {
		t.Fatalf("queue after restart: %d %v", depth, err)
	}
	if n, err := r2.SLA().Depth(ctx); err != nil || n != 2 { // one timer per assignment (first touch, then touches), two holders
		t.Fatalf("timers after restart: %d %v", n, err)
	}
	// The first holder breaches; the lead cannot go to the other (full) rep
	// and is queued; the queued lead gets the freed capacity.
	e.clock.Advance(61 * time.Minute)
	if n, err := r2.ProcessSLA(ctx); err != nil || n == 0 {
		t.Fatalf("ProcessSLA after restart: %d %v", n, err)
	}
	a3, _ := r2.GetAssignment(ctx, ids[2])
	if a3.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED {
		t.Fatalf("queued lead not handed out after breach freed capacity: %v", a3)
	}
}

// A timer lost between the team script and its scheduling (a crash) is
// re-created by the sweep; a timer cancelled by a touch is not.
func TestSweepHealsLostTimers(t *testing.T) {
	e := newEnv(t)
	rt := platformtest.Runtime(t, "routing", e.redis.URL())
	r := router.New(router.Deps{Redis: rt.Redis, Tracer: rt.Tracer(), Meter: rt.Meter(), Logger: rt.Logger, Events: rt.Events, Scoring: e.scoring},
		router.Options{Now: e.clock.Now, HealWindow: time.Minute})
	cfg := slaConfig(routingv1.BreachAction_BREACH_ACTION_REASSIGN, 0)
	cfg.Teams[0].TeamLeadRepId = ""
	apply(t, r, cfg)
	ctx := context.Background()
	p1, s1 := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	d1 := route(t, r, p1, s1)
	p2, s2 := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	d2 := route(t, r, p2, s2)
	if _, _, _, _, err := r.RecordTouch(ctx, p2.GetLeadId(), d2.GetRepId(), routingv1.TouchType_TOUCH_TYPE_CALL, ""); err != nil {
		t.Fatal(err)
	}
	// Lose every timer, as a crash right after the scripts would.
	for _, id := range []string{p1.GetLeadId(), p2.GetLeadId()} {
		for _, kind := range []string{"first_touch", "touches"} {
			if _, err := r.SLA().Cancel(ctx, "sla:t:"+id+":1:"+kind); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, _ := r.SLA().Depth(ctx); n != 0 {
		t.Fatalf("%d timers left", n)
	}
	// A sweep checks an assignment once it is a sweep interval old (its
	// router has scheduled the timers by then unless it failed).
	if err := r.SweepOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.SLA().Depth(ctx); n != 0 {
		t.Fatalf("%d timers after a sweep right after the assignments, want 0 (too recent to check)", n)
	}
	e.clock.Advance(6 * time.Second)
	if err := r.SweepOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// p1: first touch (touches after it); p2: touches (its first touch happened).
	if n, _ := r.SLA().Depth(ctx); n != 2 {
		t.Fatalf("%d timers after the sweep, want 2", n)
	}
	// Idempotent: a restarted router's first sweep looks back the whole
	// window and checks them again, and schedules nothing twice.
	r2 := router.New(router.Deps{Redis: rt.Redis, Tracer: rt.Tracer(), Meter: rt.Meter(), Logger: rt.Logger, Events: rt.Events, Scoring: e.scoring},
		router.Options{Now: e.clock.Now, HealWindow: time.Minute})
	if err := r2.SweepOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.SLA().Depth(ctx); n != 2 {
		t.Fatalf("%d timers after a restarted router's sweep, want 2", n)
	}
	e.clock.Advance(61 * time.Minute)
	if _, err := r.ProcessSLA(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := r.GetAssignment(ctx, p1.GetLeadId()); a.GetRepId() == d1.GetRepId() {
		t.Fatalf("healed timer did not fire: %v", a)
	}
	if a, _ := r.GetAssignment(ctx, p2.GetLeadId()); a.GetRepId() != d2.GetRepId() {
		t.Fatalf("touched lead moved: %v", a)
	}
}

// Each sweep checks the assignments made in the sweep interval before the
// last one it checked: a lead assigned between two sweeps, whose timers
// were lost, is healed by the first sweep after it is a sweep interval old,
// and no later sweep of the same router reads it again.
func TestSweepHealsALeadAssignedBetweenSweeps(t *testing.T) {
	e := newEnv(t)
	rt := platformtest.Runtime(t, "routing", e.redis.URL())
	r := router.New(router.Deps{Redis: rt.Redis, Tracer: rt.Tracer(), Meter: rt.Meter(), Logger: rt.Logger, Events: rt.Events, Scoring: e.scoring},
		router.Options{Now: e.clock.Now, HealWindow: time.Minute, SweepInterval: 5 * time.Second})
	cfg := slaConfig(routingv1.BreachAction_BREACH_ACTION_REASSIGN, 0)
	cfg.Teams[0].TeamLeadRepId = ""
	apply(t, r, cfg)
	ctx := context.Background()
	if err := r.SweepOnce(ctx); err != nil {
		t.Fatal(err)
	}
	lose := func(lead string) {
		t.Helper()
		for _, kind := range []string{"first_touch", "touches"} {
			if _, err := r.SLA().Cancel(ctx, "sla:t:"+lead+":1:"+kind); err != nil {
				t.Fatal(err)
			}
		}
	}
	sweep := func(round int, want int64, why string) {
		t.Helper()
		if err := r.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if n, _ := r.SLA().Depth(ctx); n != want {
			t.Fatalf("round %d: %d timers after the sweep %s, want %d", round, n, why, want)
		}
	}
	var leads []string
	for round := range 3 {
		p, s := lead("DE", leadv1.Heat_HEAT_HOT, 80)
		route(t, r, p, s)
		lose(p.GetLeadId())
		leads = append(leads, p.GetLeadId())
		e.clock.Advance(3 * time.Second)
		sweep(round, int64(round), "3 s after the assignment")
		e.clock.Advance(3 * time.Second)
		sweep(round, int64(round+1), "6 s after it")
	}
	// Checked once: timers lost after the check stay lost for this router
	// (a restarted one looks back HealWindow).
	for _, id := range leads {
		lose(id)
	}
	e.clock.Advance(10 * time.Second)
	sweep(3, 0, "after the checked leads' timers were lost again")
}

// An assignment writes one SLA timer: the first-touch one, which schedules
// the touches one when it fires and the assignment stands (met, or only
// notified); a first touch schedules the touches timer at once. Either way
// the touches SLA is enforced at its own due time, once.
func TestTouchesTimerFollowsTheFirstTouchTimer(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	apply(t, r, slaConfig(routingv1.BreachAction_BREACH_ACTION_NOTIFY_TEAM_LEAD, 0))
	ctx := context.Background()
	pending := func(id string, kind string) bool {
		t.Helper()
		missing, err := r.SLA().Missing(ctx, []jobs.Job{{ID: "sla:t:" + id + ":1:" + kind}})
		if err != nil {
			t.Fatal(err)
		}
		return len(missing) == 0
	}
	notices := func(id, kind string) int {
		t.Helper()
		items, err := r.Store().ReadInbox(ctx, "t", "lead", "", 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range items {
			if it.Kind == "sla_breach" && it.Lead == id && it.Note == kind {
				n++
			}
		}
		return n
	}
	// idle: never touched; touched: touched once (of 3) within the hour.
	pi, si := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	idle := route(t, r, pi, si)
	pt, st := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	touched := route(t, r, pt, st)
	for _, id := range []string{pi.GetLeadId(), pt.GetLeadId()} {
		if !pending(id, "first_touch") || pending(id, "touches") {
			t.Fatalf("%s: want only the first-touch timer after the assignment", id)
		}
	}
	if _, _, _, _, err := r.RecordTouch(ctx, pt.GetLeadId(), touched.GetRepId(), routingv1.TouchType_TOUCH_TYPE_CALL, "c1"); err != nil {
		t.Fatal(err)
	}
	if pending(pt.GetLeadId(), "first_touch") || !pending(pt.GetLeadId(), "touches") {
		t.Fatal("after the first touch: want the touches timer instead of the first-touch one")
	}

	// The first hour: the idle lead breaches its first touch (the team lead
	// is told), and its touches timer follows.
	e.clock.Advance(61 * time.Minute)
	if _, err := r.ProcessSLA(ctx); err != nil {
		t.Fatal(err)
	}
	if notices(pi.GetLeadId(), "first_touch") != 1 || !pending(pi.GetLeadId(), "touches") {
		t.Fatalf("idle lead after an hour: %d first-touch notices, touches timer pending %v", notices(pi.GetLeadId(), "first_touch"), pending(pi.GetLeadId(), "touches"))
	}
	// 48 hours: both leads breach their touches SLA, once each.
	e.clock.Advance(48 * time.Hour)
	for range 2 {
		if _, err := r.ProcessSLA(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{pi.GetLeadId(), pt.GetLeadId()} {
		if n := notices(id, "touches"); n != 1 {
			t.Fatalf("%s: %d touches notices, want 1", id, n)
		}
	}
	if n, _ := r.SLA().Depth(ctx); n != 0 {
		t.Fatalf("%d timers left after both SLAs", n)
	}
	if a, _ := r.GetAssignment(ctx, pi.GetLeadId()); a.GetRepId() != idle.GetRepId() {
		t.Fatalf("notify moved the lead: %v", a)
	}
}
