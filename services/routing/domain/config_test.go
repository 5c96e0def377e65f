package domain

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
)

func rep(id string) *routingv1.Rep {
	return &routingv1.Rep{Id: id, Weight: 1, Capacity: 5}
}

func cfg() *routingv1.RoutingConfig {
	return &routingv1.RoutingConfig{
		Teams: []*routingv1.Team{
			{Id: "dach", Reps: []*routingv1.Rep{rep("anna"), rep("bernd")}},
			{Id: "ent", Reps: []*routingv1.Rep{rep("erin")}},
			{Id: "inside", Reps: []*routingv1.Rep{rep("ivan")}},
		},
		Rules: []*routingv1.Rule{
			{Id: "enterprise", Conditions: &routingv1.RuleConditions{MinEmployees: 1000}, Target: &routingv1.Rule_TeamId{TeamId: "ent"}},
			{Id: "dach-hot", Conditions: &routingv1.RuleConditions{CountryCodes: []string{"de", "AT"}, Heats: []leadv1.Heat{leadv1.Heat_HEAT_HOT}}, Target: &routingv1.Rule_TeamId{TeamId: "dach"}},
			{Id: "api-to-bernd", Conditions: &routingv1.RuleConditions{ProductInterests: []string{"API"}, MinScore: ptr(50)}, Target: &routingv1.Rule_RepId{RepId: "bernd"}},
			{Id: "webinar", Conditions: &routingv1.RuleConditions{Sources: []string{"webinar-2026-11"}, Grades: []leadv1.Grade{leadv1.Grade_GRADE_A}}, Target: &routingv1.Rule_TeamId{TeamId: "dach"}},
			{Id: "us-west", Conditions: &routingv1.RuleConditions{Regions: []string{"US-CA", "US-WA"}, Industries: []string{"software"}}, Target: &routingv1.Rule_TeamId{TeamId: "ent"}},
		},
		DefaultTeamId: "inside",
		Owners:        []*routingv1.OrganisationOwner{{Domain: "Acme.com", RepId: "erin"}, {OrganisationId: "org-9", RepId: "anna"}},
	}
}

func ptr(n int32) *int32 { return &n }

func TestRules(t *testing.T) {
	c, err := Compile(cfg())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	type tc struct {
		name       string
		org        *leadv1.Organisation
		interests  []string
		source     string
		score      *leadv1.Score
		team, rule string
		rep        string
		owner      bool
	}
	for _, x := range []tc{
		{name: "enterprise first (order matters)", org: &leadv1.Organisation{CountryCode: "DE", EmployeeCount: 5000}, score: &leadv1.Score{Heat: leadv1.Heat_HEAT_HOT}, team: "ent", rule: "enterprise"},
		{name: "dach hot, case-insensitive country", org: &leadv1.Organisation{CountryCode: "DE", EmployeeCount: 50}, score: &leadv1.Score{Heat: leadv1.Heat_HEAT_HOT}, team: "dach", rule: "dach-hot"},
		{name: "dach warm falls through to default", org: &leadv1.Organisation{CountryCode: "DE"}, score: &leadv1.Score{Heat: leadv1.Heat_HEAT_WARM}, team: "inside"},
		{name: "unknown size never matches a band", org: &leadv1.Organisation{CountryCode: "FR"}, score: &leadv1.Score{}, team: "inside"},
		{name: "product interest to a rep", org: &leadv1.Organisation{}, interests: []string{"crm", "api"}, score: &leadv1.Score{Total: 60}, team: "dach", rule: "api-to-bernd", rep: "bernd"},
		{name: "product interest below min score", org: &leadv1.Organisation{}, interests: []string{"api"}, score: &leadv1.Score{Total: 49}, team: "inside"},
		{name: "source and grade", org: &leadv1.Organisation{}, source: "webinar-2026-11", score: &leadv1.Score{Grade: leadv1.Grade_GRADE_A}, team: "dach", rule: "webinar"},
		{name: "source with wrong grade", org: &leadv1.Organisation{}, source: "webinar-2026-11", score: &leadv1.Score{Grade: leadv1.Grade_GRADE_B}, team: "inside"},
		{name: "region and industry", org: &leadv1.Organisation{Region: "US-CA", Industry: "Software"}, score: &leadv1.Score{}, team: "ent", rule: "us-west"},
		{name: "owner by domain wins over rules", org: &leadv1.Organisation{Domain: "acme.com", CountryCode: "DE"}, score: &leadv1.Score{Heat: leadv1.Heat_HEAT_HOT}, team: "ent", rep: "erin", owner: true},
		{name: "owner by organisation id", org: &leadv1.Organisation{Id: "org-9"}, score: &leadv1.Score{}, team: "dach", rep: "anna", owner: true},
		{name: "owner on the organisation record", org: &leadv1.Organisation{OwnerRepId: "ivan"}, score: &leadv1.Score{}, team: "inside", rep: "ivan", owner: true},
		{name: "unknown owner on the record is ignored", org: &leadv1.Organisation{OwnerRepId: "ghost"}, score: &leadv1.Score{}, team: "inside"},
	} {
		t.Run(x.name, func(t *testing.T) {
			p := &leadv1.LeadProfile{LeadId: "l", Organisation: x.org, ProductInterests: x.interests,
				Attribution: &leadv1.Attribution{FirstTouch: &leadv1.Touch{Source: x.source}}}
			got := c.Target(p, x.score, now)
			if got.TeamID != x.team || got.RuleID != x.rule || got.Rep != x.rep || got.ByOwnership != x.owner {
				t.Fatalf("target = %+v, want team %s rule %q rep %q owner %v", got, x.team, x.rule, x.rep, x.owner)
			}
			if len(got.Explanation) == 0 {
				t.Fatal("no explanation")
			}
		})
	}
}

