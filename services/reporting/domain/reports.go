package domain

import (
	"fmt"
	"math/big"
	"sort"
	"time"
)

// GroupBy splits a report's rows (mirrors the proto enum).
type GroupBy int

const (
	GroupNone GroupBy = iota
	GroupDay
	GroupWeek
	GroupMonth
	GroupSource
	GroupCampaign
	GroupTeam
	GroupRep
	GroupChannel
)

// Step is a funnel step, in funnel order.
type Step int

const (
	StepCaptured Step = iota
	StepMQL
	StepRouted
	StepAccepted
	StepQualified
	StepOpportunity
	StepWon
	numSteps
)

// Steps lists the funnel steps in order.
var Steps = []Step{StepCaptured, StepMQL, StepRouted, StepAccepted, StepQualified, StepOpportunity, StepWon}

// Reached reports whether f reached step s (see the README (Reporting)).
func (f *Fact) Reached(s Step) bool {
	switch s {
	case StepCaptured:
		return f.Captured()
	case StepMQL:
		return !f.MQLAt.IsZero()
	case StepRouted:
		return !f.RoutedAt.IsZero()
	case StepAccepted:
		return !f.AcceptedAt.IsZero()
	case StepQualified:
		return !f.QualifiedAt.IsZero()
	case StepOpportunity:
		return !f.DealAt.IsZero()
	case StepWon:
		return f.Outcome == OutcomeWon
	}
	return false
}

// Ratio is an exact rate.
type Ratio struct{ Num, Den int64 }

// BasisPoints is floor(Num*10000/Den), 0 when Den is 0.
func (r Ratio) BasisPoints() int64 {
	if r.Den == 0 {
		return 0
	}
	return r.Num * 10000 / r.Den
}

// Bucket is a group key with, for time groupings, the bucket start.
type Bucket struct {
	Key   string
	Start time.Time
}

// BucketOf returns the group of f under g.
func BucketOf(f *Fact, g GroupBy) Bucket {
	t := f.CapturedAt.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch g {
	case GroupDay:
		return Bucket{day.Format(time.DateOnly), day}
	case GroupWeek:
		off := (int(day.Weekday()) + 6) % 7 // Monday = 0
		w := day.AddDate(0, 0, -off)
		return Bucket{w.Format(time.DateOnly), w}
	case GroupMonth:
		m := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return Bucket{m.Format("2006-01"), m}
	case GroupSource:
		return Bucket{Key: f.Source}
	case GroupCampaign:
		return Bucket{Key: f.Campaign}
	case GroupTeam:
		return Bucket{Key: f.Team}
	case GroupRep:
		return Bucket{Key: f.Rep}
	case GroupChannel:
		return Bucket{Key: f.Channel}
	}
	return Bucket{}
}

// Money is an amount of one currency in minor units.
type Money struct {
	Currency string
	Minor    int64
}

// moneyMap sums amounts per currency.
type moneyMap map[string]int64

