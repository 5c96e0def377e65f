package domain

import (
	"fmt"
	"strings"
	"time"
)

// DealStatus is where a deal is in its life.
type DealStatus int

// Deal statuses.
const (
	DealOpen DealStatus = iota + 1
	DealWon
	DealLost
)

func (s DealStatus) String() string {
	switch s {
	case DealOpen:
		return "open"
	case DealWon:
		return "won"
	case DealLost:
		return "lost"
	}
	return "unspecified"
}

// DealKind says how a deal came about.
type DealKind int

// Deal kinds.
const (
	KindNewBusiness DealKind = iota + 1
	KindUpsell
)

// StageChange is one entry of the stage history.
type StageChange struct {
	From  string    `json:"from,omitempty"`
	To    string    `json:"to"`
	Actor string    `json:"actor,omitempty"`
	At    time.Time `json:"at"`
}

// Deal is a sales opportunity.
type Deal struct {
	ID              string        `json:"id"`
	LeadID          string        `json:"lead_id,omitempty"`
	OrganisationID  string        `json:"organisation_id,omitempty"`
	OwnerRepID      string        `json:"owner_rep_id,omitempty"`
	PipelineID      string        `json:"pipeline_id"`
	StageID         string        `json:"stage_id"`
	Name            string        `json:"name"`
	Amount          Money         `json:"amount"`
	ExpectedCloseAt time.Time     `json:"expected_close_at"`
	NextStep        string        `json:"next_step,omitempty"`
	Status          DealStatus    `json:"status"`
	History         []StageChange `json:"history"`
	Traceparent     string        `json:"traceparent,omitempty"`
	CreatedAt       time.Time     `json:"created_at"`
	UpdatedAt       time.Time     `json:"updated_at"`
	ClosedAt        time.Time     `json:"closed_at"`
	LostReason      string        `json:"lost_reason,omitempty"`
	LostNote        string        `json:"lost_note,omitempty"`
	Recycled        bool          `json:"recycled,omitempty"`
	RenewalAt       time.Time     `json:"renewal_at"`
	Kind            DealKind      `json:"kind"`
	ParentDealID    string        `json:"parent_deal_id,omitempty"`
	AcceptedQuoteID string        `json:"accepted_quote_id,omitempty"`
	Version         int64         `json:"version"`
	// Stored is the deal's stored form as the store read it (not part of
	// the deal): UpdateDeal compares it with what is stored now to find a
	// concurrent change without reading the deal again.
	Stored []byte `json:"-"`
	// CreatedEventID and ClosedEventID are the ids of the DealCreated and
	// DealWon/DealLost events, kept so a retried call publishes the same
	// event again (consumers de-duplicate by id) instead of a second one.
	CreatedEventID string `json:"created_event_id,omitempty"`
	ClosedEventID  string `json:"closed_event_id,omitempty"`
}

// CloseMonth is the forecast month of the deal, "YYYY-MM" UTC: the close
// date of a closed deal, the expected close date of an open one; "" when
// unknown.
func (d *Deal) CloseMonth() string {
	t := d.ExpectedCloseAt
	if d.Status != DealOpen {
		t = d.ClosedAt
	}
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01")
}

// NewDeal are the inputs of a new deal.
type NewDeal struct {
	ID              string
	LeadID          string
	OrganisationID  string
	OwnerRepID      string
	Name            string
	Amount          Money
	ExpectedCloseAt time.Time
	NextStep        string
	Traceparent     string
	Kind            DealKind
	ParentDealID    string
	Actor           string
	EventID         string // id of the DealCreated event
}

// CreateDeal builds a deal in the pipeline's first open stage.
func CreateDeal(p *Pipeline, in NewDeal, now time.Time) (Deal, error) {
	var vs violations
	name := strings.TrimSpace(in.Name)
	if name == "" {
		vs.add("name", "must not be blank")
	}
	checkAmount(&vs, "amount", in.Amount, false)
	if err := vs.err(); err != nil {
		return Deal{}, err
	}
	first := p.FirstOpenStage()
	kind := in.Kind
	if kind == 0 {
		kind = KindNewBusiness
	}
	return Deal{
		ID:              in.ID,
		LeadID:          in.LeadID,
		OrganisationID:  in.OrganisationID,
		OwnerRepID:      in.OwnerRepID,
		PipelineID:      p.ID,
		StageID:         first.ID,
		Name:            name,
		Amount:          in.Amount,
		ExpectedCloseAt: in.ExpectedCloseAt.UTC(),
		NextStep:        strings.TrimSpace(in.NextStep),
		Status:          DealOpen,
		History:         []StageChange{{To: first.ID, Actor: in.Actor, At: now}},
		Traceparent:     in.Traceparent,
		CreatedAt:       now,
		UpdatedAt:       now,
		Kind:            kind,
		ParentDealID:    in.ParentDealID,
		CreatedEventID:  in.EventID,
		Version:         1,
	}, nil
}

