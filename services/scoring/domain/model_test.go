package domain

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestFitRuleMatch(t *testing.T) {
	eur := func(a int64) *Money { return &Money{AmountMinor: a, CurrencyCode: "EUR"} }
	tests := []struct {
		name string
		rule FitRule
		p    Profile
		want bool
	}{
		{"industry equal", FitRule{Kind: FitIndustry, Values: []string{"software"}}, Profile{Industry: "software"}, true},
		{"industry case and space", FitRule{Kind: FitIndustry, Values: []string{"Software "}}, Profile{Industry: " SOFTWARE"}, true},
		{"industry other", FitRule{Kind: FitIndustry, Values: []string{"software"}}, Profile{Industry: "retail"}, false},
		{"industry empty", FitRule{Kind: FitIndustry, Values: []string{"software"}}, Profile{}, false},
		{"employees lower bound inclusive", FitRule{Kind: FitEmployeeBand, Min: 50, Max: 200}, Profile{EmployeeCount: 50}, true},
		{"employees upper bound exclusive", FitRule{Kind: FitEmployeeBand, Min: 50, Max: 200}, Profile{EmployeeCount: 200}, false},
		{"employees below", FitRule{Kind: FitEmployeeBand, Min: 50, Max: 200}, Profile{EmployeeCount: 49}, false},
		{"employees open band", FitRule{Kind: FitEmployeeBand, Min: 1000}, Profile{EmployeeCount: 250000}, true},
		{"employees unknown never matches", FitRule{Kind: FitEmployeeBand, Min: 0, Max: 10}, Profile{EmployeeCount: 0}, false},
		{"revenue in band", FitRule{Kind: FitRevenueBand, Currency: "EUR", Min: 100, Max: 200}, Profile{Revenue: eur(150)}, true},
		{"revenue upper exclusive", FitRule{Kind: FitRevenueBand, Currency: "EUR", Min: 100, Max: 200}, Profile{Revenue: eur(200)}, false},
		{"revenue open band", FitRule{Kind: FitRevenueBand, Currency: "EUR", Min: 100}, Profile{Revenue: eur(1 << 60)}, true},
		{"revenue other currency", FitRule{Kind: FitRevenueBand, Currency: "USD", Min: 100}, Profile{Revenue: eur(150)}, false},
		{"revenue unknown", FitRule{Kind: FitRevenueBand, Currency: "EUR", Min: 0}, Profile{}, false},
		{"country", FitRule{Kind: FitLocation, Values: []string{"DE", "AT"}}, Profile{CountryCode: "at"}, true},
		{"region", FitRule{Kind: FitLocation, Regions: []string{"EMEA"}}, Profile{CountryCode: "FR", Region: "emea"}, true},
		{"location none", FitRule{Kind: FitLocation, Values: []string{"DE"}, Regions: []string{"EMEA"}}, Profile{CountryCode: "US", Region: "NA"}, false},
		{"seniority in list", FitRule{Kind: FitSeniority, Seniorities: []Seniority{SeniorityDirector}}, Profile{Seniority: SeniorityDirector}, true},
		{"seniority not in list", FitRule{Kind: FitSeniority, Seniorities: []Seniority{SeniorityDirector}}, Profile{Seniority: SeniorityManager}, false},
		{"seniority unspecified", FitRule{Kind: FitSeniority, Seniorities: []Seniority{SeniorityUnspecified}}, Profile{}, false},
		{"title keyword", FitRule{Kind: FitTitle, Values: []string{"cto"}}, Profile{JobTitle: "Co-founder & CTO"}, true},
		{"title no keyword", FitRule{Kind: FitTitle, Values: []string{"cto"}}, Profile{JobTitle: "Head of Sales"}, false},
		{"free mail", FitRule{Kind: FitFreeMail}, Profile{FreeMail: true}, true},
		{"not free mail", FitRule{Kind: FitFreeMail}, Profile{}, false},
		{"product interest", FitRule{Kind: FitProductInterest, Values: []string{"api"}}, Profile{Products: []string{"crm", "API"}}, true},
		{"product no interest", FitRule{Kind: FitProductInterest, Values: []string{"api"}}, Profile{Products: []string{"crm"}}, false},
		{"unknown kind", FitRule{Kind: "nope"}, Profile{Industry: "software"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := tc.rule.Match(&tc.p)
			if got != tc.want {
				t.Fatalf("Match = %v (%q), want %v", got, why, tc.want)
			}
			if got && why == "" {
				t.Fatal("a match must say why")
			}
		})
	}
}

