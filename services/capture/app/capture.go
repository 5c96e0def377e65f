package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/telemetry"
)

// errLostClaim: another submission claimed the e-mail (or the only
// identity) first; merge into its lead instead.
var errLostClaim = errors.New("identity claimed by another submission")

// errNeedPrep stops a merge transaction that needs Redis calls made outside
// it first (see merge).
var errNeedPrep = errors.New("merge needs preparation")

// eventNS makes deterministic event ids for events that may be published
// again after a crash (reporting de-duplicates by id).
var eventNS = uuid.MustParse("6f1c1b0e-2a55-4c0e-9a61-1d1f0c5a7e10")

// Capture runs capture's use cases: submit (create or merge, idempotent),
// engagement signals with visitor stitching, read, find, erase, and the
// hand-off delivery to scoring.
type Capture struct {
	store   domain.Store
	queue   *jobs.Queue
	events  *events.Publisher
	scoring domain.Scoring
	tracer  trace.Tracer
	logger  *slog.Logger
	cfg     Config
	now     func() time.Time

	submissions, signals metric.Int64Counter
}

type idemReq struct {
	key, hash string
	reqHash   []byte
}

var outcomeAttrs = telemetry.NewAttrs("outcome")

func (c *Capture) count(ctx context.Context, ctr metric.Int64Counter, outcome string) {
	ctr.Add(ctx, 1, outcomeAttrs.Of(outcome))
}

// Submit captures one submission. defaultChannel replaces an unspecified
// touch channel (API for SubmitLead, IMPORT for ImportLeads).
func (c *Capture) Submit(ctx context.Context, sub *capturev1.LeadSubmission, idemKey string, defaultChannel leadv1.Channel) (*capturev1.SubmitLeadResponse, error) {
	now := c.now()
	n, err := domain.Normalise(sub, c.cfg.DefaultRegion, now, defaultChannel)
	if err != nil {
		c.count(ctx, c.submissions, "rejected")
		return nil, err
	}
	var idem idemReq
	if idemKey != "" {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(sub)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(b)
		idem = idemReq{key: idemKey, hash: domain.Hash(idemKey), reqHash: h[:]}
	}
	ids := domain.Identities(n)
	// Most submissions create a lead, so the first round trip already
	// claims the identities for a fresh id (and reads the idempotency
	// pointer and the organisation): a new lead takes two round trips, this
	// and the write. Claims it does not use (a replay, a merge) are released.
	uid, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	pre := &preClaim{id: uid.String()}
	rec, owners, org, err := c.store.LookupClaim(ctx, idem.hash, pre.id, ids, c.cfg.ClaimTTL, n.Org.GetDomain())
	if err != nil {
		return nil, err
	}
	pre.org = org
	replaying := rec != nil && c.fresh(rec, now)
	if replaying || slices.ContainsFunc(owners, func(o string) bool { return o != "" }) {
		// A replay, or another lead holds an identity (a merge): the
		// fresh id's claims go back, and owners reads as a look-up would.
		c.release(ctx, pre.id, heldBy(ids, owners, pre.id))
		pre = nil
	}
	if replaying {
		return c.replay(ctx, idem, rec, false, n.VisitorID)
	}
	wait := 10 * time.Millisecond
	for attempt := 0; attempt < 12; attempt++ {
		target, matched := "", ""
		for i, o := range owners {
			if o != "" {
				target, matched = o, ids[i].Kind
				break
			}
		}
		if target == "" {
			var resp *capturev1.SubmitLeadResponse
			resp, owners, err = c.create(ctx, n, ids, idem, now, pre)
			pre = nil
			if errors.Is(err, errLostClaim) {
				continue
			}
			return resp, err
		}
		resp, err := c.merge(ctx, target, matched, n, ids, idem, now)
		if errors.Is(err, domain.ErrErased) {
			// An erased lead must own no identity: drop entries that still
			// point at it (a claim that raced the erasure).
			if err := c.store.Release(ctx, target, ids); err != nil {
				return nil, err
			}
		}
		if errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrErased) {
			// The winner of the claim has not written its lead yet, or the
			// lead is being erased (its index entries go next): look again.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, 500*time.Millisecond)
			if _, owners, err = c.store.Lookup(ctx, "", ids); err != nil {
				return nil, err
			}
			continue
		}
		return resp, err
	}
	c.count(ctx, c.submissions, "conflict")
	return nil, domain.ErrConflict
}

