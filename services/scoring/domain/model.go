package domain

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// FitKind is the attribute a fit rule looks at.
type FitKind string

// Fit rule kinds.
const (
	FitIndustry        FitKind = "industry"
	FitEmployeeBand    FitKind = "employee_band"
	FitRevenueBand     FitKind = "revenue_band"
	FitLocation        FitKind = "location"
	FitSeniority       FitKind = "seniority"
	FitTitle           FitKind = "title"
	FitFreeMail        FitKind = "free_mail"
	FitProductInterest FitKind = "product_interest"
)

// FitRule adds Points when its condition matches the profile.
//
//   - industry: Values holds industries (case-insensitive equality);
//   - employee_band: Min <= employee count < Max (Max 0 = open); unknown (0) never matches;
//   - revenue_band: revenue in Currency with Min <= minor units < Max (Max 0 = open);
//   - location: country code in Values or region in Regions (case-insensitive);
//   - seniority: seniority in Seniorities;
//   - title: the job title contains one of Values (case-insensitive);
//   - free_mail: the e-mail domain is a free-mail provider (use negative points);
//   - product_interest: one of the lead's products is in Values (case-insensitive).
type FitRule struct {
	ID          string      `json:"id"`
	Kind        FitKind     `json:"kind"`
	Points      int32       `json:"points"`
	Description string      `json:"desc,omitempty"`
	Values      []string    `json:"values,omitempty"`
	Regions     []string    `json:"regions,omitempty"`
	Seniorities []Seniority `json:"seniorities,omitempty"`
	Min         int64       `json:"min,omitempty"`
	Max         int64       `json:"max,omitempty"`
	Currency    string      `json:"currency,omitempty"`
}

// EngagementRule scores the signals of one type: each signal gives
// Points × 0.5^(age/HalfLife) (no decay when HalfLife is 0), the sum is capped
// at Cap (in absolute value; 0 = no cap) and rounded to whole points.
type EngagementRule struct {
	ID       string        `json:"id"`
	Type     SignalType    `json:"type"`
	Points   int32         `json:"points"`
	Cap      int32         `json:"cap,omitempty"`
	HalfLife time.Duration `json:"half_life,omitempty"`
}

// Thresholds: MQL is the total at or above which a lead is marketing
// qualified; grades are bands of fit, heat bands of engagement.
type Thresholds struct {
	MQL    int32 `json:"mql"`
	GradeA int32 `json:"grade_a"`
	GradeB int32 `json:"grade_b"`
	GradeC int32 `json:"grade_c"`
	Hot    int32 `json:"hot"`
	Warm   int32 `json:"warm"`
}

// Model is one immutable version of the scoring model.
type Model struct {
	Version     int32            `json:"version"`
	Name        string           `json:"name"`
	Description string           `json:"desc,omitempty"`
	Fit         []FitRule        `json:"fit"`
	Engagement  []EngagementRule `json:"engagement"`
	Thresholds  Thresholds       `json:"thresholds"`
	CreatedAt   time.Time        `json:"created_at"`
	CreatedBy   string           `json:"created_by,omitempty"`
	// Active and ActivatedAt are filled by the store when read.
	Active      bool      `json:"-"`
	ActivatedAt time.Time `json:"-"`
}