func TestFitPointsAndPenalty(t *testing.T) {
	m := testModel()
	p := Profile{Industry: "software", FreeMail: true, CapturedAt: t0}
	s := m.Score(&p, nil, t0)
	if s.Fit != 20-15 {
		t.Fatalf("fit = %d, want 5 (industry +20, free mail -15); factors %+v", s.Fit, s.Factors)
	}
	for _, f := range s.Factors {
		if f.Category != CategoryFit || !strings.Contains(f.Reason, fmt.Sprintf("%+d", f.Points)) {
			t.Fatalf("bad factor %+v", f)
		}
	}
}

func TestDecayMilli(t *testing.T) {
	tests := []struct {
		name     string
		points   int32
		age, hl  time.Duration
		wantMill int64
	}{
		{"no decay when half-life zero", 10, 100 * day, 0, 10000},
		{"age zero", 10, 0, 7 * day, 10000},
		{"one half-life halves", 10, 7 * day, 7 * day, 5000},
		{"two half-lives quarter", 10, 14 * day, 7 * day, 2500},
		{"half a half-life", 10, 12 * time.Hour, 24 * time.Hour, 7071},
		{"future signal counts as age zero", 10, -time.Hour, 7 * day, 10000},
		{"negative points decay too", -8, 7 * day, 7 * day, -4000},
		{"very old decays to zero", 10, 10000 * day, day, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DecayMilli(tc.points, tc.age, tc.hl); got != tc.wantMill {
				t.Fatalf("DecayMilli = %d, want %d", got, tc.wantMill)
			}
		})
	}
}

func sig(id string, typ SignalType, at time.Time) Signal { return Signal{ID: id, Type: typ, At: at} }

func TestEngagementRules(t *testing.T) {
	m := testModel()
	tests := []struct {
		name    string
		signals []Signal
		asOf    time.Time
		want    int32
	}{
		{"no signals", nil, t0, 0},
		{"one fresh pricing view", []Signal{sig("a", SignalPricingPageView, t0)}, t0, 10},
		{"pricing view one half-life old", []Signal{sig("a", SignalPricingPageView, t0)}, t0.Add(7 * day), 5},
		{"cap per type", []Signal{sig("a", SignalPricingPageView, t0), sig("b", SignalPricingPageView, t0), sig("c", SignalPricingPageView, t0)}, t0, 25},
		{"decay before cap", []Signal{sig("a", SignalPricingPageView, t0), sig("b", SignalPricingPageView, t0), sig("c", SignalPricingPageView, t0)}, t0.Add(14 * day), 8}, // 3×2.5 = 7.5 → 8
		{"no-decay type", []Signal{sig("a", SignalDemoRequest, t0)}, t0.Add(1000 * day), 30},
		{"negative rule capped", []Signal{sig("a", SignalEmailOpen, t0), sig("b", SignalEmailOpen, t0), sig("c", SignalEmailOpen, t0)}, t0, -5},
		{"signal after as-of ignored", []Signal{sig("a", SignalDemoRequest, t0.Add(time.Hour))}, t0, 0},
		{"type without rule ignored", []Signal{sig("a", SignalChat, t0)}, t0, 0},
		{"types add up", []Signal{sig("a", SignalDemoRequest, t0), sig("b", SignalPricingPageView, t0)}, t0, 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Profile{CapturedAt: t0}
			s := m.Score(&p, tc.signals, tc.asOf)
			if s.Engagement != tc.want {
				t.Fatalf("engagement = %d, want %d (%+v)", s.Engagement, tc.want, s.Factors)
			}
			assertSums(t, s)
		})
	}
}

func TestGradeAndHeatBands(t *testing.T) {
	th := Thresholds{MQL: 60, GradeA: 50, GradeB: 30, GradeC: 15, Hot: 40, Warm: 15}
	grades := []struct {
		fit  int32
		want Grade
	}{{100, GradeA}, {50, GradeA}, {49, GradeB}, {30, GradeB}, {29, GradeC}, {15, GradeC}, {14, GradeD}, {-20, GradeD}}
	for _, g := range grades {
		if got := th.Grade(g.fit); got != g.want {
			t.Errorf("Grade(%d) = %d, want %d", g.fit, got, g.want)
		}
	}
	heats := []struct {
		eng  int32
		want Heat
	}{{90, HeatHot}, {40, HeatHot}, {39, HeatWarm}, {15, HeatWarm}, {14, HeatCold}, {0, HeatCold}, {-3, HeatCold}}
	for _, h := range heats {
		if got := th.Heat(h.eng); got != h.want {
			t.Errorf("Heat(%d) = %d, want %d", h.eng, got, h.want)
		}
	}
}

