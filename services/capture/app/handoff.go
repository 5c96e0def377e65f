package app

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// Scoring's idempotent methods: the client retries them on Unavailable.
const (
	upsertLeadMethod       = "/leadflow.scoring.v1.ScoringService/UpsertLead"
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
		err = c.scoring.UpsertLead(ctx, domain.Profile(sl.Lead, sl.FreeMail))
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
