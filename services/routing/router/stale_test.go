package router_test

import (
	"context"
	"testing"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
)

// An instance holding an old configuration never decides with it: the team
// script refuses the old version and the instance reloads first.
func TestStaleInstanceReloadsBeforeDeciding(t *testing.T) {
	e := newEnv(t)
	r1, _ := e.router()
	r2, _ := e.router()
	apply(t, r1, &routingv1.RoutingConfig{DefaultTeamId: "t", Teams: []*routingv1.Team{{Id: "t", Reps: []*routingv1.Rep{rep("a", 1, 10)}}}})
	// r2 caches version 1.
	if d := route(t, r2, &leadv1.LeadProfile{LeadId: "s1"}, &leadv1.Score{}); d.GetRepId() != "a" || d.GetConfigVersion() != 1 {
		t.Fatalf("v1 decision: %v", d)
	}
	// r1 sends a away (version 2) and adds b (version 3).
	ctx := context.Background()
	if _, _, _, err := r1.SetRepAvailability(ctx, "a", routingv1.Availability_AVAILABILITY_AWAY, nil); err != nil {
		t.Fatal(err)
	}
	c, err := r1.GetConfig(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Teams[0].Reps = append(c.Teams[0].Reps, rep("b", 1, 10))
	apply(t, r1, c)
	for _, id := range []string{"s2", "s3", "s4"} {
		d := route(t, r2, &leadv1.LeadProfile{LeadId: id}, &leadv1.Score{})
		if d.GetRepId() != "b" || d.GetConfigVersion() != 3 {
			t.Fatalf("stale instance decided %s with version %d: %v", d.GetRepId(), d.GetConfigVersion(), d)
		}
	}
}
