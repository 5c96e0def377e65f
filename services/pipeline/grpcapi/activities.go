package grpcapi

import (
	"context"
	"errors"
	"fmt"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	"github.com/leadflow/leadflow/services/pipeline/domain"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// LogActivity implements PipelineService.
func (s *Server) LogActivity(ctx context.Context, req *pipelinev1.LogActivityRequest) (*pipelinev1.LogActivityResponse, error) {
	ctx, span, d, err := s.dealSpan(ctx, req.GetDealId(), "pipeline.LogActivity")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	a, err := domain.NewActivity(newID(), &d, fromActivityType(req.GetType()), req.GetSubject(), req.GetBody(), req.GetRepId(),
		fromTS(req.GetOccurredAt()), fromTS(req.GetDueAt()), s.now())
	if err != nil {
		return nil, fail(span, err)
	}
	a, created, err := s.d.Store.AddActivity(ctx, a, req.GetRequestId())
	if err != nil {
		return nil, fail(span, err)
	}
	if created {
		s.publishBestEffort(ctx, &d, &eventsv1.LeadEvent{OccurredAt: ts(a.OccurredAt), Payload: &eventsv1.LeadEvent_ActivityLogged{ActivityLogged: &eventsv1.ActivityLogged{
			DealId: d.ID, ActivityId: a.ID, ActivityType: a.Type.String(), RepId: a.RepID,
		}}})
		leadtrace.SetOutcome(span, "logged_"+a.Type.String())
	} else {
		leadtrace.SetOutcome(span, "duplicate")
	}
	return &pipelinev1.LogActivityResponse{Activity: activityPB(a), Created: created}, nil
}

// CompleteTask implements PipelineService.
func (s *Server) CompleteTask(ctx context.Context, req *pipelinev1.CompleteTaskRequest) (*pipelinev1.CompleteTaskResponse, error) {
	ctx, span, _, err := s.dealSpan(ctx, req.GetDealId(), "pipeline.CompleteTask")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	a, err := s.d.Store.UpdateActivity(ctx, req.GetDealId(), req.GetActivityId(), func(a *domain.Activity) error {
		_, err := a.Complete(s.now())
		return err
	})
	if err != nil {
		return nil, fail(span, err)
	}
	leadtrace.SetOutcome(span, "task_completed")
	return &pipelinev1.CompleteTaskResponse{Activity: activityPB(a)}, nil
}

// ListActivities implements PipelineService.
func (s *Server) ListActivities(ctx context.Context, req *pipelinev1.ListActivitiesRequest) (*pipelinev1.ListActivitiesResponse, error) {
	as, next, err := s.d.Store.ListActivities(ctx, req.GetDealId(), req.GetPageToken(), pageSize(req.GetPageSize()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pipelinev1.ListActivitiesResponse{NextPageToken: next}
	for _, a := range as {
		out.Activities = append(out.Activities, activityPB(a))
	}
	return out, nil
}

// CreateQuote implements PipelineService.
func (s *Server) CreateQuote(ctx context.Context, req *pipelinev1.CreateQuoteRequest) (*pipelinev1.CreateQuoteResponse, error) {
	ctx, span, _, err := s.dealSpan(ctx, req.GetDealId(), "pipeline.CreateQuote")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	specs := make([]domain.LineSpec, len(req.GetLineItems()))
	for i, l := range req.GetLineItems() {
		specs[i] = domain.LineSpec{Product: l.GetProduct(), Quantity: l.GetQuantity(), UnitPrice: fromMoney(l.GetUnitPrice()), DiscountBPS: l.GetDiscountBps()}
	}
	id := newID()
	q, err := s.d.Store.AddQuote(ctx, req.GetDealId(), func(d *domain.Deal, version int32) (domain.Quote, error) {
		if d.Status != domain.DealOpen {
			return domain.Quote{}, fmt.Errorf("%w: deal %s is %s; quotes are for open deals", domain.ErrFailedPrecondition, d.ID, d.Status)
		}
		if version > domain.MaxQuoteVersions {
			return domain.Quote{}, fmt.Errorf("%w: deal %s has %d quote versions already", domain.ErrFailedPrecondition, d.ID, domain.MaxQuoteVersions)
		}
		return domain.NewQuote(id, d.ID, version, req.GetCurrencyCode(), specs, fromTS(req.GetValidUntil()), s.now())
	})
	if err != nil {
		return nil, fail(span, err)
	}
	leadtrace.SetOutcome(span, "quote_created")
	return &pipelinev1.CreateQuoteResponse{Quote: quotePB(q)}, nil
}

func isExpiry(err error) bool { return errors.Is(err, domain.ErrQuoteExpired) }

// SendQuote implements PipelineService.
func (s *Server) SendQuote(ctx context.Context, req *pipelinev1.SendQuoteRequest) (*pipelinev1.SendQuoteResponse, error) {
	ctx, span, _, err := s.dealSpan(ctx, req.GetDealId(), "pipeline.SendQuote")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	var already bool
	d, q, err := s.d.Store.UpdateQuote(ctx, req.GetDealId(), req.GetQuoteId(), func(d *domain.Deal, q *domain.Quote) error {
		if d.Status != domain.DealOpen {
			return fmt.Errorf("%w: deal %s is %s", domain.ErrFailedPrecondition, d.ID, d.Status)
		}
		var err error
		already, err = q.Send(s.now())
		return err
	}, isExpiry)
	if err != nil {
		return nil, fail(span, err)
	}
	if !already {
		s.publishBestEffort(ctx, &d, &eventsv1.LeadEvent{Payload: &eventsv1.LeadEvent_QuoteSent{QuoteSent: &eventsv1.QuoteSent{
			DealId: d.ID, QuoteId: q.ID, Version: q.Version, Total: minor(q.Total, q.Currency),
		}}})
	}
	leadtrace.SetOutcome(span, "quote_sent")
	return &pipelinev1.SendQuoteResponse{Quote: quotePB(q)}, nil
}

// AcceptQuote implements PipelineService.
func (s *Server) AcceptQuote(ctx context.Context, req *pipelinev1.AcceptQuoteRequest) (*pipelinev1.AcceptQuoteResponse, error) {
	ctx, span, _, err := s.dealSpan(ctx, req.GetDealId(), "pipeline.AcceptQuote")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	d, q, err := s.d.Store.UpdateQuote(ctx, req.GetDealId(), req.GetQuoteId(), func(d *domain.Deal, q *domain.Quote) error {
		if req.GetSetDealAmount() && d.Status != domain.DealOpen {
			return fmt.Errorf("%w: deal %s is %s; its amount is final", domain.ErrFailedPrecondition, d.ID, d.Status)
		}
		if _, err := q.Accept(s.now()); err != nil {
			return err
		}
		if req.GetSetDealAmount() && (d.AcceptedQuoteID != q.ID || d.Amount != q.TotalMoney()) {
			return d.ApplyAcceptedQuote(q, s.now())
		}
		return nil
	}, isExpiry)
	if err != nil {
		return nil, fail(span, err)
	}
	leadtrace.SetOutcome(span, "quote_accepted")
	return &pipelinev1.AcceptQuoteResponse{Quote: quotePB(q), Deal: dealPB(d)}, nil
}

// RejectQuote implements PipelineService.
func (s *Server) RejectQuote(ctx context.Context, req *pipelinev1.RejectQuoteRequest) (*pipelinev1.RejectQuoteResponse, error) {
	ctx, span, _, err := s.dealSpan(ctx, req.GetDealId(), "pipeline.RejectQuote")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	_, q, err := s.d.Store.UpdateQuote(ctx, req.GetDealId(), req.GetQuoteId(), func(_ *domain.Deal, q *domain.Quote) error {
		_, err := q.Reject(req.GetReason(), s.now())
		return err
	}, isExpiry)
	if err != nil {
		return nil, fail(span, err)
	}
	leadtrace.SetOutcome(span, "quote_rejected")
	return &pipelinev1.RejectQuoteResponse{Quote: quotePB(q)}, nil
}

// ListQuotes implements PipelineService.
func (s *Server) ListQuotes(ctx context.Context, req *pipelinev1.ListQuotesRequest) (*pipelinev1.ListQuotesResponse, error) {
	qs, err := s.d.Store.ListQuotes(ctx, req.GetDealId())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pipelinev1.ListQuotesResponse{}
	now := s.now()
	for _, q := range qs {
		out.Quotes = append(out.Quotes, quotePB(q.Effective(now)))
	}
	return out, nil
}
