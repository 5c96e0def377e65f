package grpcapi

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	"github.com/leadflow/leadflow/services/pipeline/domain"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromTS(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}

func money(m domain.Money) *leadv1.Money {
	if m.IsZero() {
		return nil
	}
	return &leadv1.Money{AmountMinor: m.Minor, CurrencyCode: m.Currency}
}

func minor(v int64, currency string) *leadv1.Money {
	return &leadv1.Money{AmountMinor: v, CurrencyCode: currency}
}

func fromMoney(m *leadv1.Money) domain.Money {
	if m == nil {
		return domain.Money{}
	}
	return domain.Money{Minor: m.GetAmountMinor(), Currency: m.GetCurrencyCode()}
}

func stageKind(k domain.StageKind) pipelinev1.StageKind {
	switch k {
	case domain.StageOpen:
		return pipelinev1.StageKind_STAGE_KIND_OPEN
	case domain.StageWon:
		return pipelinev1.StageKind_STAGE_KIND_WON
	case domain.StageLost:
		return pipelinev1.StageKind_STAGE_KIND_LOST
	}
	return pipelinev1.StageKind_STAGE_KIND_UNSPECIFIED
}

func fromStageKind(k pipelinev1.StageKind) domain.StageKind {
	switch k {
	case pipelinev1.StageKind_STAGE_KIND_OPEN:
		return domain.StageOpen
	case pipelinev1.StageKind_STAGE_KIND_WON:
		return domain.StageWon
	case pipelinev1.StageKind_STAGE_KIND_LOST:
		return domain.StageLost
	}
	return 0
}

func stagePB(s domain.Stage) *pipelinev1.Stage {
	return &pipelinev1.Stage{Id: s.ID, Name: s.Name, ProbabilityBps: s.ProbabilityBPS, Kind: stageKind(s.Kind)}
}

func pipelinePB(p domain.Pipeline) *pipelinev1.Pipeline {
	out := &pipelinev1.Pipeline{Id: p.ID, Name: p.Name, IsDefault: p.IsDefault, CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt)}
	for _, s := range p.Stages {
		out.Stages = append(out.Stages, stagePB(s))
	}
	return out
}

func specFromPB(s *pipelinev1.StageSpec) domain.StageSpec {
	return domain.StageSpec{Name: s.GetName(), ProbabilityBPS: s.GetProbabilityBps(), Kind: fromStageKind(s.GetKind())}
}

func dealStatus(s domain.DealStatus) pipelinev1.DealStatus {
	switch s {
	case domain.DealOpen:
		return pipelinev1.DealStatus_DEAL_STATUS_OPEN
	case domain.DealWon:
		return pipelinev1.DealStatus_DEAL_STATUS_WON
	case domain.DealLost:
		return pipelinev1.DealStatus_DEAL_STATUS_LOST
	}
	return pipelinev1.DealStatus_DEAL_STATUS_UNSPECIFIED
}

func fromDealStatus(s pipelinev1.DealStatus) domain.DealStatus {
	switch s {
	case pipelinev1.DealStatus_DEAL_STATUS_OPEN:
		return domain.DealOpen
	case pipelinev1.DealStatus_DEAL_STATUS_WON:
		return domain.DealWon
	case pipelinev1.DealStatus_DEAL_STATUS_LOST:
		return domain.DealLost
	}
	return 0
}

func dealKind(k domain.DealKind) pipelinev1.DealKind {
	switch k {
	case domain.KindNewBusiness:
		return pipelinev1.DealKind_DEAL_KIND_NEW_BUSINESS
	case domain.KindUpsell:
		return pipelinev1.DealKind_DEAL_KIND_UPSELL
	}
	return pipelinev1.DealKind_DEAL_KIND_UNSPECIFIED
}

