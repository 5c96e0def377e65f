package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// AuthorityRole is the contact's role in the purchase decision
// (leadflow.scoring.v1.AuthorityRole).
type AuthorityRole int32

// Authority roles.
const (
	AuthorityUnspecified   AuthorityRole = 0
	AuthorityDecisionMaker AuthorityRole = 1
	AuthorityEconomicBuyer AuthorityRole = 2
	AuthorityInfluencer    AuthorityRole = 3
	AuthorityChampion      AuthorityRole = 4
	AuthorityUser          AuthorityRole = 5
	maxAuthorityRole                     = AuthorityUser
)

// Bant is the sales qualification of a lead.
type Bant struct {
	Budget          *Money        `json:"budget,omitempty"`
	BudgetConfirmed bool          `json:"budget_ok,omitempty"`
	Authority       AuthorityRole `json:"authority,omitempty"`
	NeedDescription string        `json:"need,omitempty"`
	NeedConfirmed   bool          `json:"need_ok,omitempty"`
	Timeline        time.Time     `json:"timeline"`
	UpdatedAt       time.Time     `json:"updated_at"`
	UpdatedBy       string        `json:"updated_by,omitempty"`
}

// Criteria met: budget (confirmed, positive amount), authority (decision
// maker or economic buyer), need (confirmed and described), timeline (a
// purchase date is set).
func (b *Bant) BudgetMet() bool {
	return b.BudgetConfirmed && b.Budget != nil && b.Budget.AmountMinor > 0
}

// AuthorityMet reports whether the contact decides or signs off the budget.
func (b *Bant) AuthorityMet() bool {
	return b.Authority == AuthorityDecisionMaker || b.Authority == AuthorityEconomicBuyer
}

// NeedMet reports whether the need is described and confirmed.
func (b *Bant) NeedMet() bool { return b.NeedConfirmed && strings.TrimSpace(b.NeedDescription) != "" }

// TimelineMet reports whether an expected purchase date is set.
func (b *Bant) TimelineMet() bool { return !b.Timeline.IsZero() }

// Met counts the criteria met (0–4).
func (b *Bant) Met() int32 {
	n := int32(0)
	for _, ok := range []bool{b.BudgetMet(), b.AuthorityMet(), b.NeedMet(), b.TimelineMet()} {
		if ok {
			n++
		}
	}
	return n
}

// Validate returns every invalid field of b (paths as in UpdateBantRequest).
func (b *Bant) Validate() []FieldViolation {
	var v []FieldViolation
	if b.Budget != nil {
		if b.Budget.AmountMinor < 0 {
			v = append(v, FieldViolation{"bant.budget.amount_minor", "must not be negative"})
		}
		if len(b.Budget.CurrencyCode) != 3 {
			v = append(v, FieldViolation{"bant.budget.currency_code", "must be an ISO 4217 code"})
		}
	}
	if b.BudgetConfirmed && b.Budget == nil {
		v = append(v, FieldViolation{"bant.budget", "a confirmed budget needs an amount"})
	}
	if b.Authority < 0 || b.Authority > maxAuthorityRole {
		v = append(v, FieldViolation{"bant.authority_role", "unknown role"})
	}
	if b.NeedConfirmed && strings.TrimSpace(b.NeedDescription) == "" {
		v = append(v, FieldViolation{"bant.need_description", "a confirmed need must be described"})
	}
	return v
}

func (b *Bant) sameContent(o *Bant) bool {
	eqMoney := (b.Budget == nil) == (o.Budget == nil) && (b.Budget == nil || *b.Budget == *o.Budget)
	return eqMoney && b.BudgetConfirmed == o.BudgetConfirmed && b.Authority == o.Authority &&
		b.NeedDescription == o.NeedDescription && b.NeedConfirmed == o.NeedConfirmed && b.Timeline.Equal(o.Timeline)
}