func (c *Capture) fresh(r *capturev1.IdempotencyRecord, now time.Time) bool {
	return r.GetCreatedAt() == nil || now.Sub(r.GetCreatedAt().AsTime()) < c.cfg.IdempotencyTTL
}

func (c *Capture) idemRecord(idem idemReq, resp *capturev1.SubmitLeadResponse, jobID, tp string, now time.Time) *capturev1.IdempotencyRecord {
	return &capturev1.IdempotencyRecord{RequestHash: idem.reqHash, Response: proto.Clone(resp).(*capturev1.SubmitLeadResponse), HandoffJobId: jobID, Traceparent: tp, CreatedAt: timestamppb.New(now)}
}

// preClaim is a fresh lead id whose identities LookupClaim already
// claimed, with the organisation it found (nil: none yet).
type preClaim struct {
	id  string
	org *leadv1.Organisation
}

// heldBy returns the identities of ids that owners says leadID holds ("" is
// a claim just taken).
func heldBy(ids []domain.Identity, owners []string, leadID string) []domain.Identity {
	var held []domain.Identity
	for i, o := range owners {
		if o == "" || o == leadID {
			held = append(held, ids[i])
		}
	}
	return held
}

// release gives back claims taken for leadID and not used; a failure only
// costs their expiry.
func (c *Capture) release(ctx context.Context, leadID string, held []domain.Identity) {
	if len(held) == 0 {
		return
	}
	if err := c.store.Release(ctx, leadID, held); err != nil {
		c.logger.WarnContext(ctx, "releasing claims failed; they expire", "error", err.Error())
	}
}

// orgCandidate is a new organisation for the submission's domain, to
// create when the domain has none yet; nil when there is no domain.
func (c *Capture) orgCandidate(n *domain.Submission, now time.Time) (*leadv1.Organisation, error) {
	if n.Org.GetDomain() == "" {
		return nil, nil
	}
	oid, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	return domain.NewOrganisation(oid.String(), n, now), nil
}

// create writes a new lead. With pre, its identities are claimed already
// (and none is another lead's); otherwise it claims them first.
func (c *Capture) create(ctx context.Context, n *domain.Submission, ids []domain.Identity, idem idemReq, now time.Time, pre *preClaim) (*capturev1.SubmitLeadResponse, []string, error) {
	var (
		id         string
		owners     []string
		org        *leadv1.Organisation
		orgCreated bool
	)
	switch {
	case pre != nil:
		id, owners, org = pre.id, make([]string, len(ids)), pre.org
		if org == nil && n.Org.GetDomain() != "" {
			orgCand, err := c.orgCandidate(n, now)
			if err != nil {
				return nil, nil, err
			}
			if org, orgCreated, err = c.store.EnsureOrganisation(ctx, orgCand); err != nil {
				return nil, nil, err
			}
		}
	default:
		orgCand, err := c.orgCandidate(n, now)
		if err != nil {
			return nil, nil, err
		}
		uid, err := uuid.NewV7()
		if err != nil {
			return nil, nil, err
		}
		id = uid.String()
		if owners, org, orgCreated, err = c.store.Claim(ctx, id, ids, c.cfg.ClaimTTL, orgCand); err != nil {
			return nil, nil, err
		}
	}
	held := heldBy(ids, owners, id)
	// The first identity (the e-mail when there is one) decides.
	if len(owners) > 0 && owners[0] != "" && owners[0] != id {
		c.release(ctx, id, held)
		return nil, owners, errLostClaim
	}

	jctx, span, tp := leadtrace.StartJourney(ctx, c.tracer, "capture.lead", id)
	defer span.End()
	traceID := leadtrace.TraceID(tp)
	lead := domain.NewLead(id, n, org, tp, traceID, now)
	sl := &domain.StoredLead{Lead: lead, Revision: 1, FreeMail: n.FreeMail, Identities: held, Idem: map[string]*capturev1.IdempotencyRecord{}}
	jobID := domain.HandoffJobID(id, 1)
	resp := &capturev1.SubmitLeadResponse{
		LeadId: id, Outcome: capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED,
		OrganisationId: org.GetId(), NewOrganisation: orgCreated, TraceId: traceID,
	}
	w := domain.Writes{LeadID: id}
	if org != nil {
		w.OrgDomain = org.GetDomain()
	}
	if idem.key != "" {
		r := c.idemRecord(idem, resp, jobID, tp, now)
		sl.Idem[idem.hash] = r
		w.IdemKeyHash, w.Idem, w.IdemTTL = idem.hash, r, c.cfg.IdempotencyTTL
	}
	t := n.Touch
	ev := &eventsv1.LeadEvent{LeadId: id, OrganisationId: org.GetId(), OccurredAt: timestamppb.New(now),
		Payload: &eventsv1.LeadEvent_LeadCaptured{LeadCaptured: &eventsv1.LeadCaptured{
			Channel: t.GetChannel(), Source: t.GetSource(), Medium: t.GetMedium(), Campaign: t.GetCampaign(),
			NewOrganisation: orgCreated, CountryCode: n.Org.GetCountryCode(), Industry: n.Org.GetIndustry(),
		}}}
	if err := c.events.Prepare(jctx, ev); err != nil {
		return nil, nil, err
	}
	w.Events = []*eventsv1.LeadEvent{ev}
	h, err := upsertHandoff(jobID, id, tp, sl.Profile())
	if err != nil {
		return nil, nil, err
	}
	w.Handoffs = []domain.Handoff{h}
	// The lead and its hand-off to scoring are written together.
	if err := c.store.Create(jctx, sl, w); err != nil {
		// The claims are not released: the write may have succeeded with its
		// reply lost, and then they index a real lead. If it did fail, they
		// expire after ClaimTTL.
		leadtrace.Fail(span, err)
		return nil, nil, err
	}
	if resp.StitchedSignals, err = c.stitch(jctx, id, tp, n.VisitorID); err != nil {
		leadtrace.Fail(span, err)
		return nil, nil, err
	}
	leadtrace.SetOutcome(span, "created")
	span.SetAttributes(attribute.Bool("leadflow.capture.new_organisation", orgCreated))
	c.count(ctx, c.submissions, "created")
	return resp, nil, nil
}