func dealPB(d domain.Deal) *pipelinev1.Deal {
	out := &pipelinev1.Deal{
		Id: d.ID, LeadId: d.LeadID, OrganisationId: d.OrganisationID, OwnerRepId: d.OwnerRepID,
		PipelineId: d.PipelineID, StageId: d.StageID, Name: d.Name, Amount: money(d.Amount),
		ExpectedCloseAt: ts(d.ExpectedCloseAt), NextStep: d.NextStep, Status: dealStatus(d.Status),
		Traceparent: d.Traceparent, CreatedAt: ts(d.CreatedAt), UpdatedAt: ts(d.UpdatedAt), ClosedAt: ts(d.ClosedAt),
		LostReason: d.LostReason, LostNote: d.LostNote, Recycled: d.Recycled, RenewalAt: ts(d.RenewalAt),
		Kind: dealKind(d.Kind), ParentDealId: d.ParentDealID, AcceptedQuoteId: d.AcceptedQuoteID, Version: d.Version,
	}
	for _, h := range d.History {
		out.StageHistory = append(out.StageHistory, &pipelinev1.StageChange{FromStageId: h.From, ToStageId: h.To, Actor: h.Actor, ChangedAt: ts(h.At)})
	}
	return out
}

var activityTypes = map[domain.ActivityType]pipelinev1.ActivityType{
	domain.ActivityCall:    pipelinev1.ActivityType_ACTIVITY_TYPE_CALL,
	domain.ActivityEmail:   pipelinev1.ActivityType_ACTIVITY_TYPE_EMAIL,
	domain.ActivityMeeting: pipelinev1.ActivityType_ACTIVITY_TYPE_MEETING,
	domain.ActivityNote:    pipelinev1.ActivityType_ACTIVITY_TYPE_NOTE,
	domain.ActivityTask:    pipelinev1.ActivityType_ACTIVITY_TYPE_TASK,
}

func fromActivityType(t pipelinev1.ActivityType) domain.ActivityType {
	for k, v := range activityTypes {
		if v == t {
			return k
		}
	}
	return 0
}

func activityPB(a domain.Activity) *pipelinev1.Activity {
	return &pipelinev1.Activity{
		Id: a.ID, DealId: a.DealID, Type: activityTypes[a.Type], Subject: a.Subject, Body: a.Body, RepId: a.RepID,
		OccurredAt: ts(a.OccurredAt), DueAt: ts(a.DueAt), CompletedAt: ts(a.CompletedAt), CreatedAt: ts(a.CreatedAt),
	}
}

var quoteStatuses = map[domain.QuoteStatus]pipelinev1.QuoteStatus{
	domain.QuoteDraft:    pipelinev1.QuoteStatus_QUOTE_STATUS_DRAFT,
	domain.QuoteSent:     pipelinev1.QuoteStatus_QUOTE_STATUS_SENT,
	domain.QuoteAccepted: pipelinev1.QuoteStatus_QUOTE_STATUS_ACCEPTED,
	domain.QuoteRejected: pipelinev1.QuoteStatus_QUOTE_STATUS_REJECTED,
	domain.QuoteExpired:  pipelinev1.QuoteStatus_QUOTE_STATUS_EXPIRED,
}

func quotePB(q domain.Quote) *pipelinev1.Quote {
	c := q.Currency
	out := &pipelinev1.Quote{
		Id: q.ID, DealId: q.DealID, Version: q.Version, Status: quoteStatuses[q.Status], CurrencyCode: c,
		Subtotal: minor(q.Subtotal, c), DiscountTotal: minor(q.DiscountTotal, c), Total: minor(q.Total, c),
		ValidUntil: ts(q.ValidUntil), CreatedAt: ts(q.CreatedAt), SentAt: ts(q.SentAt), DecidedAt: ts(q.DecidedAt),
		RejectReason: q.RejectReason,
	}
	for _, l := range q.Lines {
		out.LineItems = append(out.LineItems, &pipelinev1.LineItem{
			Product: l.Product, Quantity: l.Quantity, UnitPrice: minor(l.UnitPrice, c), DiscountBps: l.DiscountBPS,
			Subtotal: minor(l.Subtotal, c), Discount: minor(l.Discount, c), Total: minor(l.Total, c),
		})
	}
	return out
}

func forecastLines(ls []domain.ForecastLine) []*pipelinev1.ForecastLine {
	out := make([]*pipelinev1.ForecastLine, 0, len(ls))
	for _, l := range ls {
		out = append(out, &pipelinev1.ForecastLine{
			Month: l.Month, OwnerRepId: l.Owner, CurrencyCode: l.Currency, DealCount: int32(l.DealCount),
			Amount: minor(l.Amount, l.Currency), WeightedAmount: minor(l.Weighted, l.Currency), WonAmount: minor(l.Won, l.Currency),
		})
	}
	return out
}

func durationPB(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