// Transition is one recorded status move: who, when, why.
type Transition struct {
	From      Status    `json:"from"`
	To        Status    `json:"to"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	At        time.Time `json:"at"`
	RequestID string    `json:"req,omitempty"`
	Owner     string    `json:"owner,omitempty"`
}

// transitions is THE table of allowed status moves (DESIGN.md §1):
//
//	POTENTIAL → WORKING   a rep accepted the routed lead
//	POTENTIAL → NURTURING fits, but not now (or a rep recycled it before accepting)
//	POTENTIAL → BAD_FIT   no fit (junk)
//	WORKING   → WORKING   reassigned to another rep (owner changes)
//	WORKING   → QUALIFIED BANT done: a real opportunity, becomes a deal
//	WORKING   → NURTURING the rep gives it back (recycle, unreachable)
//	WORKING   → BAD_FIT   the rep marks it junk
//	NURTURING → WORKING   heated up again, routed, and a rep accepted it
//	NURTURING → BAD_FIT   no fit after all
//	QUALIFIED → NURTURING deal lost and recycled
//	QUALIFIED → BAD_FIT   deal lost: no fit
//	BAD_FIT   → POTENTIAL re-opened by sales ops (a mistaken junk)
//
// Everything else is refused with ErrIllegalTransition.
var transitions = map[Status][]Status{
	StatusPotential: {StatusWorking, StatusNurturing, StatusBadFit},
	StatusWorking:   {StatusWorking, StatusQualified, StatusNurturing, StatusBadFit},
	StatusNurturing: {StatusWorking, StatusBadFit},
	StatusQualified: {StatusNurturing, StatusBadFit},
	StatusBadFit:    {StatusPotential},
}

// Allowed reports whether the table allows from → to.
func Allowed(from, to Status) bool { return slices.Contains(transitions[from], to) }

// EffectKind names a side effect a change must have: an event to publish or
// a hand-off job to schedule. Effects go to the record's outbox in the same
// write as the change, so none is lost when the process dies after the write.
type EffectKind string

// Effect kinds.
const (
	EffectLeadScored    EffectKind = "event.lead_scored"
	EffectMQLReached    EffectKind = "event.mql_reached"
	EffectStatusChanged EffectKind = "event.status_changed"
	EffectLeadQualified EffectKind = "event.lead_qualified"
	EffectRouteLead     EffectKind = "job.route_lead"
	EffectReleaseLead   EffectKind = "job.release_lead"
	EffectCreateDeal    EffectKind = "job.create_deal"
)

// IsJob reports whether the effect is a hand-off job (else an event).
func (k EffectKind) IsJob() bool { return strings.HasPrefix(string(k), "job.") }

// Effect is one pending event or hand-off. Key is unique per lead: the job
// id for jobs (deterministic, so scheduling twice keeps one job), the event
// id for events (assigned before the write).
type Effect struct {
	Kind      EffectKind `json:"kind"`
	Key       string     `json:"key"`
	At        time.Time  `json:"at"`
	Actor     string     `json:"actor,omitempty"`
	Score     *Score     `json:"score,omitempty"`
	PrevTotal int32      `json:"prev,omitempty"`
	From      Status     `json:"from,omitempty"`
	To        Status     `json:"to,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Owner     string     `json:"owner,omitempty"`
	Episode   int32      `json:"episode,omitempty"`
	Reasons   []string   `json:"reasons,omitempty"`
	RequestID string     `json:"req,omitempty"`
	BantMet   int32      `json:"bant,omitempty"`
	Amount    *Money     `json:"amount,omitempty"`
	// Seq orders effects of one lead (set by the store when written).
	Seq int64 `json:"seq"`
}

// HistoryEntry is one past score and its cause.
type HistoryEntry struct {
	Score    Score  `json:"score"`
	Cause    string `json:"cause"`
	SignalID string `json:"signal,omitempty"`
}

// Score history causes.
const (
	CauseUpsert     = "upsert"
	CauseEngagement = "engagement"
	CauseRescore    = "rescore"
)