// checkAmount validates an amount; required demands a positive one.
func checkAmount(vs *violations, field string, m Money, required bool) {
	if m.IsZero() {
		if required {
			vs.add(field, "is required")
		}
		return
	}
	if !ValidCurrency(m.Currency) {
		vs.add(field+".currency_code", "must be an ISO 4217 code such as EUR")
	}
	if m.Minor < 0 {
		vs.add(field+".amount_minor", "must not be negative")
	}
	if required && m.Minor == 0 {
		vs.add(field+".amount_minor", "must be positive")
	}
}

// DealUpdate holds the editable fields; nil keeps a field.
type DealUpdate struct {
	Name            *string
	OwnerRepID      *string
	Amount          *Money
	ExpectedCloseAt *time.Time
	NextStep        *string
}

// Update changes the editable fields of an open deal.
func (d *Deal) Update(u DealUpdate, now time.Time) error {
	if d.Status != DealOpen {
		return precondition("deal %s is %s; reopen it first", d.ID, d.Status)
	}
	var vs violations
	if u.Name != nil && strings.TrimSpace(*u.Name) == "" {
		vs.add("name", "must not be blank")
	}
	if u.OwnerRepID != nil && strings.TrimSpace(*u.OwnerRepID) == "" {
		vs.add("owner_rep_id", "must not be blank")
	}
	if u.Amount != nil {
		checkAmount(&vs, "amount", *u.Amount, false)
	}
	if err := vs.err(); err != nil {
		return err
	}
	if u.Name != nil {
		d.Name = strings.TrimSpace(*u.Name)
	}
	if u.OwnerRepID != nil {
		d.OwnerRepID = strings.TrimSpace(*u.OwnerRepID)
	}
	if u.Amount != nil {
		d.Amount = *u.Amount
	}
	if u.ExpectedCloseAt != nil {
		d.ExpectedCloseAt = u.ExpectedCloseAt.UTC()
	}
	if u.NextStep != nil {
		d.NextStep = strings.TrimSpace(*u.NextStep)
	}
	d.touch(now)
	return nil
}

func (d *Deal) touch(now time.Time) {
	d.UpdatedAt = now
	d.Version++
}

// MaxHistory is the most stage changes a deal keeps; a deal that reached it
// can no longer move (its document would grow without bound).
const MaxHistory = 1000

func (d *Deal) historyFull() error {
	if len(d.History) >= MaxHistory {
		return fmt.Errorf("%w: deal %s has %d stage changes", ErrResourceExhausted, d.ID, MaxHistory)
	}
	return nil
}

func (d *Deal) changeStage(to, actor string, now time.Time) {
	d.History = append(d.History, StageChange{From: d.StageID, To: to, Actor: actor, At: now})
	d.StageID = to
}

// Move moves an open deal to another open stage of its pipeline, forward or
// back. moved is false when the deal already is in the stage.
func (d *Deal) Move(p *Pipeline, stageID, actor string, now time.Time) (moved bool, err error) {
	if d.Status != DealOpen {
		return false, precondition("deal %s is %s; only ReopenDeal moves a closed deal", d.ID, d.Status)
	}
	st, ok := p.Stage(stageID)
	if !ok {
		return false, notFound("stage %q in pipeline %q", stageID, p.ID)
	}
	if st.Kind != StageOpen {
		return false, precondition("stage %q is a %s stage; use CloseWon or CloseLost", stageID, st.Kind)
	}
	if d.StageID == stageID {
		return false, nil
	}
	if err := d.historyFull(); err != nil {
		return false, err
	}
	d.changeStage(stageID, actor, now)
	d.touch(now)
	return true, nil
}

// MaxFutureClose is how far in the future a close date may lie.
const MaxFutureClose = 24 * time.Hour

// CloseWon closes an open deal as won. already is true when the deal was
// already won with the same amount and close date (a retry): nothing changes.
func (d *Deal) CloseWon(p *Pipeline, amount Money, closedAt time.Time, termMonths int, actor string, now time.Time) (already bool, err error) {
	closedAt = closedAt.UTC()
	if d.Status == DealWon && d.Amount == amount && d.ClosedAt.Equal(closedAt) {
		return true, nil
	}
	if d.Status != DealOpen {
		return false, precondition("deal %s is %s; reopen it first", d.ID, d.Status)
	}
	var vs violations
	checkAmount(&vs, "amount", amount, true)
	switch {
	case closedAt.IsZero():
		vs.add("closed_at", "is required")
	case closedAt.After(now.Add(MaxFutureClose)):
		vs.add("closed_at", "must not be in the future")
	case closedAt.Before(startOfDay(d.CreatedAt)):
		vs.add("closed_at", "must not be before the deal was created")
	}
	if termMonths <= 0 || termMonths > 120 {
		vs.add("renewal_term_months", "must be between 1 and 120")
	}
	if err := vs.err(); err != nil {
		return false, err
	}
	d.changeStage(p.WonStage().ID, actor, now)
	d.Status = DealWon
	d.Amount = amount
	d.ClosedAt = closedAt
	d.RenewalAt = AddMonths(closedAt, termMonths)
	d.LostReason, d.LostNote, d.Recycled = "", "", false
	d.touch(now)
	return false, nil
}

