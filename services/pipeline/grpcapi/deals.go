package grpcapi

import (
	"context"
	"errors"
	"fmt"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	"github.com/leadflow/leadflow/services/pipeline/domain"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

const maxSlotAttempts = 8

// openDealForLead creates the lead's open deal in pipeline p, or finds the
// one it has. The slot key lf:pipeline:{lead:<id>}:open:<pipeline> names the
// open deal; claiming it is atomic, so concurrent hand-offs agree on one deal
// id. Whoever finds the slot claimed but the deal not yet written (the
// claimer is in flight, or crashed) writes the deal itself under that id with
// SET NX, so exactly one deal document exists and a crash never strands the
// slot. A slot still naming a closed deal (its release was lost) is taken
// over with a compare-and-swap.
func (s *Server) openDealForLead(ctx context.Context, p *domain.Pipeline, in domain.NewDeal, allowExisting bool) (domain.Deal, bool, error) {
	prefer := in.ID // the first attempt claims with this id when set
	now := s.now()
	in.EventID = newID()
	// Validate before claiming anything.
	if _, err := domain.CreateDeal(p, in, now); err != nil {
		return domain.Deal{}, false, err
	}
	insert := func(id string) (domain.Deal, bool, error) {
		in.ID = id
		d, err := domain.CreateDeal(p, in, now)
		if err != nil {
			return domain.Deal{}, false, err
		}
		return s.d.Store.InsertDeal(ctx, d)
	}
	for range maxSlotAttempts {
		id := newID()
		if prefer != "" {
			id, prefer = prefer, ""
		}
		holder, err := s.d.Store.ClaimOpenSlot(ctx, in.LeadID, p.ID, id)
		if err != nil {
			return domain.Deal{}, false, err
		}
		if holder == id {
			return insert(id)
		}
		existing, err := s.d.Store.GetDeal(ctx, holder)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			d, created, err := insert(holder)
			if err == nil && !created && !allowExisting {
				return d, false, fmt.Errorf("%w: lead %s has the open deal %s in pipeline %s", domain.ErrAlreadyExists, in.LeadID, d.ID, p.ID)
			}
			return d, created, err
		case err != nil:
			return domain.Deal{}, false, err
		case existing.Status == domain.DealOpen:
			if !allowExisting {
				return existing, false, fmt.Errorf("%w: lead %s has the open deal %s in pipeline %s", domain.ErrAlreadyExists, in.LeadID, existing.ID, p.ID)
			}
			return existing, false, nil
		}
		// Stale slot: the holder is closed.
		ok, err := s.d.Store.SwapOpenSlot(ctx, in.LeadID, p.ID, holder, id)
		if err != nil {
			return domain.Deal{}, false, err
		}
		if ok {
			return insert(id)
		}
	}
	return domain.Deal{}, false, fmt.Errorf("%w: the lead's open deal kept changing", domain.ErrAborted)
}

// dealCreated publishes DealCreated with the id stored on the deal, so a
// retried hand-off repeats the same event (consumers de-duplicate it) and a
// failed publish is repaired by the retry the error causes.
func (s *Server) dealCreated(ctx context.Context, d *domain.Deal) error {
	return s.publish(ctx, d, &eventsv1.LeadEvent{Id: d.CreatedEventID, OccurredAt: ts(d.CreatedAt), Payload: &eventsv1.LeadEvent_DealCreated{DealCreated: &eventsv1.DealCreated{
		DealId: d.ID, PipelineId: d.PipelineID, StageId: d.StageID, OwnerRepId: d.OwnerRepID, Amount: money(d.Amount), ParentDealId: d.ParentDealID,
	}}})
}