func TestOwnerNotEligibleFallsBackToRules(t *testing.T) {
	pc := cfg()
	pc.Teams[1].Reps[0].Availability = routingv1.Availability_AVAILABILITY_AWAY
	c, err := Compile(pc)
	if err != nil {
		t.Fatal(err)
	}
	p := &leadv1.LeadProfile{Organisation: &leadv1.Organisation{Domain: "acme.com", CountryCode: "AT"}}
	got := c.Target(p, &leadv1.Score{Heat: leadv1.Heat_HEAT_HOT}, time.Now())
	if got.TeamID != "dach" || got.ByOwnership || !strings.Contains(got.Explanation[0], "not eligible: away") {
		t.Fatalf("target = %+v", got)
	}
}

func TestEligibility(t *testing.T) {
	pc := cfg()
	r := pc.Teams[0].Reps[0]
	r.WorkingHours = &routingv1.WorkingHours{TimeZone: "Europe/Berlin", Windows: []*routingv1.WorkingWindow{
		{Days: []routingv1.Weekday{routingv1.Weekday_WEEKDAY_MONDAY, routingv1.Weekday_WEEKDAY_TUESDAY, routingv1.Weekday_WEEKDAY_WEDNESDAY,
			routingv1.Weekday_WEEKDAY_THURSDAY, routingv1.Weekday_WEEKDAY_FRIDAY}, Start: "09:00", End: "17:30"}}}
	c, err := Compile(pc)
	if err != nil {
		t.Fatal(err)
	}
	anna := c.Reps["anna"]
	for _, x := range []struct {
		at   string
		want bool
	}{
		{"2026-11-25T08:00:00Z", true},  // Wed 09:00 Berlin (inclusive start)
		{"2026-11-25T07:59:00Z", false}, // 08:59
		{"2026-11-25T16:29:00Z", true},  // 17:29
		{"2026-11-25T16:30:00Z", false}, // 17:30 (exclusive end)
		{"2026-11-28T10:00:00Z", false}, // Saturday
		{"2026-07-01T07:30:00Z", true},  // summer time: 09:30 CEST
		{"2026-07-01T06:30:00Z", false}, // 08:30 CEST
	} {
		at, _ := time.Parse(time.RFC3339, x.at)
		ok, why := anna.Eligible(at)
		if ok != x.want {
			t.Errorf("%s: eligible=%v (%v), want %v", x.at, ok, why, x.want)
		}
		if !ok && why != routingv1.IneligibleReason_INELIGIBLE_REASON_OUTSIDE_WORKING_HOURS {
			t.Errorf("%s: reason %v", x.at, why)
		}
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ooo := &Rep{Availability: routingv1.Availability_AVAILABILITY_OUT_OF_OFFICE, OOOUntil: now.Add(time.Hour)}
	if ok, why := ooo.Eligible(now); ok || why != routingv1.IneligibleReason_INELIGIBLE_REASON_OUT_OF_OFFICE {
		t.Fatalf("out of office: %v %v", ok, why)
	}
	if ok, _ := ooo.Eligible(now.Add(time.Hour)); !ok {
		t.Fatal("out of office ended but still ineligible")
	}
	away := &Rep{Availability: routingv1.Availability_AVAILABILITY_AWAY}
	if ok, why := away.Eligible(now); ok || why != routingv1.IneligibleReason_INELIGIBLE_REASON_AWAY {
		t.Fatalf("away: %v %v", ok, why)
	}
}

func TestValidationNamesEveryField(t *testing.T) {
	pc := cfg()
	pc.Teams[0].Reps[0].Weight = 0
	pc.Teams[0].Reps[1].Capacity = -1
	pc.Teams[1].Reps = append(pc.Teams[1].Reps, rep("anna"))
	pc.Teams[2].Reps[0].WorkingHours = &routingv1.WorkingHours{TimeZone: "Europe/Atlantis", Windows: []*routingv1.WorkingWindow{
		{Days: []routingv1.Weekday{routingv1.Weekday_WEEKDAY_MONDAY}, Start: "18:00", End: "09:00"}}}
	pc.Teams[2].Reps[0].Availability = routingv1.Availability_AVAILABILITY_OUT_OF_OFFICE
	pc.Rules = append(pc.Rules, &routingv1.Rule{Id: "x", Target: &routingv1.Rule_TeamId{TeamId: "nowhere"}}, &routingv1.Rule{Id: "x", Target: &routingv1.Rule_RepId{RepId: "ghost"}})
	pc.DefaultTeamId = "void"
	pc.Owners = append(pc.Owners, &routingv1.OrganisationOwner{RepId: "ghost"})
	pc.SlaPolicies = []*routingv1.SlaPolicy{{Id: "p", TeamId: "nowhere", TouchesRequired: 2}}
	_, err := Compile(pc)
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	got := map[string]bool{}
	for _, v := range ve.Violations {
		got[v.Field] = true
	}
	for _, f := range []string{
		"teams[0].reps[0].weight", "teams[0].reps[1].capacity", "teams[1].reps[1].id",
		"teams[2].reps[0].working_hours.time_zone", "teams[2].reps[0].working_hours.windows[0].end", "teams[2].reps[0].out_of_office_until",
		"rules[5].team_id", "rules[6].id", "rules[6].rep_id", "default_team_id", "owners[2].rep_id", "owners[2].domain",
		"sla_policies[0].team_id", "sla_policies[0].touches_within",
	} {
		if !got[f] {
			t.Errorf("no violation for %s (got %v)", f, got)
		}
	}
}

func TestPolicySelection(t *testing.T) {
	pc := cfg()
	pc.SlaPolicies = []*routingv1.SlaPolicy{
		{Id: "global", FirstTouchWithin: durationpb.New(24 * time.Hour)},
		{Id: "global-hot", Heats: []leadv1.Heat{leadv1.Heat_HEAT_HOT}, FirstTouchWithin: durationpb.New(4 * time.Hour)},
		{Id: "dach", TeamId: "dach", FirstTouchWithin: durationpb.New(8 * time.Hour)},
		{Id: "dach-hot", TeamId: "dach", Heats: []leadv1.Heat{leadv1.Heat_HEAT_HOT}, FirstTouchWithin: durationpb.New(time.Hour)},
	}
	c, err := Compile(pc)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		team string
		heat leadv1.Heat
		want string
	}{
		{"dach", leadv1.Heat_HEAT_HOT, "dach-hot"}, {"dach", leadv1.Heat_HEAT_COLD, "dach"},
		{"ent", leadv1.Heat_HEAT_HOT, "global-hot"}, {"ent", leadv1.Heat_HEAT_WARM, "global"},
	} {
		if got := c.Policy(x.team, x.heat); got.GetId() != x.want {
			t.Errorf("policy(%s, %s) = %s, want %s", x.team, x.heat, got.GetId(), x.want)
		}
	}
}

