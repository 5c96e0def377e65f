package grpcapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/pipeline/domain"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// Queue names (keys lf:{jobs:<name>}:*).
const (
	RecycleQueue = "pipeline-recycle"
	RenewalQueue = "pipeline-renewal"
)

// recyclePayload is the durable SetStatus(NURTURING) hand-off.
type recyclePayload struct {
	DealID    string `json:"deal_id"`
	LeadID    string `json:"lead_id"`
	Reason    string `json:"reason"`
	Owner     string `json:"owner_rep_id"`
	LostCount int    `json:"lost_count"` // which loss of the deal this is
}

// renewalPayload is a RenewalDue reminder.
type renewalPayload struct {
	DealID    string    `json:"deal_id"`
	RenewalAt time.Time `json:"renewal_at"`
	EventID   string    `json:"event_id"` // so a repeated delivery repeats the same event id
}

func lostCount(d *domain.Deal) int {
	n := 0
	for _, h := range d.History {
		if h.To == d.StageID && d.Status == domain.DealLost {
			n++
		}
	}
	return n
}

func recycleJobID(d *domain.Deal) string {
	return "recycle:" + d.ID + ":" + strconv.Itoa(lostCount(d))
}

func renewalJobID(d *domain.Deal) string {
	return "renewal:" + d.ID + ":" + strconv.FormatInt(d.RenewalAt.Unix(), 10)
}

// scheduleRecycle records the hand-off of a lost deal's lead to NURTURING.
// The job id names the loss, so a retried CloseLost schedules nothing new.
func (s *Server) scheduleRecycle(ctx context.Context, d *domain.Deal) error {
	b, err := json.Marshal(recyclePayload{DealID: d.ID, LeadID: d.LeadID, Reason: d.LostReason, Owner: d.OwnerRepID, LostCount: lostCount(d)})
	if err != nil {
		return err
	}
	_, err = s.d.Recycle.Schedule(ctx, jobs.Job{ID: recycleJobID(d), Payload: b, Traceparent: d.Traceparent, LeadID: d.LeadID})
	return err
}

// scheduleRenewal records the RenewalDue reminder of a won deal, due
// RenewalLeadTime before the renewal date (now, if that has passed).
func (s *Server) scheduleRenewal(ctx context.Context, d *domain.Deal) error {
	if d.Status != domain.DealWon || d.RenewalAt.IsZero() {
		return nil
	}
	b, err := json.Marshal(renewalPayload{DealID: d.ID, RenewalAt: d.RenewalAt, EventID: newID()})
	if err != nil {
		return err
	}
	due := d.RenewalAt.Add(-s.d.RenewalLeadTime)
	_, err = s.d.Renewals.Schedule(ctx, jobs.Job{ID: renewalJobID(d), Payload: b, Traceparent: d.Traceparent, LeadID: d.LeadID, Due: due})
	return err
}

// HandleRecycle delivers a recycle hand-off: SetStatus(NURTURING) on scoring,
// idempotent by request_id = job id. A job whose deal is no longer lost with
// recycle (reopened since, or the close never committed) is dropped.
// Unavailable and other transient errors retry with backoff; an answer that
// retrying cannot change (invalid, not found, illegal transition) goes to the
// dead letters at once.
func (s *Server) HandleRecycle(ctx context.Context, j jobs.Job) error {
	var p recyclePayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return jobs.Permanent(fmt.Errorf("decode recycle job: %w", err))
	}
	d, err := s.d.Store.GetDeal(ctx, p.DealID)
	if err != nil {
		return err // NotFound cannot happen for a committed close; a missing deal retries into the dead letters
	}
	if d.Status != domain.DealLost || !d.Recycled || lostCount(&d) != p.LostCount {
		s.d.Logger.InfoContext(ctx, "recycle hand-off dropped: deal no longer lost with recycle", "deal_id", d.ID, "job", j.ID)
		return nil
	}
	ctx, span := leadtrace.Start(ctx, s.d.Tracer, d.Traceparent, "pipeline.RecycleLead", d.LeadID)
	defer span.End()
	_, err = s.d.Scoring.SetStatus(ctx, &scoringv1.SetStatusRequest{
		LeadId: p.LeadID, Status: leadv1.ProspectStatus_PROSPECT_STATUS_NURTURING,
		Reason: "deal lost: " + p.Reason, OwnerRepId: p.Owner, RequestId: j.ID,
	})
	if err != nil {
		leadtrace.Fail(span, err)
		switch status.Code(err) {
		case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.OutOfRange:
			return jobs.Permanent(err)
		}
		return err
	}
	leadtrace.SetOutcome(span, "recycled")
	return nil
}

// HandleRenewal publishes RenewalDue for a won deal whose renewal date is
// still the one the job was scheduled for.
func (s *Server) HandleRenewal(ctx context.Context, j jobs.Job) error {
	var p renewalPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return jobs.Permanent(fmt.Errorf("decode renewal job: %w", err))
	}
	d, err := s.d.Store.GetDeal(ctx, p.DealID)
	if err != nil {
		return err
	}
	if d.Status != domain.DealWon || !d.RenewalAt.Equal(p.RenewalAt) {
		s.d.Logger.InfoContext(ctx, "renewal reminder dropped: deal no longer won with this renewal date", "deal_id", d.ID, "job", j.ID)
		return nil
	}
	ctx, span := leadtrace.Start(ctx, s.d.Tracer, d.Traceparent, "pipeline.RenewalDue", d.LeadID)
	defer span.End()
	ev := &eventsv1.LeadEvent{Id: p.EventID, LeadId: d.LeadID, OrganisationId: d.OrganisationID, OccurredAt: ts(s.now()),
		Payload: &eventsv1.LeadEvent_RenewalDue{RenewalDue: &eventsv1.RenewalDue{
			DealId: d.ID, RenewalAt: ts(d.RenewalAt), OwnerRepId: d.OwnerRepID, Amount: money(d.Amount), PipelineId: d.PipelineID,
		}}}
	if err := s.d.Events.Publish(ctx, ev); err != nil {
		leadtrace.Fail(span, err)
		return err
	}
	leadtrace.SetOutcome(span, "renewal_due")
	return nil
}