// CreateDealFromLead implements PipelineService.
func (s *Server) CreateDealFromLead(ctx context.Context, req *pipelinev1.CreateDealFromLeadRequest) (*pipelinev1.CreateDealFromLeadResponse, error) {
	ctx, span := leadtrace.Start(ctx, s.d.Tracer, req.GetTraceparent(), "pipeline.CreateDealFromLead", req.GetLeadId())
	defer span.End()
	p, err := s.pipeline(ctx, req.GetPipelineId())
	if err != nil {
		return nil, fail(span, err)
	}
	name := req.GetName()
	if name == "" {
		name = "Deal " + req.GetLeadId()
	}
	d, created, err := s.openDealForLead(ctx, &p, domain.NewDeal{
		LeadID: req.GetLeadId(), OrganisationID: req.GetOrganisationId(), OwnerRepID: req.GetOwnerRepId(),
		Name: name, Amount: fromMoney(req.GetAmount()), Traceparent: req.GetTraceparent(),
		Kind: domain.KindNewBusiness, Actor: platform.Caller(ctx),
	}, true)
	if err != nil {
		return nil, fail(span, err)
	}
	if err := s.dealCreated(ctx, &d); err != nil {
		return nil, fail(span, err)
	}
	if created {
		leadtrace.SetOutcome(span, "created")
	} else {
		leadtrace.SetOutcome(span, "existing")
	}
	return &pipelinev1.CreateDealFromLeadResponse{Deal: dealPB(d), Created: created}, nil
}

// CreateDeal implements PipelineService.
func (s *Server) CreateDeal(ctx context.Context, req *pipelinev1.CreateDealRequest) (*pipelinev1.CreateDealResponse, error) {
	ctx, span := leadtrace.Start(ctx, s.d.Tracer, "", "pipeline.CreateDeal", req.GetLeadId())
	defer span.End()
	p, err := s.pipeline(ctx, req.GetPipelineId())
	if err != nil {
		return nil, fail(span, err)
	}
	in := domain.NewDeal{
		LeadID: req.GetLeadId(), OrganisationID: req.GetOrganisationId(), OwnerRepID: req.GetOwnerRepId(),
		Name: req.GetName(), Amount: fromMoney(req.GetAmount()), ExpectedCloseAt: fromTS(req.GetExpectedCloseAt()),
		NextStep: req.GetNextStep(), Traceparent: leadtrace.Traceparent(ctx), Kind: domain.KindNewBusiness,
		Actor: platform.Caller(ctx), EventID: newID(),
	}
	var (
		d       domain.Deal
		created bool
		found   bool
	)
	if rid := req.GetRequestId(); rid != "" {
		if d, found, err = s.requestDeal(ctx, "create-deal", rid, &in); err != nil {
			return nil, fail(span, err)
		}
	}
	switch {
	case found:
	case in.LeadID != "":
		d, created, err = s.openDealForLead(ctx, &p, in, false)
	default:
		if in.ID == "" {
			in.ID = newID()
		}
		if d, err = domain.CreateDeal(&p, in, s.now()); err == nil {
			d, created, err = s.d.Store.InsertDeal(ctx, d)
		}
	}
	if err != nil {
		return nil, fail(span, err)
	}
	// Also for a repeated request: the same event id again, in case the first
	// call failed before it published.
	if err := s.dealCreated(ctx, &d); err != nil {
		return nil, fail(span, err)
	}
	if created {
		leadtrace.SetOutcome(span, "created")
	} else {
		leadtrace.SetOutcome(span, "existing")
	}
	return &pipelinev1.CreateDealResponse{Deal: dealPB(d), Created: created}, nil
}

// requestDeal resolves an idempotency key: it binds the key to a fresh deal
// id (set on in) or finds the deal an earlier call made under it. found is
// false when the key is new or its deal was never written (that call failed
// or crashed: this call writes it, with SET NX, under the same id).
func (s *Server) requestDeal(ctx context.Context, op, requestID string, in *domain.NewDeal) (domain.Deal, bool, error) {
	id := newID()
	holder, err := s.d.Store.ClaimRequest(ctx, op+":"+platform.Caller(ctx), requestID, id)
	if err != nil {
		return domain.Deal{}, false, err
	}
	in.ID = holder
	if holder == id {
		return domain.Deal{}, false, nil
	}
	d, err := s.d.Store.GetDeal(ctx, holder)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Deal{}, false, nil
	}
	return d, err == nil, err
}

