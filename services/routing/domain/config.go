// Package domain is routing's pure core: the routing configuration compiled
// for fast decisions, its validation, rule matching with explanations, rep
// eligibility (availability, out of office, working hours in the rep's time
// zone) and SLA policy selection. It knows neither gRPC nor Redis; the choice
// among eligible reps that depends on live load (capacity, fair rotation) is
// made atomically by the store with the candidates computed here.
package domain

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones even in a scratch container

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
)

// Violation is one bad field of a configuration.
type Violation struct {
	Field       string
	Description string
}

// ValidationError lists every problem of a configuration.
type ValidationError struct{ Violations []Violation }

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		parts = append(parts, v.Field+": "+v.Description)
	}
	return "invalid routing configuration: " + strings.Join(parts, "; ")
}

// Config is one configuration version compiled for routing.
type Config struct {
	Version int64
	Proto   *routingv1.RoutingConfig

	Teams       map[string]*Team
	TeamIDs     []string // sorted
	Reps        map[string]*Rep
	Rules       []*routingv1.Rule
	DefaultTeam string

	ownerByDomain map[string]string
	ownerByOrg    map[string]string
	policies      []*routingv1.SlaPolicy
}

// Team is a compiled team.
type Team struct {
	ID       string
	LeadRep  string
	Reps     []*Rep // sorted by id: the rotation's tie-break order
	Policies []*routingv1.SlaPolicy
}

// Rep is a compiled rep.
type Rep struct {
	ID           string
	TeamID       string
	Weight       int
	Capacity     int
	Availability routingv1.Availability
	OOOUntil     time.Time
	loc          *time.Location
	windows      []window
}

type window struct {
	days       [8]bool // index = time.Weekday ISO (1 = Monday … 7 = Sunday)
	start, end int     // minutes since local midnight, end exclusive
}

