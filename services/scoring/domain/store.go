package domain

import (
	"context"
	"time"
)

// LeadWrite is what a lead transaction writes. A nil *LeadWrite writes nothing.
type LeadWrite struct {
	// Record to store (required).
	Record *Record
	// History entries to prepend to the score history.
	History []HistoryEntry
	// ClearPending drops the pending signals (they were applied).
	ClearPending bool
	// AddPending keeps a signal for a lead not seen yet (Record must be nil
	// then: nothing else is written).
	AddPending *Signal
	// Flush marks the lead as having outbox effects (or index changes) to
	// deliver; the sweeper delivers them if this process dies first.
	Flush bool
}

// LeadFunc decides a lead transaction from the current state: cur is nil
// when scoring has not seen the lead; pending are signals kept for it.
type LeadFunc func(cur *Record, pending []Signal) (*LeadWrite, error)

// FlushMark is a lead with effects to deliver, marked at a revision.
type FlushMark struct {
	LeadID string
	Rev    int64
}

// ListQuery selects one status list.
type ListQuery struct {
	Status Status
	Owner  string
	Grade  Grade
	Heat   Heat
	Offset int64
	Limit  int64
}

// Ack names the delivered effects of one lead at revision Rev (0 keeps the
// flush mark).
type Ack struct {
	LeadID string
	Keys   []string
	Rev    int64
	// Delivered also remembers Keys as delivered hand-offs (MarkDelivered),
	// so a job of one scheduled meanwhile is not delivered again.
	Delivered bool
}

// Handoff names one hand-off job of a lead (its key is the job id).
type Handoff struct{ LeadID, Key string }

// Store is what the scoring domain needs from storage. Implementations must
// run UpdateLead atomically (optimistic transaction, retried on conflict;
// ErrConflict when it keeps losing) and return ErrNotFound for unknown ids.
type Store interface {
	UpdateLead(ctx context.Context, leadID string, fn LeadFunc) (*LeadWrite, error)
	GetLead(ctx context.Context, leadID string) (*Record, error)
	ScoreHistory(ctx context.Context, leadID string, offset, limit int64) ([]HistoryEntry, bool, error)
	// ListLeads returns one page and the offset of the next (0 at the end).
	ListLeads(ctx context.Context, q ListQuery) ([]*Record, int64, error)
	// MarkDelivered and Delivered remember hand-off jobs already delivered,
	// so a job scheduled again after a crash is not delivered twice.
	MarkDelivered(ctx context.Context, hs ...Handoff) error
	Delivered(ctx context.Context, leadID, key string) (bool, error)
	// Reindex makes the status lists reflect the stored record.
	Reindex(ctx context.Context, leadID string) error
	// AckEffects removes delivered effects from leads' outboxes (and marks
	// them delivered when the ack says so) and clears the flush mark of each
	// ack's revision in the same round trip, as FlushDone does (a write that
	// added effects since marked a later revision, which stays).
	AckEffects(ctx context.Context, acks ...Ack) error
	// LeadDelivered is GetLead and Delivered(key) in one round trip.
	LeadDelivered(ctx context.Context, leadID, key string) (*Record, bool, error)
	// LeadsDelivered is LeadDelivered of many hand-offs in one round trip:
	// per hand-off the record (nil and errs[i] ErrNotFound when there is
	// none), whether it was delivered, and its error.
	LeadsDelivered(ctx context.Context, hs []Handoff) (recs []*Record, delivered []bool, errs []error, err error)
	// FlushPending lists leads marked by LeadWrite.Flush with the marked
	// revision, lowest revision first.
	FlushPending(ctx context.Context, limit int64) ([]FlushMark, error)
	// FlushDone clears the mark when the record has no outbox effect left
	// at revision rev (a later write keeps it marked).
	FlushDone(ctx context.Context, leadID string, rev int64) error

	CreateModel(ctx context.Context, m Model, activate bool, now time.Time) (Model, error)
	GetModel(ctx context.Context, version int32) (Model, error)
	// ActiveModel returns the active model, installing and activating the
	// default model on a fresh install.
	ActiveModel(ctx context.Context, now time.Time) (Model, error)
	ListModels(ctx context.Context, offset, limit int64) ([]Model, bool, error)
	ActivateModel(ctx context.Context, version int32, now time.Time) (Model, error)
}