func TestPickIsWeightedAndFair(t *testing.T) {
	slots := []Slot{{ID: "a", Weight: 1, Capacity: 1 << 30}, {ID: "b", Weight: 3, Capacity: 1 << 30}, {ID: "c", Weight: 6, Capacity: 1 << 30}}
	cw := map[string]int{}
	got := map[string]int{}
	for range 1000 {
		i, next := Pick(slots, cw)
		got[slots[i].ID]++
		cw = next
	}
	if got["a"] != 100 || got["b"] != 300 || got["c"] != 600 {
		t.Fatalf("shares %v, want exactly 100/300/600", got)
	}
	// Over capacity and excluded reps are skipped.
	slots[2].Load = slots[2].Capacity
	slots[1].Excluded = true
	if i, _ := Pick(slots, cw); slots[i].ID != "a" {
		t.Fatalf("picked %s, want a", slots[i].ID)
	}
	slots[0].Load = slots[0].Capacity
	if i, next := Pick(slots, cw); i != -1 || len(next) != len(cw) {
		t.Fatalf("picked %d with nobody eligible", i)
	}
}

func FuzzParseClock(f *testing.F) {
	for _, s := range []string{"09:00", "24:00", "23:59", "7:00", "+9:00", "ab:cd", "", "12:60", "-1:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseClock(s, true)
		if err != nil {
			return
		}
		if m < 0 || m > 24*60 {
			t.Fatalf("parseClock(%q) = %d out of range", s, m)
		}
		if m < 24*60 {
			back := time.Date(2000, 1, 1, m/60, m%60, 0, 0, time.UTC).Format("15:04")
			if back != s {
				t.Fatalf("parseClock(%q) = %d, formats back as %q", s, m, back)
			}
		}
	})
}