func (c *Capture) merge(ctx context.Context, target, matched string, n *domain.Submission, ids []domain.Identity, idem idemReq, now time.Time) (*capturev1.SubmitLeadResponse, error) {
	var (
		resp       *capturev1.SubmitLeadResponse
		replay     *capturev1.IdempotencyRecord
		filled     []string
		orgCreated bool
		newDomain  string
	)
	// The transaction function makes no Redis calls of its own (a WATCH
	// holds a pooled connection; nested calls could exhaust the pool under
	// load, and on a Cluster they may live on other nodes). When the merge
	// needs the organisation of a newly filled domain or claims for new
	// identities, it stops with errNeedPrep; they are prepared outside and
	// the merge runs again (rare: only when something new arrives).
	var (
		prepOrg     *leadv1.Organisation
		prepHeld    []domain.Identity
		prepClaimed bool
		needOrg     bool
		needIDs     []domain.Identity
		sl          *domain.StoredLead
		err         error
	)
	for round := 0; round < 4; round++ {
		sl, err = c.store.Update(ctx, target, func(sl *domain.StoredLead) error {
			replay, resp, filled, newDomain, needOrg, needIDs = nil, nil, nil, "", false, nil
			if idem.key != "" {
				if r := sl.Idem[idem.hash]; r != nil && c.fresh(r, now) {
					replay = r
					return domain.ErrNoChange
				}
			}
			var err error
			if filled, err = domain.Merge(sl.Lead, n, now); err != nil {
				return err
			}
			if slices.Contains(filled, "organisation.domain") {
				if prepOrg == nil || prepOrg.GetDomain() != sl.Lead.GetOrganisation().GetDomain() {
					needOrg = true
				} else {
					domain.AttachOrganisation(sl.Lead, prepOrg)
					newDomain = prepOrg.GetDomain()
				}
			}
			if !prepClaimed {
				for _, id := range ids {
					if !slices.Contains(sl.Identities, id) {
						needIDs = append(needIDs, id)
					}
				}
			}
			if needOrg || len(needIDs) > 0 {
				return errNeedPrep
			}
			for _, id := range prepHeld {
				if !slices.Contains(sl.Identities, id) {
					sl.Identities = append(sl.Identities, id)
				}
			}
			if slices.Contains(filled, "contact.email") {
				sl.FreeMail = n.FreeMail
			}
			sl.Revision++
			resp = &capturev1.SubmitLeadResponse{
				LeadId: target, Outcome: capturev1.SubmitOutcome_SUBMIT_OUTCOME_MERGED, MatchedOn: matched,
				FilledFields: filled, OrganisationId: sl.Lead.GetOrganisation().GetId(), NewOrganisation: orgCreated && newDomain != "",
				TraceId: sl.Lead.GetTraceId(),
			}
			for h, r := range sl.Idem {
				if !c.fresh(r, now) {
					delete(sl.Idem, h)
				}
			}
			if idem.key != "" {
				sl.Idem[idem.hash] = c.idemRecord(idem, resp, domain.HandoffJobID(target, sl.Revision), sl.Lead.GetTraceparent(), now)
			}
			return nil
		})
		if !errors.Is(err, errNeedPrep) {
			break
		}
		if needOrg {
			cand, err := c.orgCandidate(n, now)
			if err != nil {
				return nil, err
			}
			org, created, err := c.store.EnsureOrganisation(ctx, cand)
			if err != nil {
				return nil, err
			}
			prepOrg, orgCreated = org, orgCreated || created
		}
		if len(needIDs) > 0 {
			held, err := c.store.ClaimFor(ctx, target, needIDs)
			if err != nil {
				return nil, err
			}
			prepHeld, prepClaimed = append(prepHeld, held...), true
		}
	}
	if errors.Is(err, errNeedPrep) {
		return nil, domain.ErrConflict
	}
	if err != nil {
		return nil, err
	}
	if replay != nil {
		return c.replay(ctx, idem, replay, true, n.VisitorID)
	}
	tp := sl.Lead.GetTraceparent()
	jctx, span := leadtrace.Start(ctx, c.tracer, tp, "capture.merge", target)
	defer span.End()
	w := domain.Writes{LeadID: target, OrgDomain: newDomain}
	if idem.key != "" {
		w.IdemKeyHash, w.Idem, w.IdemTTL = idem.hash, sl.Idem[idem.hash], c.cfg.IdempotencyTTL
	}
	t := n.Touch
	ev := &eventsv1.LeadEvent{LeadId: target, OrganisationId: sl.Lead.GetOrganisation().GetId(), OccurredAt: timestamppb.New(now),
		Payload: &eventsv1.LeadEvent_LeadMerged{LeadMerged: &eventsv1.LeadMerged{
			FilledFields: filled, Channel: t.GetChannel(), Source: t.GetSource(), Campaign: t.GetCampaign(), MatchedOn: matched,
		}}}
	if err := c.events.Prepare(jctx, ev); err != nil {
		return nil, err
	}
	w.Events = []*eventsv1.LeadEvent{ev}
	h, err := upsertHandoff(domain.HandoffJobID(target, sl.Revision), target, tp, sl.Profile())
	if err != nil {
		return nil, err
	}
	w.Handoffs = []domain.Handoff{h}
	if err := c.store.Apply(jctx, w); err != nil {
		leadtrace.Fail(span, err)
		return nil, err
	}
	if resp.StitchedSignals, err = c.stitch(jctx, target, tp, n.VisitorID); err != nil {
		leadtrace.Fail(span, err)
		return nil, err
	}
	leadtrace.SetOutcome(span, "merged")
	span.SetAttributes(attribute.String("leadflow.capture.matched_on", matched))
	c.count(ctx, c.submissions, "merged")
	return resp, nil
}

