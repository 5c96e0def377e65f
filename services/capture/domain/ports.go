package domain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
)

// StoredLead is a lead with capture's bookkeeping, kept together (one Redis
// hash, one Cluster slot) so that a merge changes all of it atomically.
type StoredLead struct {
	Lead *leadv1.Lead
	// Revision counts changes; each revision has its own hand-off job.
	Revision int64
	// FreeMail: the contact's e-mail is a free-mail address (kept after
	// erasure so the profile does not change).
	FreeMail bool
	// Identities are the index entries (e-mail, phone) this lead owns.
	Identities []Identity
	// Idem holds the idempotency records of the submissions applied to the
	// lead, by key hash, written in the same transaction as the change: a
	// retry after a crash between the change and the idempotency pointer
	// still replays instead of merging twice.
	Idem map[string]*capturev1.IdempotencyRecord
	// PendingScrub holds, for an erased lead, the visitor id hashes whose
	// index entries are still to be removed.
	PendingScrub []string
}

// Identity is a de-duplication index entry: the kind ("email", "phone") and
// the SHA-256 of the normalised value, so no raw e-mail or phone sits in a
// key name.
type Identity struct{ Kind, Hash string }

// NewIdentity hashes a normalised value.
func NewIdentity(kind, value string) Identity { return Identity{Kind: kind, Hash: Hash(value)} }

// Hash is the hex SHA-256 of s.
func Hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Identities of a normalised submission, e-mail first (it wins over phone).
func Identities(s *Submission) []Identity {
	var ids []Identity
	if s.Contact.Email != "" {
		ids = append(ids, NewIdentity("email", s.Contact.Email))
	}
	if s.Contact.Phone != "" {
		ids = append(ids, NewIdentity("phone", s.Contact.Phone))
	}
	return ids
}

// ErrNoChange, returned by an Update function, ends the update without
// writing.
var ErrNoChange = errors.New("no change")

// IdempotencyConflictError: the idempotency key was used before with a
// different submission (FailedPrecondition at the face).
type IdempotencyConflictError struct{ Key string }

func (e *IdempotencyConflictError) Error() string {
	return fmt.Sprintf("idempotency key %q was already used with a different submission", e.Key)
}

// ErrConflict: the update lost the race too many times.
var ErrConflict = errors.New("concurrent update of the lead; retry")

// Writes are the cross-slot writes that follow a lead change, sent in one
// pipeline: the idempotency pointer, the organisation's lead index and the
// lifecycle events.
type Writes struct {
	IdemKeyHash string
	Idem        *capturev1.IdempotencyRecord
	IdemTTL     time.Duration
	// OrgDomain adds LeadID to the domain's lead index.
	OrgDomain string
	LeadID    string
	Events    []*eventsv1.LeadEvent
	// Handoffs are scheduled on capture's hand-off queue with the other
	// writes: in the same transaction on a single Redis, so a lead is never
	// stored without its hand-off (on a Cluster, in the same round trip,
	// after the lead's own writes).
	Handoffs []Handoff
}

// Handoff is a job for capture's hand-off queue (see app.Deliver).
type Handoff struct {
	ID, LeadID, Traceparent string
	Payload                 []byte
	// Profile is the lead's profile as this write leaves it, for a direct
	// hand-off (jobs.Job.Local); nil for other hand-offs.
	Profile *leadv1.LeadProfile
}

