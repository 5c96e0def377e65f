package router_test

import (
	"context"
	"testing"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
)

func TestRouteByRulesOwnershipAndIdempotency(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	cfg := baseConfig()
	cfg.Owners = []*routingv1.OrganisationOwner{{Domain: "acme.example", RepId: "erin"}}
	apply(t, r, cfg)
	ctx := context.Background()

	p, s := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	d := route(t, r, p, s)
	if d.GetTeamId() != "dach" || d.GetRuleId() != "dach" || d.GetOutcome() != routingv1.DecisionOutcome_DECISION_OUTCOME_ASSIGNED || d.GetRepId() == "" {
		t.Fatalf("DE lead: %v", d)
	}
	if d.GetFirstTouchDue() == nil || d.GetSlaPolicyId() != "dach-first-touch" || len(d.GetCandidates()) != 3 {
		t.Fatalf("DE lead decision lacks SLA or candidates: %v", d)
	}
	// Same request again: the same decision, nothing assigned twice.
	again, existing, err := r.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: p, Score: s, RequestId: "other-request"})
	if err != nil || !existing || again.GetId() != d.GetId() {
		t.Fatalf("second route: existing=%v id=%s want %s err=%v", existing, again.GetId(), d.GetId(), err)
	}
	loads, _ := r.Store().Loads(ctx, "dach")
	if sum(loads) != 1 {
		t.Fatalf("loads after double route = %v, want one open lead", loads)
	}

	// US small company: not enterprise → default team.
	p, s = lead("US", leadv1.Heat_HEAT_WARM, 50)
	if d := route(t, r, p, s); d.GetTeamId() != "inside" || d.GetRuleId() != "" || d.GetRepId() != "ivan" {
		t.Fatalf("US SMB lead: %v", d)
	}
	// US enterprise → us team.
	p, s = lead("US", leadv1.Heat_HEAT_WARM, 50)
	p.Organisation.EmployeeCount = 5000
	if d := route(t, r, p, s); d.GetTeamId() != "us" || d.GetRuleId() != "us-enterprise-software" {
		t.Fatalf("US enterprise lead: %v", d)
	}
	// Owned organisation in DE → its owner erin (team us), not the DACH rule.
	p, s = lead("DE", leadv1.Heat_HEAT_WARM, 50)
	p.Organisation.Domain = "acme.example"
	if d := route(t, r, p, s); d.GetRepId() != "erin" || !d.GetByOwnership() || d.GetTeamId() != "us" {
		t.Fatalf("owned lead: %v", d)
	}
	// Owner away → rules.
	if _, _, _, err := r.SetRepAvailability(ctx, "erin", routingv1.Availability_AVAILABILITY_AWAY, nil); err != nil {
		t.Fatal(err)
	}
	p, s = lead("DE", leadv1.Heat_HEAT_WARM, 50)
	p.Organisation.Domain = "acme.example"
	if d := route(t, r, p, s); d.GetTeamId() != "dach" || d.GetByOwnership() {
		t.Fatalf("owned lead with owner away: %v", d)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// The team script goes in a shared pipeline, which cannot fall back to EVAL:
// after Redis lost its script cache (a restart), the next route loads the
// script and is decided as usual.
func TestRouteAfterScriptCacheFlush(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	apply(t, r, baseConfig())
	ctx := context.Background()
	p, s := lead("DE", leadv1.Heat_HEAT_HOT, 80)
	route(t, r, p, s)
	if err := e.redis.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p, s = lead("DE", leadv1.Heat_HEAT_HOT, 80)
	if d := route(t, r, p, s); d.GetOutcome() != routingv1.DecisionOutcome_DECISION_OUTCOME_ASSIGNED || d.GetRepId() == "" {
		t.Fatalf("route after the script cache was flushed: %v", d)
	}
	if loads, _ := r.Store().Loads(ctx, "dach"); sum(loads) != 2 {
		t.Fatalf("loads = %v, want the two leads", loads)
	}
}