// replay answers a repeated idempotency key: the first response when the
// payload is the same (re-scheduling the hand-off, which is a no-op unless
// the first attempt died before scheduling it), a conflict otherwise.
func (c *Capture) replay(ctx context.Context, idem idemReq, rec *capturev1.IdempotencyRecord, writePointer bool, visitorID string) (*capturev1.SubmitLeadResponse, error) {
	if !bytes.Equal(rec.GetRequestHash(), idem.reqHash) {
		c.count(ctx, c.submissions, "idempotency_conflict")
		return nil, &domain.IdempotencyConflictError{Key: idem.key}
	}
	leadID := rec.GetResponse().GetLeadId()
	jctx, span := leadtrace.Start(ctx, c.tracer, rec.GetTraceparent(), "capture.replay", leadID)
	defer span.End()
	if writePointer {
		if err := c.store.Apply(jctx, domain.Writes{IdemKeyHash: idem.hash, Idem: rec, IdemTTL: c.cfg.IdempotencyTTL}); err != nil {
			leadtrace.Fail(span, err)
			return nil, err
		}
	}
	if err := c.scheduleUpsert(jctx, rec.GetHandoffJobId(), leadID, rec.GetTraceparent()); err != nil {
		leadtrace.Fail(span, err)
		return nil, err
	}
	if _, err := c.stitch(jctx, leadID, rec.GetTraceparent(), visitorID); err != nil {
		leadtrace.Fail(span, err)
		return nil, err
	}
	resp := proto.Clone(rec.GetResponse()).(*capturev1.SubmitLeadResponse)
	resp.Replayed = true
	leadtrace.SetOutcome(span, "replayed")
	c.count(ctx, c.submissions, "replayed")
	return resp, nil
}