// Store is what capture needs from its storage (Redis in production).
type Store interface {
	// Lookup reads the idempotency pointer (nil when absent) and the owner
	// lead id of each identity ("" when unclaimed) in one round trip.
	Lookup(ctx context.Context, idemKeyHash string, ids []Identity) (*capturev1.IdempotencyRecord, []string, error)
	// LookupClaim is Lookup and Claim in one round trip, for the common
	// case of a submission that creates a lead: it reads the idempotency
	// pointer (nil when absent), claims each identity for leadID as Claim
	// does, and reads the organisation of orgDomain (nil when there is none
	// or orgDomain is ""; it creates none). owners[i] is "" when leadID now
	// holds identity i; the caller releases the claims it does not use.
	LookupClaim(ctx context.Context, idemKeyHash, leadID string, ids []Identity, ttl time.Duration, orgDomain string) (rec *capturev1.IdempotencyRecord, owners []string, org *leadv1.Organisation, err error)
	// Claim claims each identity for leadID (SET NX, expiring after ttl
	// unless Create makes it permanent) and gets or creates org by its
	// domain, in one round trip. owners[i] is "" or leadID when leadID holds
	// identity i, else the lead that holds it.
	Claim(ctx context.Context, leadID string, ids []Identity, ttl time.Duration, org *leadv1.Organisation) (owners []string, orgRec *leadv1.Organisation, orgCreated bool, err error)
	// ClaimFor claims identities permanently for an existing lead; it
	// returns the ones now held by leadID.
	ClaimFor(ctx context.Context, leadID string, ids []Identity) ([]Identity, error)
	// Release gives up identities claimed for leadID (only where leadID
	// still holds them).
	Release(ctx context.Context, leadID string, ids []Identity) error
	// EnsureOrganisation gets or creates the organisation of org.Domain.
	EnsureOrganisation(ctx context.Context, org *leadv1.Organisation) (*leadv1.Organisation, bool, error)
	// Create writes a new lead (and makes its claims permanent) together
	// with w.
	Create(ctx context.Context, sl *StoredLead, w Writes) error
	// Update runs fn on the lead inside an optimistic transaction and writes
	// the result (retrying fn when the lead changed meanwhile). fn may
	// return ErrNoChange. Errors: ErrNotFound, ErrConflict, fn's error.
	Update(ctx context.Context, leadID string, fn func(*StoredLead) error) (*StoredLead, error)
	// Apply sends the cross-slot writes that follow a change.
	Apply(ctx context.Context, w Writes) error
	// Get reads a lead. Error: ErrNotFound.
	Get(ctx context.Context, leadID string) (*StoredLead, error)
	// Owner is the lead that holds an identity ("" when none).
	Owner(ctx context.Context, id Identity) (string, error)
	// LeadsOfDomain pages the lead ids of an organisation domain in id
	// order (ids are time-ordered), after the id after.
	LeadsOfDomain(ctx context.Context, domain, after string, limit int) ([]string, error)
	// GetMany reads several leads (missing ones are skipped).
	GetMany(ctx context.Context, ids []string) ([]*StoredLead, error)
	// MarkSignal remembers a signal id for ttl; false when it was seen.
	MarkSignal(ctx context.Context, signalID string, ttl time.Duration) (bool, error)
	// AddVisitorSignal keeps a signal under an anonymous visitor (for ttl)
	// unless the visitor is already stitched to a lead, whose id it returns.
	AddVisitorSignal(ctx context.Context, visitorHash string, signal []byte, ttl time.Duration) (string, error)
	// StitchVisitor maps the visitor to leadID (for ttl) and returns the
	// signals kept under it; ClearVisitor drops them once they are handed on.
	StitchVisitor(ctx context.Context, visitorHash, leadID string, ttl time.Duration) ([][]byte, error)
	ClearVisitor(ctx context.Context, visitorHash string) error
	// Scrub removes an erased lead's index entries: identities and visitor
	// mappings still pointing at it, idempotency pointers, its place in the
	// domain index; then drops the bookkeeping from the lead.
	Scrub(ctx context.Context, sl *StoredLead) error
}

// Scoring is the hand-off target (ScoringService in production).
type Scoring interface {
	UpsertLead(ctx context.Context, p *leadv1.LeadProfile) error
	// UpsertLeads hands off many profiles in one call; each upsert's spans
	// nest under traceparents[i]. It returns one error per profile (nil =
	// done), or the error of the whole call.
	UpsertLeads(ctx context.Context, ps []*leadv1.LeadProfile, traceparents []string) ([]error, error)
	RecordEngagement(ctx context.Context, s *leadv1.EngagementSignal) error
}