// Validate returns every problem of the model, with field paths as in the
// proto (model.fit_rules[2].id, ...). Nil means valid.
func (m *Model) Validate() []FieldViolation {
	var v []FieldViolation
	add := func(f, d string) { v = append(v, FieldViolation{Field: "model." + f, Description: d}) }
	if strings.TrimSpace(m.Name) == "" {
		add("name", "must not be empty")
	}
	ids := map[string]bool{}
	for i, r := range m.Fit {
		p := fmt.Sprintf("fit_rules[%d]", i)
		if strings.TrimSpace(r.ID) == "" {
			add(p+".id", "must not be empty")
		} else if ids[r.ID] {
			add(p+".id", "duplicate rule id "+r.ID)
		}
		ids[r.ID] = true
		switch r.Kind {
		case FitIndustry, FitTitle, FitProductInterest:
			if len(nonEmpty(r.Values)) == 0 {
				add(p, "needs at least one non-empty value")
			}
		case FitLocation:
			if len(nonEmpty(r.Values))+len(nonEmpty(r.Regions)) == 0 {
				add(p+".location", "needs a country code or a region")
			}
		case FitSeniority:
			if len(r.Seniorities) == 0 {
				add(p+".seniority.seniorities", "needs at least one seniority")
			}
		case FitEmployeeBand, FitRevenueBand:
			if r.Min < 0 || r.Max < 0 {
				add(p, "bounds must not be negative")
			}
			if r.Max != 0 && r.Max <= r.Min {
				add(p, "upper bound must be above the lower bound (or 0 for none)")
			}
			if r.Kind == FitRevenueBand && len(r.Currency) != 3 {
				add(p+".revenue_band.currency_code", "must be an ISO 4217 code")
			}
		case FitFreeMail:
		default:
			add(p+".condition", "is required")
		}
	}
	types := map[SignalType]bool{}
	for i, r := range m.Engagement {
		p := fmt.Sprintf("engagement_rules[%d]", i)
		if strings.TrimSpace(r.ID) == "" {
			add(p+".id", "must not be empty")
		} else if ids[r.ID] {
			add(p+".id", "duplicate rule id "+r.ID)
		}
		ids[r.ID] = true
		if !r.Type.Valid() {
			add(p+".signal_type", "must be a known signal type")
		} else if types[r.Type] {
			add(p+".signal_type", "only one rule per signal type")
		}
		types[r.Type] = true
		if r.Cap < 0 {
			add(p+".cap", "must not be negative")
		}
		if r.HalfLife < 0 {
			add(p+".half_life", "must not be negative")
		}
	}
	t := m.Thresholds
	if t.MQL <= 0 {
		add("thresholds.mql", "must be positive")
	}
	if !(t.GradeA > t.GradeB && t.GradeB > t.GradeC) {
		add("thresholds.grade_a_min_fit", "grade bands must satisfy A > B > C")
	}
	if !(t.Hot > t.Warm) {
		add("thresholds.hot_min_engagement", "must be above warm_min_engagement")
	}
	return v
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	for _, v := range list {
		if strings.EqualFold(strings.TrimSpace(v), s) {
			return true
		}
	}
	return false
}

// Match reports whether the rule's condition holds for p, and a short
// description of what matched.
func (r *FitRule) Match(p *Profile) (bool, string) {
	switch r.Kind {
	case FitIndustry:
		if containsFold(r.Values, p.Industry) {
			return true, "industry is " + strings.ToLower(strings.TrimSpace(p.Industry))
		}
	case FitEmployeeBand:
		n := int64(p.EmployeeCount)
		if n > 0 && n >= r.Min && (r.Max == 0 || n < r.Max) {
			return true, "employees " + bandText(r.Min, r.Max)
		}
	case FitRevenueBand:
		if p.Revenue != nil && p.Revenue.CurrencyCode == r.Currency {
			a := p.Revenue.AmountMinor
			if a >= r.Min && (r.Max == 0 || a < r.Max) {
				return true, "annual revenue (" + r.Currency + " minor units) " + bandText(r.Min, r.Max)
			}
		}
	case FitLocation:
		if containsFold(r.Values, p.CountryCode) {
			return true, "country is " + strings.ToUpper(strings.TrimSpace(p.CountryCode))
		}
		if containsFold(r.Regions, p.Region) {
			return true, "region is " + strings.TrimSpace(p.Region)
		}
	case FitSeniority:
		if p.Seniority != SeniorityUnspecified && slices.Contains(r.Seniorities, p.Seniority) {
			return true, "seniority is " + p.Seniority.String()
		}
	case FitTitle:
		t := strings.ToLower(p.JobTitle)
		for _, k := range r.Values {
			k = strings.ToLower(strings.TrimSpace(k))
			if k != "" && strings.Contains(t, k) {
				return true, "job title contains " + fmt.Sprintf("%q", k)
			}
		}
	case FitFreeMail:
		if p.FreeMail {
			return true, "free-mail address"
		}
	case FitProductInterest:
		for _, prod := range p.Products {
			if containsFold(r.Values, prod) {
				return true, "interested in " + strings.ToLower(strings.TrimSpace(prod))
			}
		}
	}
	return false, ""
}