// Compile validates pc and builds the routing tables. Every problem is
// reported with the path of the field (teams[0].reps[1].weight).
func Compile(pc *routingv1.RoutingConfig) (*Config, error) {
	var vs []Violation
	bad := func(field, format string, a ...any) {
		vs = append(vs, Violation{Field: field, Description: fmt.Sprintf(format, a...)})
	}
	c := &Config{
		Version:       pc.GetVersion(),
		Proto:         pc,
		Teams:         map[string]*Team{},
		Reps:          map[string]*Rep{},
		Rules:         pc.GetRules(),
		DefaultTeam:   pc.GetDefaultTeamId(),
		ownerByDomain: map[string]string{},
		ownerByOrg:    map[string]string{},
	}
	if len(pc.GetTeams()) == 0 {
		bad("teams", "at least one team is required")
	}
	for ti, t := range pc.GetTeams() {
		tf := fmt.Sprintf("teams[%d]", ti)
		if t.GetId() == "" {
			bad(tf+".id", "required")
			continue
		}
		if _, dup := c.Teams[t.GetId()]; dup {
			bad(tf+".id", "duplicate team id %q", t.GetId())
			continue
		}
		team := &Team{ID: t.GetId(), LeadRep: t.GetTeamLeadRepId()}
		c.Teams[team.ID] = team
		c.TeamIDs = append(c.TeamIDs, team.ID)
		for ri, r := range t.GetReps() {
			rf := fmt.Sprintf("%s.reps[%d]", tf, ri)
			if r.GetId() == "" {
				bad(rf+".id", "required")
				continue
			}
			if other, dup := c.Reps[r.GetId()]; dup {
				bad(rf+".id", "rep %q is already a member of team %q (a rep belongs to one team)", r.GetId(), other.TeamID)
				continue
			}
			rep := &Rep{
				ID: r.GetId(), TeamID: team.ID, Weight: int(r.GetWeight()), Capacity: int(r.GetCapacity()),
				Availability: r.GetAvailability(),
			}
			if r.GetWeight() <= 0 {
				bad(rf+".weight", "must be > 0, got %d", r.GetWeight())
			}
			if r.GetWeight() > 1_000_000 {
				bad(rf+".weight", "must be <= 1000000, got %d", r.GetWeight())
			}
			if r.GetCapacity() <= 0 {
				bad(rf+".capacity", "must be > 0, got %d", r.GetCapacity())
			}
			if r.GetAvailability() == routingv1.Availability_AVAILABILITY_OUT_OF_OFFICE {
				if r.GetOutOfOfficeUntil() == nil {
					bad(rf+".out_of_office_until", "required when availability is OUT_OF_OFFICE")
				} else {
					rep.OOOUntil = r.GetOutOfOfficeUntil().AsTime()
				}
			}
			if wh := r.GetWorkingHours(); wh != nil {
				loc, err := time.LoadLocation(wh.GetTimeZone())
				if err != nil || wh.GetTimeZone() == "" || strings.EqualFold(wh.GetTimeZone(), "local") {
					bad(rf+".working_hours.time_zone", "unknown IANA time zone %q", wh.GetTimeZone())
				}
				rep.loc = loc
				if len(wh.GetWindows()) == 0 {
					bad(rf+".working_hours.windows", "at least one window is required with working hours")
				}
				for wi, w := range wh.GetWindows() {
					wf := fmt.Sprintf("%s.working_hours.windows[%d]", rf, wi)
					start, err1 := parseClock(w.GetStart(), false)
					end, err2 := parseClock(w.GetEnd(), true)
					if err1 != nil {
						bad(wf+".start", "%v", err1)
					}
					if err2 != nil {
						bad(wf+".end", "%v", err2)
					}
					if err1 == nil && err2 == nil && end <= start {
						bad(wf+".end", "must be after start (%s)", w.GetStart())
					}
					win := window{start: start, end: end}
					if len(w.GetDays()) == 0 {
						bad(wf+".days", "at least one day is required")
					}
					for di, d := range w.GetDays() {
						if d <= routingv1.Weekday_WEEKDAY_UNSPECIFIED || d > routingv1.Weekday_WEEKDAY_SUNDAY {
							bad(fmt.Sprintf("%s.days[%d]", wf, di), "unknown weekday %d", d)
							continue
						}
						win.days[d] = true
					}
					rep.windows = append(rep.windows, win)
				}
			}
			team.Reps = append(team.Reps, rep)
			c.Reps[rep.ID] = rep
		}
		sort.Slice(team.Reps, func(i, j int) bool { return team.Reps[i].ID < team.Reps[j].ID })
	}
	for ti, t := range pc.GetTeams() {
		if l := t.GetTeamLeadRepId(); l != "" {
			if _, ok := c.Reps[l]; !ok {
				bad(fmt.Sprintf("teams[%d].team_lead_rep_id", ti), "unknown rep %q", l)
			}
		}
	}
	if c.DefaultTeam == "" {
		bad("default_team_id", "required")
	} else if _, ok := c.Teams[c.DefaultTeam]; !ok {
		bad("default_team_id", "unknown team %q", c.DefaultTeam)
	}
	ruleIDs := map[string]bool{}
	for i, r := range pc.GetRules() {
		f := fmt.Sprintf("rules[%d]", i)
		if r.GetId() == "" {
			bad(f+".id", "required")
		} else if ruleIDs[r.GetId()] {
			bad(f+".id", "duplicate rule id %q", r.GetId())
		}
		ruleIDs[r.GetId()] = true
		switch tg := r.GetTarget().(type) {
		case *routingv1.Rule_TeamId:
			if _, ok := c.Teams[tg.TeamId]; !ok {
				bad(f+".team_id", "unknown team %q", tg.TeamId)
			}
		case *routingv1.Rule_RepId:
			if _, ok := c.Reps[tg.RepId]; !ok {
				bad(f+".rep_id", "unknown rep %q", tg.RepId)
			}
		default:
			bad(f+".target", "a team_id or rep_id is required")
		}
		if cond := r.GetConditions(); cond != nil {
			if cond.GetMaxEmployees() > 0 && cond.GetMinEmployees() > cond.GetMaxEmployees() {
				bad(f+".conditions.max_employees", "must be >= min_employees (%d)", cond.GetMinEmployees())
			}
			if cond.MinScore != nil && cond.MaxScore != nil && cond.GetMinScore() > cond.GetMaxScore() {
				bad(f+".conditions.max_score", "must be >= min_score (%d)", cond.GetMinScore())
			}
		}
	}
	for i, o := range pc.GetOwners() {
		f := fmt.Sprintf("owners[%d]", i)
		if _, ok := c.Reps[o.GetRepId()]; !ok {
			bad(f+".rep_id", "unknown rep %q", o.GetRepId())
		}
		if o.GetDomain() == "" && o.GetOrganisationId() == "" {
			bad(f+".domain", "a domain or an organisation_id is required")
		}
		if d := strings.ToLower(strings.TrimSpace(o.GetDomain())); d != "" {
			c.ownerByDomain[d] = o.GetRepId()
		}
		if id := o.GetOrganisationId(); id != "" {
			c.ownerByOrg[id] = o.GetRepId()
		}
	}
	polIDs := map[string]bool{}
	for i, p := range pc.GetSlaPolicies() {
		f := fmt.Sprintf("sla_policies[%d]", i)
		if polIDs[p.GetId()] {
			bad(f+".id", "duplicate policy id %q", p.GetId())
		}
		polIDs[p.GetId()] = true
		if p.GetTeamId() != "" {
			if _, ok := c.Teams[p.GetTeamId()]; !ok {
				bad(f+".team_id", "unknown team %q", p.GetTeamId())
			}
		}
		if d := p.GetFirstTouchWithin(); d != nil && d.AsDuration() <= 0 {
			bad(f+".first_touch_within", "must be > 0")
		}
		if p.GetTouchesRequired() > 0 && (p.GetTouchesWithin() == nil || p.GetTouchesWithin().AsDuration() <= 0) {
			bad(f+".touches_within", "required (> 0) when touches_required is set")
		}
		if p.GetFirstTouchWithin() == nil && p.GetTouchesRequired() == 0 {
			bad(f+".first_touch_within", "a policy needs first_touch_within or touches_required")
		}
		if p.GetAction() == routingv1.BreachAction_BREACH_ACTION_NOTIFY_TEAM_LEAD && p.GetTeamId() != "" {
			if t, ok := c.Teams[p.GetTeamId()]; ok && t.LeadRep == "" {
				bad(f+".action", "NOTIFY_TEAM_LEAD needs teams[%s].team_lead_rep_id", p.GetTeamId())
			}
		}
		c.policies = append(c.policies, p)
	}
	if len(vs) > 0 {
		return nil, &ValidationError{Violations: vs}
	}
	return c, nil
}

