package domain

import "context"

// DealFilter selects deals; empty fields match everything.
type DealFilter struct {
	PipelineID string
	StageID    string
	OwnerRepID string
	CloseMonth string // "YYYY-MM"
	Status     DealStatus
	// LeadID selects the lead's open deals only (its open new-business
	// deal in each pipeline), answered from the open-deal slots.
	LeadID string
}

// Match reports whether d passes the filter.
func (f DealFilter) Match(d *Deal) bool {
	return (f.PipelineID == "" || d.PipelineID == f.PipelineID) &&
		(f.StageID == "" || d.StageID == f.StageID) &&
		(f.OwnerRepID == "" || d.OwnerRepID == f.OwnerRepID) &&
		(f.CloseMonth == "" || d.CloseMonth() == f.CloseMonth) &&
		(f.Status == 0 || d.Status == f.Status) &&
		(f.LeadID == "" || d.LeadID == f.LeadID && d.Status == DealOpen)
}

// CommitHook runs inside a deal update after the domain change and before the
// write: it records what must happen durably with the change (a scheduled
// job) so a crash between the two never loses it. before is the deal as read,
// after the deal to be written (equal versions mean nothing changes). Hooks
// may run more than once when a concurrent change forces a retry; what they
// schedule is idempotent and re-checked against the deal when it runs.
type CommitHook func(ctx context.Context, before, after *Deal) error

// Store keeps pipelines, deals, activities and quotes. Implementations turn
// "missing" into ErrNotFound and a lost optimistic race (after retries) into
// ErrAborted.
type Store interface {
	// EnsurePipeline stores p unless a pipeline with its id exists.
	EnsurePipeline(ctx context.Context, p Pipeline) error
	// CreatePipeline stores a new pipeline (ErrAlreadyExists if the id is taken).
	CreatePipeline(ctx context.Context, p Pipeline) error
	// GetPipeline loads a pipeline.
	GetPipeline(ctx context.Context, id string) (Pipeline, error)
	// ListPipelines lists pipelines by id after pageToken.
	ListPipelines(ctx context.Context, pageToken string, limit int) ([]Pipeline, string, error)
	// UpdatePipeline applies fn atomically.
	UpdatePipeline(ctx context.Context, id string, fn func(*Pipeline) error) (Pipeline, error)

	// ClaimOpenSlot makes dealID the lead's open deal in the pipeline unless
	// another deal holds the slot; it returns the holder (dealID when claimed).
	ClaimOpenSlot(ctx context.Context, leadID, pipelineID, dealID string) (string, error)
	// SwapOpenSlot moves the slot from old to new if old still holds it.
	SwapOpenSlot(ctx context.Context, leadID, pipelineID, old, new string) (bool, error)
	// ReleaseOpenSlot frees the slot if dealID holds it.
	ReleaseOpenSlot(ctx context.Context, leadID, pipelineID, dealID string) error

	// ClaimRequest binds an idempotency key (scope + request id) to id unless
	// it is bound already; it returns the bound id. Keys expire after a week.
	ClaimRequest(ctx context.Context, scope, requestID, id string) (string, error)

	// InsertDeal stores a new deal; created is false (and the stored deal is
	// returned) when a deal with its id exists already.
	InsertDeal(ctx context.Context, d Deal) (Deal, bool, error)
	// GetDeal loads a deal.
	GetDeal(ctx context.Context, id string) (Deal, error)
	// GetDealWithPipeline loads a deal and, in the same round trip, the
	// pipeline pipelineID (a guess at the deal's: nil when it does not exist).
	GetDealWithPipeline(ctx context.Context, id, pipelineID string) (Deal, *Pipeline, error)
	// UpdateDeal applies fn to the deal atomically (optimistic, retried on
	// conflict), runs hook, and writes the deal if its version changed. seen,
	// when not nil, is the deal as this call read it already (GetDeal): the
	// first attempt starts from it instead of reading it again.
	UpdateDeal(ctx context.Context, id string, seen *Deal, fn func(*Deal) error, hook CommitHook) (Deal, error)
	// ListDeals pages deals matching f, newest first. With f.LeadID it
	// reads the lead's open-deal slots instead of walking an index.
	ListDeals(ctx context.Context, f DealFilter, pageToken string, limit int) ([]Deal, string, error)
	// DealsClosingIn returns the deals whose close month is one of months.
	DealsClosingIn(ctx context.Context, months []string) ([]Deal, error)

	// AddActivity stores an activity on an existing deal. With a requestID
	// seen before it returns the first activity and created=false.
	AddActivity(ctx context.Context, a Activity, requestID string) (Activity, bool, error)
	// UpdateActivity applies fn to an activity atomically.
	UpdateActivity(ctx context.Context, dealID, activityID string, fn func(*Activity) error) (Activity, error)
	// ListActivities pages a deal's activities, oldest first.
	ListActivities(ctx context.Context, dealID, pageToken string, limit int) ([]Activity, string, error)

	// AddQuote stores the quote build returns for the deal's next version,
	// atomically with reading the deal and the version count.
	AddQuote(ctx context.Context, dealID string, build func(d *Deal, version int32) (Quote, error)) (Quote, error)
	// UpdateQuote applies fn to a quote and its deal atomically; both are
	// written when changed (the deal when its version changed). fn's error
	// is returned after the write when keep(err) is true (e.g. expiry).
	UpdateQuote(ctx context.Context, dealID, quoteID string, fn func(d *Deal, q *Quote) error, keep func(error) bool) (Deal, Quote, error)
	// ListQuotes returns a deal's quotes by version.
	ListQuotes(ctx context.Context, dealID string) ([]Quote, error)
}