// GetDeal implements PipelineService.
func (s *Server) GetDeal(ctx context.Context, req *pipelinev1.GetDealRequest) (*pipelinev1.GetDealResponse, error) {
	d, err := s.d.Store.GetDeal(ctx, req.GetDealId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pipelinev1.GetDealResponse{Deal: dealPB(d)}, nil
}

// ListDeals implements PipelineService.
func (s *Server) ListDeals(ctx context.Context, req *pipelinev1.ListDealsRequest) (*pipelinev1.ListDealsResponse, error) {
	f := domain.DealFilter{
		PipelineID: req.GetPipelineId(), StageID: req.GetStageId(), OwnerRepID: req.GetOwnerRepId(),
		CloseMonth: req.GetCloseMonth(), Status: fromDealStatus(req.GetStatus()), LeadID: req.GetLeadId(),
	}
	ds, next, err := s.d.Store.ListDeals(ctx, f, req.GetPageToken(), pageSize(req.GetPageSize()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pipelinev1.ListDealsResponse{NextPageToken: next}
	for _, d := range ds {
		out.Deals = append(out.Deals, dealPB(d))
	}
	return out, nil
}

// UpdateDeal implements PipelineService.
func (s *Server) UpdateDeal(ctx context.Context, req *pipelinev1.UpdateDealRequest) (*pipelinev1.UpdateDealResponse, error) {
	ctx, span, d0, err := s.dealSpan(ctx, req.GetDealId(), "pipeline.UpdateDeal")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	u := domain.DealUpdate{Name: req.Name, OwnerRepID: req.OwnerRepId, NextStep: req.NextStep}
	if req.GetAmount() != nil {
		m := fromMoney(req.GetAmount())
		u.Amount = &m
	}
	if req.GetExpectedCloseAt() != nil {
		t := fromTS(req.GetExpectedCloseAt())
		u.ExpectedCloseAt = &t
	}
	d, err := s.d.Store.UpdateDeal(ctx, req.GetDealId(), &d0, func(d *domain.Deal) error {
		if err := checkVersion(d, req.GetExpectedVersion()); err != nil {
			return err
		}
		return d.Update(u, s.now())
	}, nil)
	if err != nil {
		return nil, fail(span, err)
	}
	leadtrace.SetOutcome(span, "updated")
	return &pipelinev1.UpdateDealResponse{Deal: dealPB(d)}, nil
}

// MoveDeal implements PipelineService.
func (s *Server) MoveDeal(ctx context.Context, req *pipelinev1.MoveDealRequest) (*pipelinev1.MoveDealResponse, error) {
	ctx, span, d0, p, err := s.dealPipelineSpan(ctx, req.GetDealId(), "pipeline.MoveDeal")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	var moved bool
	var from string
	d, err := s.d.Store.UpdateDeal(ctx, req.GetDealId(), &d0, func(d *domain.Deal) error {
		if err := checkVersion(d, req.GetExpectedVersion()); err != nil {
			return err
		}
		from = d.StageID
		var err error
		moved, err = d.Move(&p, req.GetStageId(), platform.Caller(ctx), s.now())
		return err
	}, nil)
	if err != nil {
		return nil, fail(span, err)
	}
	if moved {
		s.publishBestEffort(ctx, &d, &eventsv1.LeadEvent{Payload: &eventsv1.LeadEvent_StageChanged{StageChanged: &eventsv1.StageChanged{
			DealId: d.ID, PipelineId: d.PipelineID, FromStageId: from, ToStageId: d.StageID,
		}}})
		leadtrace.SetOutcome(span, "moved")
	} else {
		leadtrace.SetOutcome(span, "unchanged")
	}
	return &pipelinev1.MoveDealResponse{Deal: dealPB(d), Moved: moved}, nil
}

// CloseWon implements PipelineService.
func (s *Server) CloseWon(ctx context.Context, req *pipelinev1.CloseWonRequest) (*pipelinev1.CloseWonResponse, error) {
	ctx, span, d0, p, err := s.dealPipelineSpan(ctx, req.GetDealId(), "pipeline.CloseWon")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	term := int(req.GetRenewalTermMonths())
	if term == 0 {
		term = s.d.RenewalTermMonths
	}
	var already bool
	evID := newID()
	d, err := s.d.Store.UpdateDeal(ctx, req.GetDealId(), &d0, func(d *domain.Deal) error {
		var err error
		already, err = d.CloseWon(&p, fromMoney(req.GetAmount()), fromTS(req.GetClosedAt()), term, platform.Caller(ctx), s.now())
		if err == nil && !already {
			d.ClosedEventID = evID
		}
		return err
	}, func(ctx context.Context, _, after *domain.Deal) error {
		// Durable before the deal is written (and again on a retry: idempotent by id).
		return s.scheduleRenewal(ctx, after)
	})
	if err != nil {
		return nil, fail(span, err)
	}
	s.releaseSlot(ctx, &d)
	// Published again with the same id by a retry (already), so a failed
	// publish is repaired by the retry its error causes.
	if err := s.publish(ctx, &d, &eventsv1.LeadEvent{Id: d.ClosedEventID, OccurredAt: ts(d.ClosedAt), Payload: &eventsv1.LeadEvent_DealWon{DealWon: &eventsv1.DealWon{
		DealId: d.ID, PipelineId: d.PipelineID, Amount: money(d.Amount), OwnerRepId: d.OwnerRepID,
		ClosedAt: ts(d.ClosedAt), DealCreatedAt: ts(d.CreatedAt),
	}}}); err != nil {
		return nil, fail(span, err)
	}
	leadtrace.SetOutcome(span, "won")
	return &pipelinev1.CloseWonResponse{Deal: dealPB(d)}, nil
}

// releaseSlot frees the lead's open-deal slot after a close. Best effort: a
// slot left naming a closed deal is taken over by the next hand-off.
func (s *Server) releaseSlot(ctx context.Context, d *domain.Deal) {
	if d.LeadID == "" {
		return
	}
	if err := s.d.Store.ReleaseOpenSlot(ctx, d.LeadID, d.PipelineID, d.ID); err != nil {
		s.d.Logger.WarnContext(ctx, "release open-deal slot failed", "deal_id", d.ID, "error", err.Error())
	}
}

// CloseLost implements PipelineService.
func (s *Server) CloseLost(ctx context.Context, req *pipelinev1.CloseLostRequest) (*pipelinev1.CloseLostResponse, error) {
	ctx, span, d0, p, err := s.dealPipelineSpan(ctx, req.GetDealId(), "pipeline.CloseLost")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	var already bool
	evID := newID()
	d, err := s.d.Store.UpdateDeal(ctx, req.GetDealId(), &d0, func(d *domain.Deal) error {
		var err error
		already, err = d.CloseLost(&p, s.d.LostReasons, req.GetReason(), req.GetNote(), req.GetRecycle(), platform.Caller(ctx), s.now())
		if err == nil && !already {
			d.ClosedEventID = evID
		}
		return err
	}, func(ctx context.Context, _, after *domain.Deal) error {
		if !after.Recycled {
			return nil
		}
		// The hand-off to scoring is recorded before the deal is written.
		return s.scheduleRecycle(ctx, after)
	})
	if err != nil {
		return nil, fail(span, err)
	}
	s.releaseSlot(ctx, &d)
	if err := s.publish(ctx, &d, &eventsv1.LeadEvent{Id: d.ClosedEventID, OccurredAt: ts(d.ClosedAt), Payload: &eventsv1.LeadEvent_DealLost{DealLost: &eventsv1.DealLost{
		DealId: d.ID, PipelineId: d.PipelineID, Reason: d.LostReason, Recycled: d.Recycled, OwnerRepId: d.OwnerRepID, Amount: money(d.Amount),
	}}}); err != nil {
		return nil, fail(span, err)
	}
	if d.Recycled {
		leadtrace.SetOutcome(span, "lost_recycled")
	} else {
		leadtrace.SetOutcome(span, "lost")
	}
	return &pipelinev1.CloseLostResponse{Deal: dealPB(d)}, nil
}

// ReopenDeal implements PipelineService.
func (s *Server) ReopenDeal(ctx context.Context, req *pipelinev1.ReopenDealRequest) (*pipelinev1.ReopenDealResponse, error) {
	ctx, span, d0, p, err := s.dealPipelineSpan(ctx, req.GetDealId(), "pipeline.ReopenDeal")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	var from string
	var wasWon domain.Deal
	d, err := s.d.Store.UpdateDeal(ctx, req.GetDealId(), &d0, func(d *domain.Deal) error {
		from = d.StageID
		if d.Status == domain.DealWon {
			wasWon = *d
		}
		return d.Reopen(&p, req.GetStageId(), platform.Caller(ctx), s.now())
	}, func(ctx context.Context, _, after *domain.Deal) error {
		if after.LeadID == "" || after.Kind != domain.KindNewBusiness {
			return nil
		}
		return s.reclaimSlot(ctx, after)
	})
	if err != nil {
		return nil, fail(span, err)
	}
	if wasWon.ID != "" {
		// The renewal job would be dropped anyway (the deal is no longer won); cancel it.
		if _, err := s.d.Renewals.Cancel(ctx, renewalJobID(&wasWon)); err != nil {
			s.d.Logger.WarnContext(ctx, "cancel renewal failed", "deal_id", d.ID, "error", err.Error())
		}
	}
	s.publishBestEffort(ctx, &d, &eventsv1.LeadEvent{Payload: &eventsv1.LeadEvent_DealReopened{DealReopened: &eventsv1.DealReopened{
		DealId: d.ID, StageId: d.StageID, PipelineId: d.PipelineID, FromStageId: from,
	}}})
	leadtrace.SetOutcome(span, "reopened")
	return &pipelinev1.ReopenDealResponse{Deal: dealPB(d)}, nil
}

// reclaimSlot makes the reopened deal the lead's open deal again, unless the
// lead has another open deal in the pipeline.
func (s *Server) reclaimSlot(ctx context.Context, d *domain.Deal) error {
	for range maxSlotAttempts {
		holder, err := s.d.Store.ClaimOpenSlot(ctx, d.LeadID, d.PipelineID, d.ID)
		if err != nil || holder == d.ID {
			return err
		}
		other, err := s.d.Store.GetDeal(ctx, holder)
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return err
		}
		if err == nil && other.Status == domain.DealOpen {
			return fmt.Errorf("%w: lead %s already has the open deal %s in this pipeline", domain.ErrFailedPrecondition, d.LeadID, other.ID)
		}
		if err != nil {
			// Claimed by a hand-off that has not written its deal yet: it wins.
			return fmt.Errorf("%w: a deal for lead %s is being created in this pipeline", domain.ErrFailedPrecondition, d.LeadID)
		}
		if ok, err := s.d.Store.SwapOpenSlot(ctx, d.LeadID, d.PipelineID, holder, d.ID); err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("%w: the lead's open deal kept changing", domain.ErrAborted)
}

// OpenUpsell implements PipelineService.
func (s *Server) OpenUpsell(ctx context.Context, req *pipelinev1.OpenUpsellRequest) (*pipelinev1.OpenUpsellResponse, error) {
	ctx, span, won, err := s.dealSpan(ctx, req.GetDealId(), "pipeline.OpenUpsell")
	defer span.End()
	if err != nil {
		return nil, fail(span, err)
	}
	if err := won.CanUpsell(); err != nil {
		return nil, fail(span, err)
	}
	pid := req.GetPipelineId()
	if pid == "" {
		pid = won.PipelineID
	}
	p, err := s.pipeline(ctx, pid)
	if err != nil {
		return nil, fail(span, err)
	}
	in := domain.NewDeal{
		ID: newID(), EventID: newID(), LeadID: won.LeadID, OrganisationID: won.OrganisationID, OwnerRepID: won.OwnerRepID,
		Name: req.GetName(), Amount: fromMoney(req.GetAmount()), ExpectedCloseAt: fromTS(req.GetExpectedCloseAt()),
		Traceparent: won.Traceparent, Kind: domain.KindUpsell, ParentDealID: won.ID, Actor: platform.Caller(ctx),
	}
	if in.Name == "" {
		in.Name = "Upsell: " + won.Name
	}
	if req.GetOwnerRepId() != "" {
		in.OwnerRepID = req.GetOwnerRepId()
	}
	if rid := req.GetRequestId(); rid != "" {
		prev, found, err := s.requestDeal(ctx, "upsell:"+won.ID, rid, &in)
		if err != nil {
			return nil, fail(span, err)
		}
		if found {
			if err := s.dealCreated(ctx, &prev); err != nil {
				return nil, fail(span, err)
			}
			leadtrace.SetOutcome(span, "existing")
			return &pipelinev1.OpenUpsellResponse{Deal: dealPB(prev)}, nil
		}
	}
	d, err := domain.CreateDeal(&p, in, s.now())
	if err != nil {
		return nil, fail(span, err)
	}
	var created bool
	if d, created, err = s.d.Store.InsertDeal(ctx, d); err != nil {
		return nil, fail(span, err)
	}
	if err := s.dealCreated(ctx, &d); err != nil {
		return nil, fail(span, err)
	}
	if created {
		leadtrace.SetOutcome(span, "upsell_opened")
	} else {
		leadtrace.SetOutcome(span, "existing")
	}
	return &pipelinev1.OpenUpsellResponse{Deal: dealPB(d), Created: created}, nil
}

// GetStageDurations implements PipelineService.
func (s *Server) GetStageDurations(ctx context.Context, req *pipelinev1.GetStageDurationsRequest) (*pipelinev1.GetStageDurationsResponse, error) {
	d, err := s.d.Store.GetDeal(ctx, req.GetDealId())
	if err != nil {
		return nil, toStatus(err)
	}
	p, err := s.pipeline(ctx, d.PipelineID)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pipelinev1.GetStageDurationsResponse{}
	for _, sd := range domain.StageDurations(&d, s.now()) {
		st, _ := p.Stage(sd.StageID)
		out.Durations = append(out.Durations, &pipelinev1.StageDuration{
			StageId: sd.StageID, StageName: st.Name, Duration: durationPB(sd.Duration), Visits: int32(sd.Visits),
		})
	}
	return out, nil
}

// GetForecast implements PipelineService.
func (s *Server) GetForecast(ctx context.Context, req *pipelinev1.GetForecastRequest) (*pipelinev1.GetForecastResponse, error) {
	months, err := domain.MonthRange(req.GetFromMonth(), req.GetToMonth())
	if err != nil {
		return nil, toStatus(err)
	}
	p, err := s.pipeline(ctx, req.GetPipelineId())
	if err != nil {
		return nil, toStatus(err)
	}
	deals, err := s.d.Store.DealsClosingIn(ctx, months)
	if err != nil {
		return nil, toStatus(err)
	}
	f, err := domain.ComputeForecast(&p, deals, months, req.GetOwnerRepId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pipelinev1.GetForecastResponse{
		Lines: forecastLines(f.Lines), ByMonth: forecastLines(f.ByMonth), ByOwner: forecastLines(f.ByOwner),
		DealsWithoutAmount: int32(f.DealsWithoutAmount),
	}, nil
}