func parseClock(s string, allow24 bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 || !digits(h) || !digits(m) {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || mm < 0 || mm > 59 || hh < 0 {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	if hh == 24 && mm == 0 && allow24 {
		return 24 * 60, nil
	}
	if hh > 23 {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return hh*60 + mm, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Eligible reports whether the rep may take leads at now, ignoring load
// (capacity is checked atomically by the store), and why not.
func (r *Rep) Eligible(now time.Time) (bool, routingv1.IneligibleReason) {
	switch r.Availability {
	case routingv1.Availability_AVAILABILITY_AWAY:
		return false, routingv1.IneligibleReason_INELIGIBLE_REASON_AWAY
	case routingv1.Availability_AVAILABILITY_OUT_OF_OFFICE:
		if now.Before(r.OOOUntil) {
			return false, routingv1.IneligibleReason_INELIGIBLE_REASON_OUT_OF_OFFICE
		}
	}
	if !r.Working(now) {
		return false, routingv1.IneligibleReason_INELIGIBLE_REASON_OUTSIDE_WORKING_HOURS
	}
	return true, routingv1.IneligibleReason_INELIGIBLE_REASON_UNSPECIFIED
}

// Working reports whether now is inside the rep's working hours (always,
// when the rep has none).
func (r *Rep) Working(now time.Time) bool {
	if len(r.windows) == 0 || r.loc == nil {
		return true
	}
	local := now.In(r.loc)
	wd := int(local.Weekday())
	if wd == 0 {
		wd = 7
	}
	min := local.Hour()*60 + local.Minute()
	for _, w := range r.windows {
		if w.days[wd] && min >= w.start && min < w.end {
			return true
		}
	}
	return false
}

// StaticCandidate is a rep of a team with its load-independent eligibility.
type StaticCandidate struct {
	Rep      *Rep
	Eligible bool
	Reason   routingv1.IneligibleReason
}

// Candidates lists every rep of the team in rotation order with its
// eligibility at now.
func (c *Config) Candidates(teamID string, now time.Time) []StaticCandidate {
	t := c.Teams[teamID]
	if t == nil {
		return nil
	}
	out := make([]StaticCandidate, 0, len(t.Reps))
	for _, r := range t.Reps {
		ok, why := r.Eligible(now)
		out = append(out, StaticCandidate{Rep: r, Eligible: ok, Reason: why})
	}
	return out
}

// Target is where a lead goes before the choice of a rep.
type Target struct {
	TeamID string
	// Rep to prefer (an owner or a rule's rep); empty = rotation.
	Rep string
	// Strict: when Rep cannot take the lead, do not rotate inside the team;
	// fall back to the rules instead (ownership).
	Strict      bool
	RuleID      string
	ByOwnership bool
	Explanation []string
}

// Target picks the target of a lead: its organisation's owner when the
// owner may take leads now, else the rules.
func (c *Config) Target(p *leadv1.LeadProfile, s *leadv1.Score, now time.Time) Target {
	if owner, how := c.Owner(p); owner != "" {
		rep := c.Reps[owner]
		if ok, why := rep.Eligible(now); ok {
			return Target{TeamID: rep.TeamID, Rep: owner, Strict: true, ByOwnership: true,
				Explanation: []string{fmt.Sprintf("organisation owned by %s (%s)", owner, how)}}
		} else {
			t := c.RuleTarget(p, s)
			t.Explanation = append([]string{fmt.Sprintf("organisation owner %s (%s) not eligible: %s; routed by rules", owner, how, ReasonText(why))}, t.Explanation...)
			return t
		}
	}
	return c.RuleTarget(p, s)
}

// Owner returns the owner rep of the lead's organisation, if configured and
// known, and how it was found.
func (c *Config) Owner(p *leadv1.LeadProfile) (string, string) {
	org := p.GetOrganisation()
	if id := org.GetId(); id != "" {
		if r, ok := c.ownerByOrg[id]; ok {
			return r, "organisation id " + id
		}
	}
	if d := strings.ToLower(strings.TrimSpace(org.GetDomain())); d != "" {
		if r, ok := c.ownerByDomain[d]; ok {
			return r, "domain " + d
		}
	}
	if r := org.GetOwnerRepId(); r != "" {
		if _, ok := c.Reps[r]; ok {
			return r, "account owner on the organisation"
		}
	}
	return "", ""
}

// RuleTarget applies the ordered rules (first match wins), else the default team.
func (c *Config) RuleTarget(p *leadv1.LeadProfile, s *leadv1.Score) Target {
	for _, r := range c.Rules {
		ok, why := Match(r.GetConditions(), p, s)
		if !ok {
			continue
		}
		expl := append([]string{fmt.Sprintf("rule %s matched", r.GetId())}, why...)
		switch tg := r.GetTarget().(type) {
		case *routingv1.Rule_RepId:
			rep := c.Reps[tg.RepId]
			return Target{TeamID: rep.TeamID, Rep: rep.ID, RuleID: r.GetId(), Explanation: expl}
		case *routingv1.Rule_TeamId:
			return Target{TeamID: tg.TeamId, RuleID: r.GetId(), Explanation: expl}
		}
	}
	return Target{TeamID: c.DefaultTeam, Explanation: []string{"no rule matched: default team " + c.DefaultTeam}}
}

// Match evaluates conditions against a lead and explains every condition
// that was checked. A nil condition set matches everything.
func Match(cond *routingv1.RuleConditions, p *leadv1.LeadProfile, s *leadv1.Score) (bool, []string) {
	if cond == nil {
		return true, []string{"no conditions"}
	}
	var why []string
	org := p.GetOrganisation()
	inList := func(name, v string, list []string) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if strings.EqualFold(strings.TrimSpace(x), strings.TrimSpace(v)) && v != "" {
				why = append(why, fmt.Sprintf("%s %q in %v", name, v, list))
				return true
			}
		}
		return false
	}
	if !inList("country_code", org.GetCountryCode(), cond.GetCountryCodes()) {
		return false, nil
	}
	if !inList("region", org.GetRegion(), cond.GetRegions()) {
		return false, nil
	}
	if !inList("industry", org.GetIndustry(), cond.GetIndustries()) {
		return false, nil
	}
	if cond.GetMinEmployees() > 0 || cond.GetMaxEmployees() > 0 {
		n := org.GetEmployeeCount()
		if n <= 0 || n < cond.GetMinEmployees() || (cond.GetMaxEmployees() > 0 && n > cond.GetMaxEmployees()) {
			return false, nil
		}
		why = append(why, fmt.Sprintf("employees %d in [%d, %s]", n, cond.GetMinEmployees(), upper(cond.GetMaxEmployees())))
	}
	if len(cond.GetProductInterests()) > 0 {
		hit := ""
		for _, pi := range p.GetProductInterests() {
			if slices.ContainsFunc(cond.GetProductInterests(), func(x string) bool { return strings.EqualFold(x, pi) }) {
				hit = pi
				break
			}
		}
		if hit == "" {
			return false, nil
		}
		why = append(why, fmt.Sprintf("product interest %q in %v", hit, cond.GetProductInterests()))
	}
	if !inList("source", Source(p), cond.GetSources()) {
		return false, nil
	}
	if cond.MinScore != nil || cond.MaxScore != nil {
		t := s.GetTotal()
		if (cond.MinScore != nil && t < cond.GetMinScore()) || (cond.MaxScore != nil && t > cond.GetMaxScore()) {
			return false, nil
		}
		why = append(why, fmt.Sprintf("score %d in [%s, %s]", t, optInt(cond.MinScore), optInt(cond.MaxScore)))
	}
	if len(cond.GetGrades()) > 0 {
		if !slices.Contains(cond.GetGrades(), s.GetGrade()) {
			return false, nil
		}
		why = append(why, fmt.Sprintf("grade %s in %v", s.GetGrade(), cond.GetGrades()))
	}
	if len(cond.GetHeats()) > 0 {
		if !slices.Contains(cond.GetHeats(), s.GetHeat()) {
			return false, nil
		}
		why = append(why, fmt.Sprintf("heat %s in %v", s.GetHeat(), cond.GetHeats()))
	}
	if len(cond.GetChannels()) > 0 {
		ch := p.GetAttribution().GetFirstTouch().GetChannel()
		if !slices.Contains(cond.GetChannels(), ch) {
			return false, nil
		}
		why = append(why, fmt.Sprintf("channel %s in %v", ch, cond.GetChannels()))
	}
	if len(why) == 0 {
		why = []string{"no conditions"}
	}
	return true, why
}

// Source is the lead's first-touch source (the last touch when the first is
// missing).
func Source(p *leadv1.LeadProfile) string {
	if s := p.GetAttribution().GetFirstTouch().GetSource(); s != "" {
		return s
	}
	return p.GetAttribution().GetLastTouch().GetSource()
}

func upper(n int32) string {
	if n == 0 {
		return "∞"
	}
	return strconv.Itoa(int(n))
}

func optInt(p *int32) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(int(*p))
}

// Policy returns the SLA policy for a team and heat: a policy of the team
// naming the heat, then a policy of the team for every heat, then the same
// for policies without a team. nil when none applies.
func (c *Config) Policy(teamID string, heat leadv1.Heat) *routingv1.SlaPolicy {
	var best *routingv1.SlaPolicy
	bestRank := 0
	for _, p := range c.policies {
		rank := 0
		switch {
		case p.GetTeamId() == teamID && len(p.GetHeats()) > 0 && slices.Contains(p.GetHeats(), heat):
			rank = 4
		case p.GetTeamId() == teamID && len(p.GetHeats()) == 0:
			rank = 3
		case p.GetTeamId() == "" && len(p.GetHeats()) > 0 && slices.Contains(p.GetHeats(), heat):
			rank = 2
		case p.GetTeamId() == "" && len(p.GetHeats()) == 0:
			rank = 1
		}
		if rank > bestRank {
			best, bestRank = p, rank
		}
	}
	return best
}

// PolicyByID finds a policy.
func (c *Config) PolicyByID(id string) *routingv1.SlaPolicy {
	for _, p := range c.policies {
		if p.GetId() == id {
			return p
		}
	}
	return nil
}

// ReasonText is a short text for an ineligibility reason.
func ReasonText(r routingv1.IneligibleReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "INELIGIBLE_REASON_"))
}