func (m moneyMap) sorted() []Money {
	out := make([]Money, 0, len(m))
	for c, v := range m {
		out = append(out, Money{c, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out
}

// FunnelRow is the funnel of one group.
type FunnelRow struct {
	Bucket
	Counts  [numSteps]int64
	Lost    int64
	Revenue []Money
	rev     moneyMap
}

// Conversion is the rate from one step to the next.
type Conversion struct {
	From, To Step
	Rate     Ratio
}

// Conversions are the rates between consecutive steps, in funnel order.
func (r *FunnelRow) Conversions() []Conversion {
	out := make([]Conversion, 0, numSteps-1)
	for i := 1; i < int(numSteps); i++ {
		out = append(out, Conversion{Step(i - 1), Step(i), Ratio{r.Counts[i], r.Counts[i-1]}})
	}
	return out
}

func (r *FunnelRow) add(f *Fact) {
	for _, s := range Steps {
		if f.Reached(s) {
			r.Counts[s]++
		}
	}
	if f.Outcome == OutcomeLost {
		r.Lost++
	}
	if f.Outcome == OutcomeWon {
		if r.rev == nil {
			r.rev = moneyMap{}
		}
		r.rev[f.WonCurrency] += f.WonAmount
	}
}

// Funnel counts the cohort (facts of captured leads) per group and in total.
// Rows are sorted by key.
func Funnel(facts []Fact, g GroupBy) (rows []FunnelRow, total FunnelRow) {
	byKey := map[string]*FunnelRow{}
	for i := range facts {
		f := &facts[i]
		if !f.Captured() {
			continue
		}
		total.add(f)
		if g == GroupNone {
			continue
		}
		b := BucketOf(f, g)
		r := byKey[b.Key]
		if r == nil {
			r = &FunnelRow{Bucket: b}
			byKey[b.Key] = r
		}
		r.add(f)
	}
	total.Revenue = total.rev.sorted()
	for _, r := range byKey {
		r.Revenue = r.rev.sorted()
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows, total
}

// DurationStats are nearest-rank percentiles of a set of durations.
type DurationStats struct {
	Count    int64
	P50, P90 time.Duration
}

// Stats computes nearest-rank p50 and p90: the value at rank ceil(p*n).
func Stats(ds []time.Duration) DurationStats {
	if len(ds) == 0 {
		return DurationStats{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(pct int) time.Duration {
		n := len(s)
		r := (pct*n + 99) / 100 // ceil(pct/100 * n)
		if r < 1 {
			r = 1
		}
		return s[r-1]
	}
	return DurationStats{Count: int64(len(s)), P50: rank(50), P90: rank(90)}
}

// SpeedRow is the speed of one team or rep.
type SpeedRow struct {
	Key                 string
	ToAssign, ToTouch   DurationStats
	Met, Missed         int64
	Breaches, Reassigns int64
	toAssign, toTouch   []time.Duration
}

// Compliance is Met / (Met + Missed).
func (r *SpeedRow) Compliance() Ratio { return Ratio{r.Met, r.Met + r.Missed} }

func (r *SpeedRow) addAssign(f *Fact) {
	if !f.AssignedAt.IsZero() {
		r.toAssign = append(r.toAssign, nonNeg(f.AssignedAt.Sub(f.CapturedAt)))
	}
	r.Breaches += f.Breaches
	r.Reassigns += f.Reassignments
}

func (r *SpeedRow) addTouch(f *Fact) {
	if !f.FirstTouchAt.IsZero() {
		r.toTouch = append(r.toTouch, nonNeg(f.FirstTouchAt.Sub(f.CapturedAt)))
	}
	switch sla := SLAOf(f); sla {
	case SLAMet:
		r.Met++
	case SLAMissed:
		r.Missed++
	}
}

func (r *SpeedRow) finish() {
	r.ToAssign, r.ToTouch = Stats(r.toAssign), Stats(r.toTouch)
	r.toAssign, r.toTouch = nil, nil
}

func nonNeg(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// SLA is a lead's first-touch SLA result.
type SLA int

const (
	// SLANone: no SLA decision yet (not touched, not breached).
	SLANone SLA = iota
	// SLAMet: the first touch was inside the SLA.
	SLAMet
	// SLAMissed: the first touch was late, or the first-touch SLA was
	// breached before any touch.
	SLAMissed
)

// SLAOf decides a lead's first-touch SLA (the README (Reporting)).
func SLAOf(f *Fact) SLA {
	switch {
	case !f.FirstTouchAt.IsZero() && f.TouchWithinSLA:
		return SLAMet
	case !f.FirstTouchAt.IsZero():
		return SLAMissed
	case !f.FirstTouchBreachAt.IsZero():
		return SLAMissed
	}
	return SLANone
}

// Speed computes speed-to-lead per team, per rep and in total. Per team uses
// the team of first routing throughout; per rep uses the first assigned rep
// for assignment time, breaches and reassignments, and the rep who made the
// first touch (else the first assigned rep) for first-touch time and SLA.
func Speed(facts []Fact) (byTeam, byRep []SpeedRow, total SpeedRow) {
	teams, reps := map[string]*SpeedRow{}, map[string]*SpeedRow{}
	get := func(m map[string]*SpeedRow, k string) *SpeedRow {
		r := m[k]
		if r == nil {
			r = &SpeedRow{Key: k}
			m[k] = r
		}
		return r
	}
	for i := range facts {
		f := &facts[i]
		if !f.Captured() {
			continue
		}
		total.addAssign(f)
		total.addTouch(f)
		if f.RoutedAt.IsZero() && f.AssignedAt.IsZero() {
			continue // never reached sales: not a team's or rep's figure
		}
		t := get(teams, f.Team)
		t.addAssign(f)
		t.addTouch(f)
		get(reps, f.Rep).addAssign(f)
		toucher := f.TouchRep
		if toucher == "" {
			toucher = f.Rep
		}
		get(reps, toucher).addTouch(f)
	}
	total.finish()
	return speedRows(teams), speedRows(reps), total
}

func speedRows(m map[string]*SpeedRow) []SpeedRow {
	out := make([]SpeedRow, 0, len(m))
	for _, r := range m {
		r.finish()
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// CurrencyFigures are the money figures of one currency.
type CurrencyFigures struct {
	Currency    string
	Won         int64
	WonAmount   int64
	AverageDeal int64
	// VelocityPerDay is valid when HasVelocity.
	VelocityPerDay int64
	HasVelocity    bool
}

// StageConversion is how deals that entered a stage ended.
type StageConversion struct {
	Stage        string
	Entered, Won int64
}

// SalesRow is the sales result of one group.
type SalesRow struct {
	Key                    string
	Start                  time.Time
	Opportunities          int64
	Won, Lost, Open        int64
	Cycle                  DurationStats
	AverageCycle           time.Duration
	Currencies             []CurrencyFigures
	Stages                 []StageConversion
	cycles                 []time.Duration
	wonBy, amountBy        map[string]int64
	stageEntered, stageWon map[string]int64
}

// WinRate is Won / (Won + Lost).
func (r *SalesRow) WinRate() Ratio { return Ratio{r.Won, r.Won + r.Lost} }

func (r *SalesRow) add(f *Fact) {
	if f.DealAt.IsZero() && f.Outcome == OutcomeNone {
		return
	}
	if r.wonBy == nil {
		r.wonBy, r.amountBy = map[string]int64{}, map[string]int64{}
		r.stageEntered, r.stageWon = map[string]int64{}, map[string]int64{}
	}
	r.Opportunities++
	switch f.Outcome {
	case OutcomeWon:
		r.Won++
		r.wonBy[f.WonCurrency]++
		r.amountBy[f.WonCurrency] += f.WonAmount
		if !f.DealCreatedAt.IsZero() {
			r.cycles = append(r.cycles, nonNeg(f.WonAt.Sub(f.DealCreatedAt)))
		}
	case OutcomeLost:
		r.Lost++
	default:
		r.Open++
	}
	for s := range f.Stages {
		r.stageEntered[s]++
		if f.Outcome == OutcomeWon {
			r.stageWon[s]++
		}
	}
}

func (r *SalesRow) finish() {
	r.Cycle = Stats(r.cycles)
	var totalCycle time.Duration
	for _, c := range r.cycles {
		totalCycle += c
	}
	if n := len(r.cycles); n > 0 {
		r.AverageCycle = (totalCycle / time.Duration(n)).Truncate(time.Second)
	}
	curs := make([]string, 0, len(r.wonBy))
	for c := range r.wonBy {
		curs = append(curs, c)
	}
	sort.Strings(curs)
	for _, c := range curs {
		cf := CurrencyFigures{Currency: c, Won: r.wonBy[c], WonAmount: r.amountBy[c]}
		cf.AverageDeal = floorDiv(cf.WonAmount, cf.Won)
		// velocity/day = opps × won/(won+lost) × (amount/wonInCur) ÷ (totalCycle/nCycles in days)
		//             = opps·won·amount·nCycles·86400s / ((won+lost)·wonInCur·totalCycle)
		if n := int64(len(r.cycles)); n > 0 && totalCycle > 0 && r.Won+r.Lost > 0 {
			num := new(big.Int).SetInt64(r.Opportunities)
			num.Mul(num, big.NewInt(r.Won))
			num.Mul(num, big.NewInt(cf.WonAmount))
			num.Mul(num, big.NewInt(n))
			num.Mul(num, big.NewInt(int64(24*time.Hour)))
			den := big.NewInt(r.Won + r.Lost)
			den.Mul(den, big.NewInt(cf.Won))
			den.Mul(den, big.NewInt(int64(totalCycle)))
			q := new(big.Int)
			m := new(big.Int)
			q.DivMod(num, den, m) // Euclidean: floor for positive den
			if q.IsInt64() {
				cf.VelocityPerDay, cf.HasVelocity = q.Int64(), true
			}
		}
		r.Currencies = append(r.Currencies, cf)
	}
	for s, n := range r.stageEntered {
		r.Stages = append(r.Stages, StageConversion{Stage: s, Entered: n, Won: r.stageWon[s]})
	}
	sort.Slice(r.Stages, func(i, j int) bool {
		if r.Stages[i].Entered != r.Stages[j].Entered {
			return r.Stages[i].Entered > r.Stages[j].Entered
		}
		return r.Stages[i].Stage < r.Stages[j].Stage
	})
	r.cycles, r.wonBy, r.amountBy, r.stageEntered, r.stageWon = nil, nil, nil, nil, nil
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	if b == 0 {
		return 0
	}
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Sales computes sales results per group and in total. GroupRep groups by
// the deal owner (the first assigned rep when the deal has no owner).
func Sales(facts []Fact, g GroupBy) (rows []SalesRow, total SalesRow) {
	byKey := map[string]*SalesRow{}
	for i := range facts {
		f := &facts[i]
		if !f.Captured() {
			continue
		}
		total.add(f)
		if g == GroupNone || (f.DealAt.IsZero() && f.Outcome == OutcomeNone) {
			continue
		}
		b := BucketOf(f, g)
		if g == GroupRep {
			b.Key = f.DealRep
			if b.Key == "" {
				b.Key = f.Rep
			}
		}
		r := byKey[b.Key]
		if r == nil {
			r = &SalesRow{Key: b.Key, Start: b.Start}
			byKey[b.Key] = r
		}
		r.add(f)
	}
	total.finish()
	for _, r := range byKey {
		r.finish()
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows, total
}

// Spend is campaign spend over whole UTC days [From, To).
type Spend struct {
	Campaign string
	From, To time.Time
	Money
}

// Counted is the part of s that falls into [from, to), pro rata by whole
// days, rounded down.
func (s Spend) Counted(from, to time.Time) int64 {
	days := int64(s.To.Sub(s.From) / (24 * time.Hour))
	if days <= 0 {
		return 0
	}
	lo, hi := s.From, s.To
	if from.After(lo) {
		lo = from
	}
	if to.Before(hi) {
		hi = to
	}
	if !hi.After(lo) {
		return 0
	}
	// Count whole days of the spend period that start inside [lo, hi).
	var overlap int64
	for d := s.From; d.Before(s.To); d = d.Add(24 * time.Hour) {
		if !d.Before(lo) && d.Before(hi) {
			overlap++
		}
	}
	if overlap == days {
		return s.Minor
	}
	n := new(big.Int).Mul(big.NewInt(s.Minor), big.NewInt(overlap))
	q, m := new(big.Int), new(big.Int)
	q.DivMod(n, big.NewInt(days), m)
	return q.Int64()
}

// CostRow is the cost of one campaign (or all) in one currency.
type CostRow struct {
	Campaign                        string
	Spend                           Money
	Leads, MQLs, Opportunities, Won int64
}

// Per divides the spend by n, rounded down; ok is false when n is 0.
func (r CostRow) Per(n int64) (Money, bool) {
	if n == 0 {
		return Money{}, false
	}
	return Money{r.Spend.Currency, floorDiv(r.Spend.Minor, n)}, true
}

// Cost joins spend with the cohort's leads by first-touch campaign. Rows are
// per campaign and spend currency; totals per currency over the campaigns
// with spend in that currency.
func Cost(facts []Fact, spends []Spend, from, to time.Time) (rows, totals []CostRow) {
	type counts struct{ leads, mqls, opps, won int64 }
	byCampaign := map[string]*counts{}
	for i := range facts {
		f := &facts[i]
		if !f.Captured() {
			continue
		}
		c := byCampaign[f.Campaign]
		if c == nil {
			c = &counts{}
			byCampaign[f.Campaign] = c
		}
		c.leads++
		if f.Reached(StepMQL) {
			c.mqls++
		}
		if f.Reached(StepOpportunity) {
			c.opps++
		}
		if f.Reached(StepWon) {
			c.won++
		}
	}
	type rk struct{ campaign, cur string }
	spent := map[rk]int64{}
	for _, s := range spends {
		if overlaps(s, from, to) {
			spent[rk{s.Campaign, s.Currency}] += s.Counted(from, to)
		}
	}
	tot := map[string]*CostRow{}
	for k, v := range spent {
		c := byCampaign[k.campaign]
		if c == nil {
			c = &counts{}
		}
		r := CostRow{Campaign: k.campaign, Spend: Money{k.cur, v}, Leads: c.leads, MQLs: c.mqls, Opportunities: c.opps, Won: c.won}
		rows = append(rows, r)
		t := tot[k.cur]
		if t == nil {
			t = &CostRow{Spend: Money{Currency: k.cur}}
			tot[k.cur] = t
		}
		t.Spend.Minor += v
		t.Leads += c.leads
		t.MQLs += c.mqls
		t.Opportunities += c.opps
		t.Won += c.won
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Campaign != rows[j].Campaign {
			return rows[i].Campaign < rows[j].Campaign
		}
		return rows[i].Spend.Currency < rows[j].Spend.Currency
	})
	for _, t := range tot {
		totals = append(totals, *t)
	}
	sort.Slice(totals, func(i, j int) bool { return totals[i].Spend.Currency < totals[j].Spend.Currency })
	return rows, totals
}

func overlaps(s Spend, from, to time.Time) bool { return s.From.Before(to) && from.Before(s.To) }

// CalibrationRow is the outcome of one score band or grade.
type CalibrationRow struct {
	Key                         string
	Leads, MQLs, Qualified, Won int64
	lo                          int64
}

// Unscored is the band of leads never scored.
const Unscored = "unscored"

// Calibration groups the cohort by score band (width points) and by grade,
// using the score at MQL, else the latest score.
func Calibration(facts []Fact, width int64) (byBand, byGrade []CalibrationRow) {
	if width <= 0 {
		width = 10
	}
	bands, grades := map[string]*CalibrationRow{}, map[string]*CalibrationRow{}
	get := func(m map[string]*CalibrationRow, k string, lo int64) *CalibrationRow {
		r := m[k]
		if r == nil {
			r = &CalibrationRow{Key: k, lo: lo}
			m[k] = r
		}
		return r
	}
	for i := range facts {
		f := &facts[i]
		if !f.Captured() {
			continue
		}
		score, grade, scored := f.Score, f.Grade, !f.ScoredAt.IsZero()
		if !f.MQLAt.IsZero() {
			score, grade, scored = f.MQLScore, f.MQLGrade, true
		}
		var b *CalibrationRow
		if scored {
			lo := floorDiv(score, width) * width
			b = get(bands, fmt.Sprintf("%d-%d", lo, lo+width-1), lo)
		} else {
			b = get(bands, Unscored, 1<<62)
		}
		if grade == "" {
			grade = "GRADE_UNSPECIFIED"
		}
		gr := get(grades, grade, gradeOrder(grade))
		for _, r := range []*CalibrationRow{b, gr} {
			r.Leads++
			if f.Reached(StepMQL) {
				r.MQLs++
			}
			if f.Reached(StepQualified) {
				r.Qualified++
			}
			if f.Reached(StepWon) {
				r.Won++
			}
		}
	}
	return calRows(bands), calRows(grades)
}

func gradeOrder(g string) int64 {
	switch g {
	case "GRADE_A":
		return 1
	case "GRADE_B":
		return 2
	case "GRADE_C":
		return 3
	case "GRADE_D":
		return 4
	}
	return 100
}

func calRows(m map[string]*CalibrationRow) []CalibrationRow {
	out := make([]CalibrationRow, 0, len(m))
	for _, r := range m {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].lo != out[j].lo {
			return out[i].lo < out[j].lo
		}
		return out[i].Key < out[j].Key
	})
	return out
}
