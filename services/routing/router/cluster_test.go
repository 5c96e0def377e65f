package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/durationpb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/routing/router"
)

// TestOnRedisCluster runs routing's scripts (apply config, route, queue when
// full, release hands out the queue, accept, touch, SLA timers, hand-offs,
// sweep) through a runtime on a three-node Redis Cluster: a key a script
// touches outside its hash tag fails here with CROSSSLOT.
func TestOnRedisCluster(t *testing.T) {
	cl := platformtest.StartRedisCluster(t)
	clock := newClock()
	rt := platformtest.Runtime(t, "routing", cl.URL())
	if _, ok := rt.Redis.(*redis.ClusterClient); !ok {
		t.Fatalf("runtime client is %T, want *redis.ClusterClient", rt.Redis)
	}
	r := router.New(router.Deps{Redis: rt.Redis, Tracer: rt.Tracer(), Meter: rt.Meter(), Logger: rt.Logger, Events: rt.Events,
		Scoring: &fakeScoring{}, Capture: &fakeCapture{}}, router.Options{Now: clock.Now, InboxBlock: 200 * time.Millisecond})
	ctx := context.Background()

	cfg := &routingv1.RoutingConfig{
		Teams:         []*routingv1.Team{{Id: "dach", Reps: []*routingv1.Rep{rep("anna", 1, 1), rep("bernd", 1, 1)}}},
		Rules:         []*routingv1.Rule{{Id: "dach", Conditions: &routingv1.RuleConditions{CountryCodes: []string{"DE"}}, Target: &routingv1.Rule_TeamId{TeamId: "dach"}}},
		DefaultTeamId: "dach",
		SlaPolicies: []*routingv1.SlaPolicy{
			{Id: "first-touch", TeamId: "dach", FirstTouchWithin: durationpb.New(time.Hour), Action: routingv1.BreachAction_BREACH_ACTION_REASSIGN},
		},
	}
	apply(t, r, cfg)
	pa, sa := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	pb, sb := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	pc, scc := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	da, db := route(t, r, pa, sa), route(t, r, pb, sb)
	if da.GetRepId() == "" || db.GetRepId() == "" || da.GetRepId() == db.GetRepId() || da.GetFirstTouchDue() == nil {
		t.Fatalf("not one lead per rep with an SLA: %v / %v", da, db)
	}
	if again := route(t, r, pa, sa); again.GetRepId() != da.GetRepId() {
		t.Fatalf("retried RouteLead moved the lead: %v", again)
	}
	// Both reps full: the third lead waits in the team queue.
	if dc := route(t, r, pc, scc); dc.GetRepId() != "" {
		t.Fatalf("third lead assigned past capacity: %v", dc)
	}
	if q, total, _, _, err := r.GetQueue(ctx, "dach", 0, 10); err != nil || total != 1 || len(q) != 1 || q[0].GetLeadId() != pc.GetLeadId() {
		t.Fatalf("queue: %v total=%d err=%v", q, total, err)
	}
	if _, err := r.AcceptLead(ctx, pb.GetLeadId(), db.GetRepId()); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if _, _, _, _, err := r.RecordTouch(ctx, pb.GetLeadId(), db.GetRepId(), routingv1.TouchType_TOUCH_TYPE_CALL, "touch-1"); err != nil {
		t.Fatalf("touch: %v", err)
	}
	// Releasing A frees a seat: the queued lead is handed out.
	if ok, _, err := r.ReleaseLead(ctx, pa.GetLeadId(), "converted"); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	ac, err := r.GetAssignment(ctx, pc.GetLeadId())
	if err != nil || ac.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED || ac.GetRepId() != da.GetRepId() {
		t.Fatalf("queued lead after release: %v %v", ac, err)
	}
	// C is never touched: its SLA timer fires after the hour.
	clock.Advance(61 * time.Minute)
	if n, err := r.ProcessSLA(ctx); err != nil || n == 0 {
		t.Fatalf("ProcessSLA: %d %v", n, err)
	}
	if ds, _, err := r.Decisions(ctx, pc.GetLeadId(), 0, 10); err != nil || len(ds) < 2 {
		t.Fatalf("decisions of the breached lead: %d %v", len(ds), err)
	}
	if _, err := r.ProcessHandoffs(ctx); err != nil {
		t.Fatalf("hand-offs: %v", err)
	}
	if err := r.SweepOnce(ctx); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if _, _, _, err := r.SetRepAvailability(ctx, "anna", routingv1.Availability_AVAILABILITY_AWAY, nil); err != nil {
		t.Fatalf("availability: %v", err)
	}
	if n, err := rt.Redis.XLen(ctx, events.StreamKey).Result(); err != nil || n == 0 {
		t.Fatalf("events: %d %v", n, err)
	}
}
