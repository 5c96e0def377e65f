package app

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// Scoring's idempotent methods: the client retries them on Unavailable.
const (
	upsertLeadMethod       = "/leadflow.scoring.v1.ScoringService/UpsertLead"
	upsertLeadsMethod      = "/leadflow.scoring.v1.ScoringService/UpsertLeads"
	recordEngagementMethod = "/leadflow.scoring.v1.ScoringService/RecordEngagement"
)

// grpcScoring adapts the generated ScoringService client to domain.Scoring.
type grpcScoring struct {
	c scoringv1.ScoringServiceClient
}

// NewScoringClient is domain.Scoring over a connection to ScoringService.
func NewScoringClient(conn grpc.ClientConnInterface) domain.Scoring {
	return grpcScoring{c: scoringv1.NewScoringServiceClient(conn)}
}

func (g grpcScoring) UpsertLead(ctx context.Context, p *leadv1.LeadProfile) error {
	_, err := g.c.UpsertLead(ctx, &scoringv1.UpsertLeadRequest{Profile: p})
	return err
}

// upsertLeadsMax is UpsertLeads' limit of leads per call.
const upsertLeadsMax = 100

func (g grpcScoring) UpsertLeads(ctx context.Context, ps []*leadv1.LeadProfile, traceparents []string) ([]error, error) {
	errs := make([]error, 0, len(ps))
	for len(ps) > 0 {
		n := min(len(ps), upsertLeadsMax)
		req := &scoringv1.UpsertLeadsRequest{Leads: make([]*scoringv1.UpsertLeadRequest, n)}
		for i, p := range ps[:n] {
			req.Leads[i] = &scoringv1.UpsertLeadRequest{Profile: p, Traceparent: traceparents[i]}
		}
		resp, err := g.c.UpsertLeads(ctx, req)
		if err != nil {
			return nil, err
		}
		errs = append(errs, platform.ItemErrors(n, resp.GetResults())...)
		ps, traceparents = ps[n:], traceparents[n:]
	}
	return errs, nil
}

func (g grpcScoring) RecordEngagement(ctx context.Context, s *leadv1.EngagementSignal) error {
	_, err := g.c.RecordEngagement(ctx, &scoringv1.RecordEngagementRequest{Signal: s})
	return err
}

// Deliver is the hand-off job handler: it sends the lead's current profile
// (read at delivery time, so a late retry never sends a stale profile) or a
// signal to scoring. Scoring is idempotent (same profile → same state; signals
// by id), so a repeated delivery is harmless. A failure is retried with
// backoff by the queue; an answer that retrying cannot change
// (InvalidArgument) dead-letters the job at once.
func (c *Capture) Deliver(ctx context.Context, j jobs.Job) error {
	h := &capturev1.Handoff{}
	if err := proto.Unmarshal(j.Payload, h); err != nil {
		return jobs.Permanent(fmt.Errorf("undecodable hand-off: %w", err))
	}
	ctx, span := leadtrace.Start(ctx, c.tracer, j.Traceparent, "capture.handoff", j.LeadID)
	defer span.End()
	var err error
	switch k := h.GetKind().(type) {
	case *capturev1.Handoff_UpsertLeadId:
		var sl *domain.StoredLead
		sl, err = c.store.Get(ctx, k.UpsertLeadId)
		if errors.Is(err, domain.ErrNotFound) {
			err = jobs.Permanent(err)
			break
		}
		if err != nil {
			break
		}
		err = c.scoring.UpsertLead(ctx, sl.Profile())
	case *capturev1.Handoff_Signal:
		err = c.scoring.RecordEngagement(ctx, k.Signal)
	default:
		err = jobs.Permanent(errors.New("empty hand-off"))
	}
	if err != nil {
		if status.Code(err) == codes.InvalidArgument {
			err = jobs.Permanent(err)
		}
		leadtrace.Fail(span, errors.New(status.Code(err).String()))
		return err
	}
	leadtrace.SetOutcome(span, "delivered")
	return nil
}

// DeliverBatch is the hand-off worker's handler: the upserts of a claim are
// sent together, their profiles read in one round trip (at delivery time,
// as Deliver reads them) and sent in one UpsertLeads call; other hand-offs
// (signals) are delivered one by one, as Deliver does. Each job is settled
// by its own lead's answer.
func (c *Capture) DeliverBatch(ctx context.Context, js []jobs.Job) []error {
	errs := make([]error, len(js))
	var upserts []int
	var ids []string
	var wg sync.WaitGroup
	for i, j := range js {
		h := &capturev1.Handoff{}
		if proto.Unmarshal(j.Payload, h) == nil {
			if k, ok := h.GetKind().(*capturev1.Handoff_UpsertLeadId); ok {
				upserts, ids = append(upserts, i), append(ids, k.UpsertLeadId)
				continue
			}
		}
		wg.Go(func() { errs[i] = c.Deliver(ctx, j) })
	}
	if len(upserts) > 0 {
		c.upsertBatch(ctx, js, upserts, ids, errs)
	}
	wg.Wait()
	return errs
}

// upsertBatch delivers the upsert jobs js[idx[n]] of leads ids[n]. A direct
// job carries the profile its write left (Job.Local), which is sent as it
// is: its revision lets scoring ignore it should a newer one have arrived
// first. The others are read now, in one round trip.
func (c *Capture) upsertBatch(ctx context.Context, js []jobs.Job, idx []int, ids []string, errs []error) {
	var read []string
	for n, i := range idx {
		if _, ok := js[i].Local.(*leadv1.LeadProfile); !ok {
			read = append(read, ids[n])
		}
	}
	var sls []*domain.StoredLead
	if len(read) > 0 {
		var err error
		if sls, err = c.store.GetMany(ctx, read); err != nil {
			for _, i := range idx {
				errs[i] = err
			}
			return
		}
	}
	byID := make(map[string]*domain.StoredLead, len(sls))
	for _, sl := range sls {
		byID[sl.Lead.GetId()] = sl
	}
	var ps []*leadv1.LeadProfile
	var tps []string
	var sent []int
	for n, i := range idx {
		p, ok := js[i].Local.(*leadv1.LeadProfile)
		if !ok {
			sl, found := byID[ids[n]]
			if !found {
				errs[i] = jobs.Permanent(domain.ErrNotFound)
				continue
			}
			p = sl.Profile()
		}
		ps, tps, sent = append(ps, p), append(tps, js[i].Traceparent), append(sent, i)
	}
	if len(ps) == 0 {
		return
	}
	res, err := c.scoring.UpsertLeads(ctx, ps, tps)
	if platform.SendAlone(err) {
		// Only a malformed profile is then dead-lettered, and a scoring
		// that predates UpsertLeads still gets every lead.
		var wg sync.WaitGroup
		for _, i := range sent {
			wg.Go(func() { errs[i] = c.Deliver(ctx, js[i]) })
		}
		wg.Wait()
		return
	}
	for n, i := range sent {
		e := err
		if e == nil {
			e = res[n]
		}
		if status.Code(e) == codes.InvalidArgument {
			e = jobs.Permanent(e)
		}
		errs[i] = e
	}
}