// upsertHandoff is the job that sends the lead's profile to scoring; p,
// when set, is the profile the write leaves (a direct hand-off sends it
// without reading the lead back).
func upsertHandoff(jobID, leadID, tp string, p *leadv1.LeadProfile) (domain.Handoff, error) {
	b, err := proto.Marshal(&capturev1.Handoff{Kind: &capturev1.Handoff_UpsertLeadId{UpsertLeadId: leadID}})
	return domain.Handoff{ID: jobID, LeadID: leadID, Traceparent: tp, Payload: b, Profile: p}, err
}

func (c *Capture) scheduleUpsert(ctx context.Context, jobID, leadID, tp string) error {
	h, err := upsertHandoff(jobID, leadID, tp, nil)
	if err != nil {
		return err
	}
	_, err = c.queue.Schedule(ctx, jobs.Job{ID: h.ID, Payload: h.Payload, Traceparent: h.Traceparent, LeadID: h.LeadID})
	return err
}

func (c *Capture) scheduleSignal(ctx context.Context, sig *leadv1.EngagementSignal, tp string) error {
	b, err := proto.Marshal(&capturev1.Handoff{Kind: &capturev1.Handoff_Signal{Signal: sig}})
	if err != nil {
		return err
	}
	_, err = c.queue.Schedule(ctx, jobs.Job{ID: domain.SignalJobID(sig.GetId()), Payload: b, Traceparent: tp, LeadID: sig.GetLeadId()})
	return err
}

func engagementEvent(sig *leadv1.EngagementSignal, orgID string) *eventsv1.LeadEvent {
	return &eventsv1.LeadEvent{
		Id:             uuid.NewSHA1(eventNS, []byte("engagement:"+sig.GetId())).String(),
		LeadId:         sig.GetLeadId(),
		OrganisationId: orgID,
		OccurredAt:     sig.GetOccurredAt(),
		Payload: &eventsv1.LeadEvent_EngagementRecorded{EngagementRecorded: &eventsv1.EngagementRecorded{
			SignalId: sig.GetId(), Type: sig.GetType(), Campaign: sig.GetCampaign(),
		}},
	}
}

// stitch attributes an identified visitor's pending signals to the lead and
// hands them on. The visitor→lead mapping and the read of the pending list
// are one script, so no signal can be left behind; the list is dropped only
// after every signal's hand-off is scheduled (a crash in between repeats the
// stitch next time, and scheduling is idempotent by signal id).
func (c *Capture) stitch(ctx context.Context, leadID, tp, visitorID string) (int32, error) {
	if visitorID == "" {
		return 0, nil
	}
	vh := domain.Hash(visitorID)
	raw, err := c.store.StitchVisitor(ctx, vh, leadID, c.cfg.VisitorTTL)
	if err != nil || len(raw) == 0 {
		return 0, err
	}
	var evs []*eventsv1.LeadEvent
	for _, b := range raw {
		sig := &leadv1.EngagementSignal{}
		if err := proto.Unmarshal(b, sig); err != nil {
			c.logger.WarnContext(ctx, "dropping undecodable pending signal", "lead_id", leadID)
			continue
		}
		sig.LeadId, sig.VisitorId = leadID, ""
		if err := c.scheduleSignal(ctx, sig, tp); err != nil {
			return 0, err
		}
		ev := engagementEvent(sig, "")
		if err := c.events.Prepare(ctx, ev); err != nil {
			return 0, err
		}
		evs = append(evs, ev)
	}
	if err := c.store.Apply(ctx, domain.Writes{Events: evs}); err != nil {
		return 0, err
	}
	if err := c.store.ClearVisitor(ctx, vh); err != nil {
		return 0, err
	}
	for range evs {
		c.count(ctx, c.signals, "stitched")
	}
	return int32(len(evs)), nil
}