// Record is the scoring record of one lead.
type Record struct {
	LeadID         string       `json:"lead_id"`
	OrganisationID string       `json:"org_id,omitempty"`
	Status         Status       `json:"status"`
	Owner          string       `json:"owner,omitempty"`
	Profile        Profile      `json:"profile"`
	ProfileRaw     []byte       `json:"profile_raw,omitempty"` // the LeadProfile as received, handed on to routing
	Signals        []Signal     `json:"signals,omitempty"`
	Score          Score        `json:"score"`
	Bant           Bant         `json:"bant"`
	MQLEpisodes    int32        `json:"mql_episodes,omitempty"`
	Handed         bool         `json:"handed,omitempty"`
	Qualifications int32        `json:"qualifications,omitempty"`
	Traceparent    string       `json:"traceparent,omitempty"`
	RescoredAt     time.Time    `json:"rescored_at"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`
	Transitions    []Transition `json:"transitions,omitempty"`
	// ProfileRevision is capture's revision of the profile applied last
	// (0: none known); an older one is ignored.
	ProfileRevision int64 `json:"profile_rev,omitempty"`
	// Outbox holds effects not delivered yet, in the order they arose. The
	// store keeps it beside the record (not in its JSON) so delivered
	// effects are acknowledged without rewriting the record.
	Outbox []Effect `json:"-"`
	// Rev counts writes; the store increments it.
	Rev int64 `json:"rev"`
}