func TestMQLThreshold(t *testing.T) {
	m := testModel() // MQL 40: industry 20 + demo 30 = 50; industry 20 + pricing 10 = 30
	tests := []struct {
		name    string
		mql     int32
		signals []Signal
		want    bool
	}{
		{"above", 40, []Signal{sig("d", SignalDemoRequest, t0)}, true},
		{"exactly at threshold", 50, []Signal{sig("d", SignalDemoRequest, t0)}, true},
		{"one below", 51, []Signal{sig("d", SignalDemoRequest, t0)}, false},
		{"below", 40, []Signal{sig("p", SignalPricingPageView, t0)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m.Thresholds.MQL = tc.mql
			p := Profile{Industry: "software", CapturedAt: t0}
			if s := m.Score(&p, tc.signals, t0); s.MQL != tc.want {
				t.Fatalf("MQL = %v at total %d, want %v", s.MQL, s.Total, tc.want)
			}
		})
	}
}

func assertSums(t *testing.T, s Score) {
	t.Helper()
	var sum, fit, eng int32
	for _, f := range s.Factors {
		sum += f.Points
		if f.Category == CategoryFit {
			fit += f.Points
		} else {
			eng += f.Points
		}
	}
	if sum != s.Total || fit != s.Fit || eng != s.Engagement || s.Fit+s.Engagement != s.Total {
		t.Fatalf("breakdown does not add up: %+v", s)
	}
}

func randomProfile(r *rand.Rand) (Profile, []Signal) {
	inds := []string{"software", "retail", "fintech", "media", ""}
	cs := []string{"DE", "US", "FR", "BR", ""}
	p := Profile{
		LeadID: fmt.Sprint(r.Int()), Industry: inds[r.IntN(len(inds))], EmployeeCount: int32(r.IntN(5000)),
		CountryCode: cs[r.IntN(len(cs))], Seniority: Seniority(r.IntN(8)), FreeMail: r.IntN(4) == 0,
		JobTitle: []string{"CTO", "student", "Head of Data", ""}[r.IntN(4)], Products: []string{"api"}[:r.IntN(2)],
		Revenue:    &Money{AmountMinor: r.Int64N(5_000_000_000), CurrencyCode: []string{"EUR", "USD"}[r.IntN(2)]},
		CapturedAt: t0,
	}
	var sigs []Signal
	for i := range r.IntN(30) {
		sigs = append(sigs, sig(fmt.Sprint(i), SignalType(1+r.IntN(10)), t0.Add(time.Duration(r.IntN(60*24))*time.Hour)))
	}
	return p, sigs
}

func TestBreakdownAddsUpAndIsDeterministic(t *testing.T) {
	m := DefaultModel()
	m.Version = 1
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		p, sigs := randomProfile(r)
		asOf := t0.Add(70 * day)
		a := m.Score(&p, sigs, asOf)
		assertSums(t, a)
		// Reversed signal order gives the same score.
		rev := make([]Signal, len(sigs))
		for i, s := range sigs {
			rev[len(sigs)-1-i] = s
		}
		b := m.Score(&p, rev, asOf)
		if !a.Equal(&b) {
			t.Fatalf("not deterministic:\n%+v\n%+v", a, b)
		}
	}
}

func TestDefaultModelIsValidAndSensible(t *testing.T) {
	m := DefaultModel()
	if v := m.Validate(); len(v) > 0 {
		t.Fatalf("default model invalid: %+v", v)
	}
	m.Version = 1
	// An ideal lead with a demo request is an A-grade MQL.
	good := Profile{Industry: "software", EmployeeCount: 500, CountryCode: "DE", Seniority: SeniorityDirector, JobTitle: "Director Platform Engineering", CapturedAt: t0}
	s := m.Score(&good, []Signal{sig("d", SignalDemoRequest, t0)}, t0)
	if !s.MQL || s.Grade != GradeA {
		t.Fatalf("ideal lead not an A MQL: %+v", s)
	}
	// A student on gmail who read one page is not.
	bad := Profile{JobTitle: "Student", FreeMail: true, CapturedAt: t0}
	s = m.Score(&bad, []Signal{sig("p", SignalPageView, t0)}, t0)
	if s.MQL || s.Grade != GradeD || s.Heat != HeatCold {
		t.Fatalf("student lead scored high: %+v", s)
	}
}

func TestModelValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(m *Model)
		field string
	}{
		{"empty name", func(m *Model) { m.Name = " " }, "model.name"},
		{"duplicate rule id", func(m *Model) { m.Fit[1].ID = m.Fit[0].ID }, "model.fit_rules[1].id"},
		{"empty rule id", func(m *Model) { m.Fit[0].ID = "" }, "model.fit_rules[0].id"},
		{"industry without values", func(m *Model) { m.Fit[0].Values = []string{" "} }, "model.fit_rules[0]"},
		{"band inverted", func(m *Model) { m.Fit[2] = FitRule{ID: "x", Kind: FitEmployeeBand, Min: 10, Max: 5} }, "model.fit_rules[2]"},
		{"revenue without currency", func(m *Model) { m.Fit[2] = FitRule{ID: "x", Kind: FitRevenueBand, Min: 10} }, "model.fit_rules[2].revenue_band.currency_code"},
		{"location empty", func(m *Model) { m.Fit[2] = FitRule{ID: "x", Kind: FitLocation} }, "model.fit_rules[2].location"},
		{"seniority empty", func(m *Model) { m.Fit[2] = FitRule{ID: "x", Kind: FitSeniority} }, "model.fit_rules[2].seniority.seniorities"},
		{"no condition", func(m *Model) { m.Fit[2] = FitRule{ID: "x"} }, "model.fit_rules[2].condition"},
		{"two rules for one signal type", func(m *Model) { m.Engagement[1].Type = m.Engagement[0].Type }, "model.engagement_rules[1].signal_type"},
		{"unknown signal type", func(m *Model) { m.Engagement[0].Type = 99 }, "model.engagement_rules[0].signal_type"},
		{"negative cap", func(m *Model) { m.Engagement[0].Cap = -1 }, "model.engagement_rules[0].cap"},
		{"negative half-life", func(m *Model) { m.Engagement[0].HalfLife = -time.Second }, "model.engagement_rules[0].half_life"},
		{"mql zero", func(m *Model) { m.Thresholds.MQL = 0 }, "model.thresholds.mql"},
		{"grade bands out of order", func(m *Model) { m.Thresholds.GradeB = m.Thresholds.GradeA }, "model.thresholds.grade_a_min_fit"},
		{"heat bands out of order", func(m *Model) { m.Thresholds.Warm = m.Thresholds.Hot }, "model.thresholds.hot_min_engagement"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := DefaultModel()
			tc.edit(&m)
			v := m.Validate()
			found := false
			for _, f := range v {
				found = found || f.Field == tc.field
			}
			if !found {
				t.Fatalf("want a violation on %s, got %+v", tc.field, v)
			}
		})
	}
}

func TestTopReasons(t *testing.T) {
	s := Score{Factors: []Factor{{RuleID: "a", Points: 5, Reason: "a"}, {RuleID: "b", Points: 20, Reason: "b"}, {RuleID: "c", Points: -15, Reason: "c"}, {RuleID: "d", Points: 5, Reason: "d"}}}
	got := s.TopReasons(5)
	if strings.Join(got, ",") != "b,a,d" {
		t.Fatalf("TopReasons = %v", got)
	}
	if got := s.TopReasons(1); len(got) != 1 || got[0] != "b" {
		t.Fatalf("TopReasons(1) = %v", got)
	}
}

// testModel: industry software +20, free mail -15; pricing +10 (cap 25,
// half-life 7d); demo +30 (no decay, cap 30); e-mail open -2 (cap 5).
func testModel() Model {
	return Model{
		Version: 7, Name: "test",
		Fit: []FitRule{
			{ID: "fit.industry", Kind: FitIndustry, Points: 20, Values: []string{"software"}},
			{ID: "fit.freemail", Kind: FitFreeMail, Points: -15},
			{ID: "fit.seniority", Kind: FitSeniority, Points: 10, Seniorities: []Seniority{SeniorityCLevel}},
		},
		Engagement: []EngagementRule{
			{ID: "eng.pricing", Type: SignalPricingPageView, Points: 10, Cap: 25, HalfLife: 7 * day},
			{ID: "eng.demo", Type: SignalDemoRequest, Points: 30, Cap: 30},
			{ID: "eng.open", Type: SignalEmailOpen, Points: -2, Cap: 5},
		},
		Thresholds: Thresholds{MQL: 40, GradeA: 30, GradeB: 20, GradeC: 10, Hot: 30, Warm: 10},
	}
}