func bandText(lo, hi int64) string {
	if hi == 0 {
		return fmt.Sprintf("%d or more", lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi-1)
}

// milli is the fixed-point unit of engagement arithmetic: decay works in
// thousandths of a point, so sums do not depend on signal order.
const milli = 1000

// DecayMilli returns points × 0.5^(age/halfLife) in thousandths of a point,
// rounded half away from zero. A negative age (a signal after the as-of
// time) counts as age 0; halfLife 0 means no decay.
func DecayMilli(points int32, age, halfLife time.Duration) int64 {
	if age < 0 {
		age = 0
	}
	full := int64(points) * milli
	if halfLife <= 0 || age == 0 {
		return full
	}
	f := math.Exp2(-float64(age) / float64(halfLife))
	return int64(math.Round(float64(full) * f))
}

// roundMilli rounds thousandths to whole points, half away from zero.
func roundMilli(m int64) int32 {
	if m >= 0 {
		return int32((m + milli/2) / milli)
	}
	return -int32((-m + milli/2) / milli)
}

// Score computes the explainable score of p with signals as of asOf.
// Signals after asOf are ignored. The result is a pure function of its
// inputs: the same inputs always give the same score.
func (m *Model) Score(p *Profile, signals []Signal, asOf time.Time) Score {
	s := Score{ModelVersion: m.Version, ScoredAt: asOf.UTC()}
	for i := range m.Fit {
		r := &m.Fit[i]
		ok, what := r.Match(p)
		if !ok {
			continue
		}
		why := r.Description
		if why == "" {
			why = what
		}
		s.Factors = append(s.Factors, Factor{RuleID: r.ID, Category: CategoryFit, Points: r.Points, Reason: fmt.Sprintf("%s (%+d)", why, r.Points)})
		s.Fit += r.Points
	}
	for i := range m.Engagement {
		r := &m.Engagement[i]
		var sum int64
		n := 0
		for _, sg := range signals {
			if sg.Type != r.Type || sg.At.After(asOf) {
				continue
			}
			n++
			sum += DecayMilli(r.Points, asOf.Sub(sg.At), r.HalfLife)
		}
		if n == 0 {
			continue
		}
		capped := false
		if r.Cap > 0 {
			c := int64(r.Cap) * milli
			if sum > c {
				sum, capped = c, true
			} else if sum < -c {
				sum, capped = -c, true
			}
		}
		pts := roundMilli(sum)
		why := fmt.Sprintf("%d × %s", n, r.Type)
		if r.HalfLife > 0 {
			why += ", decayed (half-life " + r.HalfLife.String() + ")"
		}
		if capped {
			why += fmt.Sprintf(", capped at %d", r.Cap)
		}
		s.Factors = append(s.Factors, Factor{RuleID: r.ID, Category: CategoryEngagement, Points: pts, Reason: fmt.Sprintf("%s (%+d)", why, pts)})
		s.Engagement += pts
	}
	s.Total = s.Fit + s.Engagement
	s.Grade = m.Thresholds.Grade(s.Fit)
	s.Heat = m.Thresholds.Heat(s.Engagement)
	s.MQL = s.Total >= m.Thresholds.MQL
	return s
}

// Grade is the fit band of fit points.
func (t Thresholds) Grade(fit int32) Grade {
	switch {
	case fit >= t.GradeA:
		return GradeA
	case fit >= t.GradeB:
		return GradeB
	case fit >= t.GradeC:
		return GradeC
	}
	return GradeD
}

// Heat is the engagement band of engagement points.
func (t Thresholds) Heat(eng int32) Heat {
	switch {
	case eng >= t.Hot:
		return HeatHot
	case eng >= t.Warm:
		return HeatWarm
	}
	return HeatCold
}

// TopReasons returns the reasons of the n factors with the most positive
// points (ties by rule id): why a lead is sales-ready.
func (s *Score) TopReasons(n int) []string {
	fs := slices.Clone(s.Factors)
	slices.SortStableFunc(fs, func(a, b Factor) int {
		if c := cmp.Compare(b.Points, a.Points); c != 0 {
			return c
		}
		return cmp.Compare(a.RuleID, b.RuleID)
	})
	var out []string
	for _, f := range fs {
		if f.Points <= 0 || len(out) == n {
			break
		}
		out = append(out, f.Reason)
	}
	return out
}

// Equal reports whether two scores have the same content.
func (s *Score) Equal(o *Score) bool {
	return s.Fit == o.Fit && s.Engagement == o.Engagement && s.Total == o.Total && s.Grade == o.Grade &&
		s.Heat == o.Heat && s.ModelVersion == o.ModelVersion && s.ScoredAt.Equal(o.ScoredAt) && s.MQL == o.MQL &&
		slices.Equal(s.Factors, o.Factors)
}

const day = 24 * time.Hour

// DefaultModel is the model shipped and activated on a fresh install
// (version 1). See the README (Scoring) for the reasoning behind each number.
func DefaultModel() Model {
	return Model{
		Name:        "default",
		Description: "LeadFlow default B2B model: software-leaning ICP, mid-market and up, DACH/EU/NA, senior roles; engagement with decay.",
		Fit: []FitRule{
			{ID: "fit.industry.core", Kind: FitIndustry, Points: 15, Values: []string{"software", "saas", "information technology", "internet", "fintech"}},
			{ID: "fit.industry.adjacent", Kind: FitIndustry, Points: 8, Values: []string{"financial services", "telecommunications", "e-commerce", "media", "consulting", "manufacturing"}},
			{ID: "fit.employees.micro", Kind: FitEmployeeBand, Points: -5, Min: 1, Max: 10},
			{ID: "fit.employees.small", Kind: FitEmployeeBand, Points: 5, Min: 10, Max: 50},
			{ID: "fit.employees.mid", Kind: FitEmployeeBand, Points: 10, Min: 50, Max: 200},
			{ID: "fit.employees.upper_mid", Kind: FitEmployeeBand, Points: 15, Min: 200, Max: 1000},
			{ID: "fit.employees.enterprise", Kind: FitEmployeeBand, Points: 20, Min: 1000},
			{ID: "fit.revenue.eur_10m", Kind: FitRevenueBand, Points: 10, Currency: "EUR", Min: 10_000_000_00},
			{ID: "fit.revenue.usd_10m", Kind: FitRevenueBand, Points: 10, Currency: "USD", Min: 10_000_000_00},
			{ID: "fit.location.dach", Kind: FitLocation, Points: 10, Values: []string{"DE", "AT", "CH"}},
			{ID: "fit.location.europe", Kind: FitLocation, Points: 6, Values: []string{"GB", "IE", "FR", "NL", "BE", "LU", "DK", "SE", "NO", "FI", "ES", "PT", "IT", "PL"}},
			{ID: "fit.location.north_america", Kind: FitLocation, Points: 8, Values: []string{"US", "CA"}},
			{ID: "fit.seniority.executive", Kind: FitSeniority, Points: 15, Seniorities: []Seniority{SeniorityCLevel, SeniorityOwner, SeniorityVicePresident}},
			{ID: "fit.seniority.director", Kind: FitSeniority, Points: 10, Seniorities: []Seniority{SeniorityDirector}},
			{ID: "fit.seniority.manager", Kind: FitSeniority, Points: 5, Seniorities: []Seniority{SeniorityManager}},
			{ID: "fit.title.technical", Kind: FitTitle, Points: 5, Values: []string{"cto", "cio", "engineering", "platform", "devops", "architect", "data"}},
			{ID: "fit.title.student", Kind: FitTitle, Points: -20, Values: []string{"student", "intern", "trainee"}},
			{ID: "fit.free_mail", Kind: FitFreeMail, Points: -15},
			{ID: "fit.product.core", Kind: FitProductInterest, Points: 5, Values: []string{"analytics", "api", "platform"}},
		},
		Engagement: []EngagementRule{
			{ID: "eng.page_view", Type: SignalPageView, Points: 1, Cap: 10, HalfLife: 7 * day},
			{ID: "eng.pricing_page_view", Type: SignalPricingPageView, Points: 5, Cap: 20, HalfLife: 14 * day},
			{ID: "eng.content_download", Type: SignalContentDownload, Points: 8, Cap: 24, HalfLife: 30 * day},
			{ID: "eng.webinar_registered", Type: SignalWebinarRegistered, Points: 5, Cap: 10, HalfLife: 30 * day},
			{ID: "eng.webinar_attended", Type: SignalWebinarAttended, Points: 10, Cap: 20, HalfLife: 30 * day},
			{ID: "eng.demo_request", Type: SignalDemoRequest, Points: 30, Cap: 30, HalfLife: 30 * day},
			{ID: "eng.email_open", Type: SignalEmailOpen, Points: 1, Cap: 5, HalfLife: 7 * day},
			{ID: "eng.email_click", Type: SignalEmailClick, Points: 3, Cap: 12, HalfLife: 14 * day},
			{ID: "eng.email_reply", Type: SignalEmailReply, Points: 10, Cap: 20, HalfLife: 30 * day},
			{ID: "eng.chat", Type: SignalChat, Points: 8, Cap: 16, HalfLife: 14 * day},
		},
		Thresholds: Thresholds{MQL: 60, GradeA: 50, GradeB: 30, GradeC: 15, Hot: 40, Warm: 15},
	}
}