// RecordEngagement records a signal of a lead or of an anonymous visitor.
func (c *Capture) RecordEngagement(ctx context.Context, in *leadv1.EngagementSignal) (*capturev1.RecordEngagementResponse, error) {
	sig := proto.Clone(in).(*leadv1.EngagementSignal)
	if sig.GetLeadId() != "" {
		sl, err := c.store.Get(ctx, sig.GetLeadId())
		if err != nil {
			return nil, err
		}
		if sl.Lead.GetErased() {
			return nil, domain.ErrErased
		}
		fresh, err := c.store.MarkSignal(ctx, sig.GetId(), c.cfg.VisitorTTL)
		if err != nil {
			return nil, err
		}
		return c.attribute(ctx, sig, sl, fresh)
	}
	fresh, err := c.store.MarkSignal(ctx, sig.GetId(), c.cfg.VisitorTTL)
	if err != nil {
		return nil, err
	}
	if !fresh {
		c.count(ctx, c.signals, "duplicate")
		return &capturev1.RecordEngagementResponse{Duplicate: true}, nil
	}
	b, err := proto.Marshal(sig)
	if err != nil {
		return nil, err
	}
	leadID, err := c.store.AddVisitorSignal(ctx, domain.Hash(sig.GetVisitorId()), b, c.cfg.VisitorTTL)
	if err != nil {
		return nil, err
	}
	if leadID == "" {
		c.count(ctx, c.signals, "pending_visitor")
		return &capturev1.RecordEngagementResponse{PendingVisitor: true}, nil
	}
	sl, err := c.store.Get(ctx, leadID)
	if err != nil {
		return nil, err
	}
	sig.LeadId, sig.VisitorId = leadID, ""
	return c.attribute(ctx, sig, sl, true)
}

func (c *Capture) attribute(ctx context.Context, sig *leadv1.EngagementSignal, sl *domain.StoredLead, fresh bool) (*capturev1.RecordEngagementResponse, error) {
	tp := sl.Lead.GetTraceparent()
	jctx, span := leadtrace.Start(ctx, c.tracer, tp, "capture.engagement", sl.Lead.GetId())
	defer span.End()
	// Scheduled again for a duplicate too: a no-op unless the first attempt
	// died before scheduling.
	if err := c.scheduleSignal(jctx, sig, tp); err != nil {
		leadtrace.Fail(span, err)
		return nil, err
	}
	if fresh {
		if err := c.events.Publish(jctx, engagementEvent(sig, sl.Lead.GetOrganisation().GetId())); err != nil {
			leadtrace.Fail(span, err)
			return nil, err
		}
		leadtrace.SetOutcome(span, "recorded")
		c.count(ctx, c.signals, "recorded")
	} else {
		leadtrace.SetOutcome(span, "duplicate")
		c.count(ctx, c.signals, "duplicate")
	}
	return &capturev1.RecordEngagementResponse{LeadId: sl.Lead.GetId(), Duplicate: !fresh}, nil
}

// Get reads a lead.
func (c *Capture) Get(ctx context.Context, leadID string) (*leadv1.Lead, error) {
	sl, err := c.store.Get(ctx, leadID)
	if err != nil {
		return nil, err
	}
	return sl.Lead, nil
}

// GetBatch reads several leads (ids without repeats) in one Redis round
// trip: the leads found, in the order of ids, and the ids not found.
func (c *Capture) GetBatch(ctx context.Context, ids []string) ([]*leadv1.Lead, []string, error) {
	sls, err := c.store.GetMany(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]*leadv1.Lead, len(sls))
	for _, sl := range sls {
		byID[sl.Lead.GetId()] = sl.Lead
	}
	leads := make([]*leadv1.Lead, 0, len(sls))
	var missing []string
	for _, id := range ids {
		if l, ok := byID[id]; ok {
			leads = append(leads, l)
		} else {
			missing = append(missing, id)
		}
	}
	return leads, missing, nil
}