// CloseLost closes an open deal as lost. The reason must be in reasons
// (case-insensitive; the canonical spelling is stored). Recycling needs a
// lead. already is true for a retry of the same close.
func (d *Deal) CloseLost(p *Pipeline, reasons LostReasons, reason, note string, recycle bool, actor string, now time.Time) (already bool, err error) {
	canon, ok := reasons.Match(reason)
	if d.Status == DealLost && ok && d.LostReason == canon && d.Recycled == recycle {
		return true, nil
	}
	if d.Status != DealOpen {
		return false, precondition("deal %s is %s; reopen it first", d.ID, d.Status)
	}
	var vs violations
	if !ok {
		vs.add("reason", "must be one of %s", strings.Join(reasons.List(), ", "))
	}
	if recycle && d.LeadID == "" {
		vs.add("recycle", "the deal has no lead to recycle")
	}
	if err := vs.err(); err != nil {
		return false, err
	}
	d.changeStage(p.LostStage().ID, actor, now)
	d.Status = DealLost
	d.ClosedAt = now
	d.LostReason = canon
	d.LostNote = strings.TrimSpace(note)
	d.Recycled = recycle
	d.RenewalAt = time.Time{}
	d.touch(now)
	return false, nil
}

// Reopen moves a closed deal back into an open stage: stageID, or the last
// open stage it was in, or the pipeline's first open stage.
func (d *Deal) Reopen(p *Pipeline, stageID, actor string, now time.Time) error {
	if d.Status == DealOpen {
		return precondition("deal %s is open", d.ID)
	}
	if err := d.historyFull(); err != nil {
		return err
	}
	if stageID == "" {
		stageID = p.FirstOpenStage().ID
		for i := len(d.History) - 1; i >= 0; i-- {
			if st, ok := p.Stage(d.History[i].To); ok && st.Kind == StageOpen {
				stageID = st.ID
				break
			}
		}
	}
	st, ok := p.Stage(stageID)
	if !ok {
		return notFound("stage %q in pipeline %q", stageID, p.ID)
	}
	if st.Kind != StageOpen {
		return precondition("stage %q is a %s stage; reopen into an open stage", stageID, st.Kind)
	}
	d.changeStage(stageID, actor, now)
	d.Status = DealOpen
	d.ClosedAt = time.Time{}
	d.RenewalAt = time.Time{}
	d.LostReason, d.LostNote, d.Recycled = "", "", false
	d.touch(now)
	return nil
}

// CanUpsell checks that an upsell may be opened from d.
func (d *Deal) CanUpsell() error {
	if d.Status != DealWon {
		return precondition("deal %s is %s; upsells open from won deals", d.ID, d.Status)
	}
	return nil
}

// AddMonths adds n calendar months to t, clamping the day to the last day of
// the target month (31 Jan + 1 month = 28/29 Feb), keeping the time of day.
func AddMonths(t time.Time, n int) time.Time {
	y, m, day := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	if day > last {
		day = last
	}
	return first.AddDate(0, 0, day-1)
}

func startOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// StageDuration is the time spent in one stage.
type StageDuration struct {
	StageID  string
	Duration time.Duration
	Visits   int
}

// StageDurations sums the time between consecutive history entries per
// stage, in order of first visit. The current stage of an open deal counts
// until now; a closed deal's final (won/lost) stage counts nothing.
func StageDurations(d *Deal, now time.Time) []StageDuration {
	var out []StageDuration
	idx := map[string]int{}
	for i, h := range d.History {
		j, ok := idx[h.To]
		if !ok {
			j = len(out)
			idx[h.To] = j
			out = append(out, StageDuration{StageID: h.To})
		}
		out[j].Visits++
		var end time.Time
		switch {
		case i+1 < len(d.History):
			end = d.History[i+1].At
		case d.Status == DealOpen:
			end = now
		default:
			end = h.At
		}
		if dur := end.Sub(h.At); dur > 0 {
			out[j].Duration += dur
		}
	}
	return out
}
