package router_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
)

func TestReassignWithinAndAcrossTeams(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	apply(t, r, baseConfig())
	ctx := context.Background()
	p, s := lead("DE", leadv1.Heat_HEAT_WARM, 40)
	d := route(t, r, p, s)
	from := d.GetRepId()

	// Rotation inside the team never picks the current holder.
	d, err := r.Reassign(ctx, p.GetLeadId(), "", "holiday cover", false)
	if err != nil || d.GetRepId() == from || d.GetRepId() == "" || d.GetKind() != routingv1.DecisionKind_DECISION_KIND_MANUAL_REASSIGN {
		t.Fatalf("rotation reassign: %v %v", d, err)
	}
	// To a named rep of another team.
	d, err = r.Reassign(ctx, p.GetLeadId(), "dave", "speaks the language", false)
	if err != nil || d.GetRepId() != "dave" || d.GetTeamId() != "us" {
		t.Fatalf("cross-team reassign: %v %v", d, err)
	}
	a, err := r.GetAssignment(ctx, p.GetLeadId())
	if err != nil || a.GetTeamId() != "us" || a.GetRepId() != "dave" {
		t.Fatalf("assignment after move: %v %v", a, err)
	}
	for _, team := range []string{"dach", "us"} {
		loads, _ := r.Store().Loads(ctx, team)
		if sum(loads) != 1 && team == "us" || sum(loads) != 0 && team == "dach" {
			t.Fatalf("team %s loads %v after the move", team, loads)
		}
	}
	// An away rep is refused unless forced.
	if _, _, _, err := r.SetRepAvailability(ctx, "erin", routingv1.Availability_AVAILABILITY_AWAY, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reassign(ctx, p.GetLeadId(), "erin", "", false); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("reassign to away rep: %v", err)
	}
	if d, err := r.Reassign(ctx, p.GetLeadId(), "erin", "", true); err != nil || d.GetRepId() != "erin" {
		t.Fatalf("forced reassign: %v %v", d, err)
	}
	// Released leads cannot be reassigned.
	if ok, _, err := r.ReleaseLead(ctx, p.GetLeadId(), "bad_fit"); !ok || err != nil {
		t.Fatalf("release: %v %v", ok, err)
	}
	if ok, _, err := r.ReleaseLead(ctx, p.GetLeadId(), "bad_fit"); ok || err != nil {
		t.Fatalf("second release must be a no-op: %v %v", ok, err)
	}
	if _, err := r.Reassign(ctx, p.GetLeadId(), "", "", false); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("reassign released lead: %v", err)
	}
	// A released lead that becomes an MQL again is routed anew.
	d2, existing, err := r.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: p, Score: s, RequestId: "second-mql"})
	if err != nil || existing || d2.GetTeamId() != "dach" || d2.GetRepId() == "" {
		t.Fatalf("re-route after release: %v existing=%v %v", d2, existing, err)
	}
}

// DryRunRoute explains where a lead would go and changes nothing; a rep
// coming back takes queued leads at once; working hours gate assignment and
// the sweep hands out when they begin.
func TestDryRunAvailabilityAndWorkingHours(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	cfg := &routingv1.RoutingConfig{DefaultTeamId: "t", Teams: []*routingv1.Team{{Id: "t", Reps: []*routingv1.Rep{
		rep("a", 1, 5),
		{Id: "night", Weight: 1, Capacity: 5, WorkingHours: &routingv1.WorkingHours{TimeZone: "America/New_York", Windows: []*routingv1.WorkingWindow{
			{Days: []routingv1.Weekday{routingv1.Weekday_WEEKDAY_WEDNESDAY}, Start: "09:00", End: "17:00"}}}},
	}}}}
	apply(t, r, cfg)
	ctx := context.Background()
	// 10:00 UTC Wednesday = 05:00 in New York: "night" is outside hours.
	dry, err := r.DryRunRoute(ctx, &leadv1.LeadProfile{LeadId: "dry"}, &leadv1.Score{Total: 10})
	if err != nil || dry.GetRepId() != "a" || dry.GetKind() != routingv1.DecisionKind_DECISION_KIND_DRY_RUN {
		t.Fatalf("dry run: %v %v", dry, err)
	}
	var night *routingv1.Candidate
	for _, c := range dry.GetCandidates() {
		if c.GetRepId() == "night" {
			night = c
		}
	}
	if night == nil || night.GetEligible() || night.GetReasons()[0] != routingv1.IneligibleReason_INELIGIBLE_REASON_OUTSIDE_WORKING_HOURS {
		t.Fatalf("night candidate: %v", night)
	}
	if ds, _, _ := r.Decisions(ctx, "dry", 0, 10); len(ds) != 0 {
		t.Fatalf("dry run stored a decision: %v", ds)
	}
	if loads, _ := r.Store().Loads(ctx, "t"); sum(loads) != 0 {
		t.Fatalf("dry run charged capacity: %v", loads)
	}

	// a goes away: the lead queues (night is outside hours).
	if _, _, _, err := r.SetRepAvailability(ctx, "a", routingv1.Availability_AVAILABILITY_OUT_OF_OFFICE, timestamppb.New(e.clock.Now().Add(48*time.Hour))); err != nil {
		t.Fatal(err)
	}
	d := route(t, r, &leadv1.LeadProfile{LeadId: "q1"}, &leadv1.Score{Total: 10})
	if d.GetOutcome() != routingv1.DecisionOutcome_DECISION_OUTCOME_QUEUED {
		t.Fatalf("should queue: %v", d)
	}
	// 14:00 UTC = 09:00 New York: the sweep hands the lead to "night".
	e.clock.Advance(4 * time.Hour)
	if err := r.SweepOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := r.GetAssignment(ctx, "q1"); a.GetRepId() != "night" {
		t.Fatalf("after working hours began: %v", a)
	}
	// Queue another while night is full-ish? Make night away and a come back.
	if _, _, _, err := r.SetRepAvailability(ctx, "night", routingv1.Availability_AVAILABILITY_AWAY, nil); err != nil {
		t.Fatal(err)
	}
	route(t, r, &leadv1.LeadProfile{LeadId: "q2"}, &leadv1.Score{Total: 10})
	_, _, n, err := r.SetRepAvailability(ctx, "a", routingv1.Availability_AVAILABILITY_ACTIVE, nil)
	if err != nil || n != 1 {
		t.Fatalf("coming back handed out %d leads, err %v", n, err)
	}
	if a, _ := r.GetAssignment(ctx, "q2"); a.GetRepId() != "a" {
		t.Fatalf("q2 after a came back: %v", a)
	}
}