// Find finds leads by e-mail, phone or domain (normalised like submissions).
func (c *Capture) Find(ctx context.Context, req *capturev1.FindLeadsRequest) ([]*leadv1.Lead, string, error) {
	lookup := func(kind, v string) ([]*leadv1.Lead, string, error) {
		owner, err := c.store.Owner(ctx, domain.NewIdentity(kind, v))
		if err != nil || owner == "" {
			return nil, "", err
		}
		sls, err := c.store.GetMany(ctx, []string{owner})
		if err != nil {
			return nil, "", err
		}
		var out []*leadv1.Lead
		for _, sl := range sls {
			out = append(out, sl.Lead)
		}
		return out, "", nil
	}
	bad := func(field string, err error) error {
		return &domain.ValidationError{Violations: []domain.Violation{{Field: field, Description: err.Error()}}}
	}
	switch q := req.GetQuery().(type) {
	case *capturev1.FindLeadsRequest_Email:
		e, err := domain.NormaliseEmail(q.Email)
		if err != nil || e == "" {
			return nil, "", bad("email", domain.ErrEmailSyntax)
		}
		return lookup("email", e)
	case *capturev1.FindLeadsRequest_Phone:
		p, err := domain.NormalisePhone(q.Phone, c.cfg.DefaultRegion)
		if err != nil || p == "" {
			return nil, "", bad("phone", domain.ErrPhone)
		}
		return lookup("phone", p)
	case *capturev1.FindLeadsRequest_Domain:
		d, err := domain.NormaliseDomain(q.Domain)
		if err != nil || d == "" {
			return nil, "", bad("domain", domain.ErrDomain)
		}
		size := int(req.GetPageSize())
		if size <= 0 {
			size = 20
		}
		after := ""
		if tok := req.GetPageToken(); tok != "" {
			b, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil {
				return nil, "", bad("page_token", errors.New("not a token from a previous page"))
			}
			after = string(b)
		}
		ids, err := c.store.LeadsOfDomain(ctx, d, after, size+1)
		if err != nil {
			return nil, "", err
		}
		next := ""
		if len(ids) > size {
			ids = ids[:size]
			next = base64.RawURLEncoding.EncodeToString([]byte(ids[size-1]))
		}
		sls, err := c.store.GetMany(ctx, ids)
		if err != nil {
			return nil, "", err
		}
		out := make([]*leadv1.Lead, 0, len(sls))
		for _, sl := range sls {
			out = append(out, sl.Lead)
		}
		return out, next, nil
	}
	return nil, "", bad("query", errors.New("one of email, phone or domain is required"))
}

// Erase erases a lead's personal data. It is safe to repeat: an erased lead
// has its remaining index entries scrubbed again and is returned.
func (c *Capture) Erase(ctx context.Context, leadID, reason string) (*leadv1.Lead, error) {
	now := c.now()
	sl, err := c.store.Update(ctx, leadID, func(sl *domain.StoredLead) error {
		if sl.Lead.GetErased() {
			return domain.ErrNoChange
		}
		for _, v := range sl.Lead.GetVisitorIds() {
			sl.PendingScrub = append(sl.PendingScrub, domain.Hash(v))
		}
		domain.Erase(sl.Lead, now)
		sl.Revision++
		return nil
	})
	if err != nil {
		return nil, err
	}
	jctx, span := leadtrace.Start(ctx, c.tracer, sl.Lead.GetTraceparent(), "capture.erase", leadID)
	defer span.End()
	if err := c.store.Scrub(jctx, sl); err != nil {
		leadtrace.Fail(span, err)
		return nil, err
	}
	ev := &eventsv1.LeadEvent{
		Id:     uuid.NewSHA1(eventNS, []byte("erased:"+leadID)).String(),
		LeadId: leadID, OrganisationId: sl.Lead.GetOrganisation().GetId(), OccurredAt: sl.Lead.GetErasedAt(),
		Payload: &eventsv1.LeadEvent_LeadErased{LeadErased: &eventsv1.LeadErased{Reason: reason}},
	}
	if err := c.events.Publish(jctx, ev); err != nil {
		leadtrace.Fail(span, err)
		return nil, err
	}
	leadtrace.SetOutcome(span, "erased")
	return sl.Lead, nil
}