// NewRecord starts the record of a lead scoring has not seen: POTENTIAL.
func NewRecord(leadID string, now time.Time) *Record {
	return &Record{LeadID: leadID, Status: StatusPotential, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
}

// AsOf is the time the stored score is valid for: the latest of the
// capture time, the applied signals and an explicit rescore. It depends only
// on the inputs, so rescoring the same inputs gives the same score.
func (r *Record) AsOf() time.Time {
	t := r.Profile.CapturedAt
	for _, s := range r.Signals {
		if s.At.After(t) {
			t = s.At
		}
	}
	if r.RescoredAt.After(t) {
		t = r.RescoredAt
	}
	return t.UTC()
}

// Outcome says what a change did.
type Outcome struct {
	// Changed: the record must be written.
	Changed bool
	// Scored: the score changed (a history entry was added).
	Scored bool
	// Handoff: an MQL hand-off to routing was scheduled.
	Handoff bool
	// History entries to append to the score history.
	History []HistoryEntry
}

// Ingest is the change for UpsertLead, RecordEngagement and ScoreLead: apply
// a profile (nil = keep), add signals (ids already applied are skipped),
// move the explicit as-of time forward (zero = keep), then rescore with m and
// decide the MQL hand-off. Nothing new and the same model → no change.
func (r *Record) Ingest(m *Model, p *Profile, raw []byte, sigs []Signal, rescoreAt time.Time, cause, signalID, actor string, now time.Time) Outcome {
	oldProfile, oldSignals := r.Profile, r.Signals
	inputs := false
	if p != nil && (!profileEqual(&r.Profile, p) || string(raw) != string(r.ProfileRaw)) {
		r.Profile, r.ProfileRaw = *p, raw
		if p.OrganisationID != "" {
			r.OrganisationID = p.OrganisationID
		}
		if p.Traceparent != "" && r.Traceparent == "" {
			r.Traceparent = p.Traceparent
		}
		inputs = true
	}
	if len(sigs) > 0 {
		seen := make(map[string]bool, len(r.Signals))
		for _, s := range r.Signals {
			seen[s.ID] = true
		}
		added := false
		for _, s := range sigs {
			if !seen[s.ID] {
				seen[s.ID] = true
				r.Signals = append(slices.Clip(r.Signals), s)
				added = true
			}
		}
		inputs = inputs || added
	}
	if rescoreAt.After(r.RescoredAt) {
		r.RescoredAt = rescoreAt.UTC()
		inputs = true
	}
	if !inputs && r.Score.ModelVersion == m.Version {
		return Outcome{}
	}
	asOf := r.AsOf()
	prev := r.Score
	next := m.Score(&r.Profile, r.Signals, asOf)
	out := Outcome{Changed: true}
	if !next.Equal(&prev) {
		r.Score = next
		out.Scored = true
		sc := next
		out.History = append(out.History, HistoryEntry{Score: sc, Cause: cause, SignalID: signalID})
		r.addEffect(Effect{Kind: EffectLeadScored, At: now, Actor: actor, Score: &sc, PrevTotal: prev.Total})
	}
	// "Heated up": for a nurtured lead, the old inputs as of the same time
	// were below the threshold and the new ones are at or above it.
	heated := func() bool {
		before := m.Score(&oldProfile, oldSignals, asOf)
		return before.Total < m.Thresholds.MQL
	}
	out.Handoff = r.maybeHandoff(heated, actor, now)
	r.UpdatedAt = now.UTC()
	return out
}

// maybeHandoff schedules the MQL hand-off to routing when the lead is MQL,
// not with sales already, not BAD_FIT, and not handed in this episode; a
// nurtured lead must also have heated up past the threshold. It returns true
// when it scheduled one.
func (r *Record) maybeHandoff(heated func() bool, actor string, now time.Time) bool {
	if !r.Score.MQL || r.Handed {
		return false
	}
	switch r.Status {
	case StatusPotential:
	case StatusNurturing:
		if heated == nil || !heated() {
			return false
		}
	default:
		return false
	}
	r.Handed = true
	r.MQLEpisodes++
	sc := r.Score
	reasons := sc.TopReasons(5)
	key := fmt.Sprintf("route:%s:%d", r.LeadID, r.MQLEpisodes)
	r.addEffect(Effect{Kind: EffectRouteLead, Key: key, At: now, Actor: actor, Score: &sc, Episode: r.MQLEpisodes, Reasons: reasons, RequestID: fmt.Sprintf("%s:mql:%d", r.LeadID, r.MQLEpisodes)})
	r.addEffect(Effect{Kind: EffectMQLReached, At: now, Actor: actor, Score: &sc, Episode: r.MQLEpisodes, Reasons: reasons})
	return true
}

// StatusChange is a SetStatus request in domain terms.
type StatusChange struct {
	To        Status
	Reason    string
	Owner     string
	RequestID string
	Actor     string
}

// SetStatus moves the status along the table. It returns changed=false for
// a retried request id or a move to the same status and owner; an illegal
// move returns ErrIllegalTransition and leaves r untouched; a missing owner
// for WORKING/QUALIFIED returns a ValidationError.
func (r *Record) SetStatus(c StatusChange, now time.Time) (changed bool, err error) {
	if c.RequestID != "" {
		for _, t := range r.Transitions {
			if t.RequestID == c.RequestID {
				return false, nil
			}
		}
	}
	from := r.Status
	owner := r.Owner
	if c.Owner != "" {
		owner = c.Owner
	}
	if from == c.To && (c.To != StatusWorking || owner == r.Owner) {
		return false, nil
	}
	if !Allowed(from, c.To) {
		return false, fmt.Errorf("%w: %s → %s is not allowed", ErrIllegalTransition, from, c.To)
	}
	switch c.To {
	case StatusWorking, StatusQualified:
		if owner == "" {
			return false, &ValidationError{Message: "a rep must own the lead", Violations: []FieldViolation{{"owner_rep_id", "required to move to " + c.To.String() + " when the lead has no owner"}}}
		}
	case StatusNurturing, StatusBadFit, StatusPotential:
		owner = ""
	}
	r.Status, r.Owner = c.To, owner
	r.Transitions = append(r.Transitions, Transition{From: from, To: c.To, Reason: c.Reason, Actor: c.Actor, At: now.UTC(), RequestID: c.RequestID, Owner: owner})
	n := len(r.Transitions)
	r.addEffect(Effect{Kind: EffectStatusChanged, At: now, Actor: c.Actor, From: from, To: c.To, Reason: c.Reason, Owner: owner})
	switch c.To {
	case StatusNurturing, StatusBadFit:
		// Free the rep: routing releases its assignment (idempotent there).
		r.addEffect(Effect{Kind: EffectReleaseLead, Key: fmt.Sprintf("release:%s:%d", r.LeadID, n), At: now, Actor: c.Actor, Reason: c.To.String() + ": " + c.Reason})
		// A recycled lead may be handed to routing again once it heats up.
		r.Handed = false
	case StatusQualified:
		r.Qualifications++
		var amount *Money
		if r.Bant.Budget != nil {
			b := *r.Bant.Budget
			amount = &b
		}
		r.addEffect(Effect{Kind: EffectCreateDeal, Key: fmt.Sprintf("deal:%s:%d", r.LeadID, r.Qualifications), At: now, Actor: c.Actor, Owner: owner, Amount: amount})
		r.addEffect(Effect{Kind: EffectLeadQualified, At: now, Actor: c.Actor, Owner: owner, BantMet: r.Bant.Met()})
		// A qualified lead is a deal now, no longer an open lead: free the
		// rep's lead capacity (the deal keeps the rep as its owner).
		r.addEffect(Effect{Kind: EffectReleaseLead, Key: fmt.Sprintf("release:%s:%d", r.LeadID, n), At: now, Actor: c.Actor, Reason: c.To.String() + ": converted to a deal"})
	case StatusPotential:
		// Re-opened: it may go to routing again right away if it is MQL.
		r.Handed = false
		r.maybeHandoff(nil, c.Actor, now)
	}
	r.UpdatedAt = now.UTC()
	return true, nil
}

// SetBant replaces the BANT; it returns false when the content is the same.
func (r *Record) SetBant(b Bant, actor string, now time.Time) (bool, error) {
	if v := b.Validate(); len(v) > 0 {
		return false, &ValidationError{Message: "invalid BANT", Violations: v}
	}
	if r.Bant.sameContent(&b) {
		return false, nil
	}
	b.UpdatedAt, b.UpdatedBy = now.UTC(), actor
	r.Bant = b
	r.UpdatedAt = now.UTC()
	return true, nil
}

func (r *Record) addEffect(e Effect) {
	e.At = e.At.UTC()
	r.Outbox = append(r.Outbox, e)
}

// RemoveEffects drops delivered effects from the outbox by key.
func (r *Record) RemoveEffects(keys map[string]bool) {
	r.Outbox = slices.DeleteFunc(r.Outbox, func(e Effect) bool { return keys[e.Key] })
}

func profileEqual(a, b *Profile) bool {
	ra, rb := a.Revenue, b.Revenue
	return a.LeadID == b.LeadID && a.OrganisationID == b.OrganisationID && a.Industry == b.Industry &&
		a.EmployeeCount == b.EmployeeCount && ((ra == nil && rb == nil) || (ra != nil && rb != nil && *ra == *rb)) &&
		a.CountryCode == b.CountryCode && a.Region == b.Region && a.JobTitle == b.JobTitle &&
		a.Seniority == b.Seniority && a.FreeMail == b.FreeMail && slices.Equal(a.Products, b.Products) &&
		a.CapturedAt.Equal(b.CapturedAt) && a.Traceparent == b.Traceparent
}

// AssignKeys gives every outbox effect without a key one from newID (event
// ids are UUIDv7 chosen before the write, so a re-publish after a crash
// carries the same id and consumers de-duplicate it).
func (r *Record) AssignKeys(newID func() string) {
	for i := range r.Outbox {
		if r.Outbox[i].Key == "" {
			r.Outbox[i].Key = newID()
		}
	}
}
