// Package pbconv converts between the scoring domain and its protobuf
// messages (leadflow.lead.v1, leadflow.scoring.v1, leadflow.events.v1).
package pbconv

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/scoring/domain"
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

// Money converts domain money to proto.
func Money(m *domain.Money) *leadv1.Money {
	if m == nil {
		return nil
	}
	return &leadv1.Money{AmountMinor: m.AmountMinor, CurrencyCode: m.CurrencyCode}
}

// MoneyFrom converts proto money to domain.
func MoneyFrom(m *leadv1.Money) *domain.Money {
	if m == nil {
		return nil
	}
	return &domain.Money{AmountMinor: m.GetAmountMinor(), CurrencyCode: m.GetCurrencyCode()}
}

// Profile converts a LeadProfile to the domain profile.
func Profile(p *leadv1.LeadProfile) domain.Profile {
	o := p.GetOrganisation()
	return domain.Profile{
		LeadID:         p.GetLeadId(),
		OrganisationID: o.GetId(),
		Industry:       o.GetIndustry(),
		EmployeeCount:  o.GetEmployeeCount(),
		Revenue:        MoneyFrom(o.GetAnnualRevenue()),
		CountryCode:    o.GetCountryCode(),
		Region:         o.GetRegion(),
		JobTitle:       p.GetJobTitle(),
		Seniority:      domain.Seniority(p.GetSeniority()),
		FreeMail:       p.GetFreeMailDomain(),
		Products:       p.GetProductInterests(),
		CapturedAt:     fromTS(p.GetCapturedAt()),
		Traceparent:    p.GetTraceparent(),
	}
}

// Signal converts an engagement signal.
func Signal(s *leadv1.EngagementSignal) domain.Signal {
	return domain.Signal{ID: s.GetId(), Type: domain.SignalType(s.GetType()), At: fromTS(s.GetOccurredAt())}
}

// Score converts a domain score.
func Score(s *domain.Score) *leadv1.Score {
	if s == nil || s.ModelVersion == 0 {
		return nil
	}
	out := &leadv1.Score{
		Fit: s.Fit, Engagement: s.Engagement, Total: s.Total,
		Grade: leadv1.Grade(s.Grade), Heat: leadv1.Heat(s.Heat),
		ModelVersion: s.ModelVersion, ScoredAt: ts(s.ScoredAt), Mql: s.MQL,
	}
	for _, f := range s.Factors {
		out.Factors = append(out.Factors, &leadv1.ScoreFactor{RuleId: f.RuleID, Category: f.Category, Points: f.Points, Reason: f.Reason})
	}
	return out
}

// Bant converts domain BANT to proto.
func Bant(b *domain.Bant) *scoringv1.Bant {
	return &scoringv1.Bant{
		Budget: Money(b.Budget), BudgetConfirmed: b.BudgetConfirmed,
		AuthorityRole:   scoringv1.AuthorityRole(b.Authority),
		NeedDescription: b.NeedDescription, NeedConfirmed: b.NeedConfirmed,
		Timeline: ts(b.Timeline), MetCount: b.Met(), UpdatedAt: ts(b.UpdatedAt), UpdatedBy: b.UpdatedBy,
	}
}

// BantFrom converts proto BANT to domain (output-only fields ignored).
func BantFrom(b *scoringv1.Bant) domain.Bant {
	return domain.Bant{
		Budget: MoneyFrom(b.GetBudget()), BudgetConfirmed: b.GetBudgetConfirmed(),
		Authority:       domain.AuthorityRole(b.GetAuthorityRole()),
		NeedDescription: b.GetNeedDescription(), NeedConfirmed: b.GetNeedConfirmed(),
		Timeline: fromTS(b.GetTimeline()),
	}
}

// Lead converts a record to the ScoredLead message. profile is the decoded
// LeadProfile as received (may be nil).
func Lead(r *domain.Record, profile *leadv1.LeadProfile) *scoringv1.ScoredLead {
	return &scoringv1.ScoredLead{
		LeadId: r.LeadID, OrganisationId: r.OrganisationID,
		Status: leadv1.ProspectStatus(r.Status), OwnerRepId: r.Owner,
		Score: Score(&r.Score), Bant: Bant(&r.Bant),
		MqlEpisodes: r.MQLEpisodes, HandedToRouting: r.Handed,
		Traceparent: r.Traceparent, CreatedAt: ts(r.CreatedAt), UpdatedAt: ts(r.UpdatedAt),
		Profile: profile, SignalCount: int32(len(r.Signals)),
	}
}

// Transition converts a status transition.
func Transition(t *domain.Transition) *scoringv1.StatusTransition {
	return &scoringv1.StatusTransition{
		From: leadv1.ProspectStatus(t.From), To: leadv1.ProspectStatus(t.To), Reason: t.Reason,
		Actor: t.Actor, At: ts(t.At), RequestId: t.RequestID, OwnerRepId: t.Owner,
	}
}

// Model converts a domain model to proto.
func Model(m *domain.Model) *scoringv1.ScoringModel {
	out := &scoringv1.ScoringModel{
		Version: m.Version, Name: m.Name, Description: m.Description, Active: m.Active,
		CreatedAt: ts(m.CreatedAt), CreatedBy: m.CreatedBy, ActivatedAt: ts(m.ActivatedAt),
		Thresholds: &scoringv1.Thresholds{
			Mql: m.Thresholds.MQL, GradeAMinFit: m.Thresholds.GradeA, GradeBMinFit: m.Thresholds.GradeB,
			GradeCMinFit: m.Thresholds.GradeC, HotMinEngagement: m.Thresholds.Hot, WarmMinEngagement: m.Thresholds.Warm,
		},
	}
	for _, r := range m.Fit {
		fr := &scoringv1.FitRule{Id: r.ID, Points: r.Points, Description: r.Description}
		switch r.Kind {
		case domain.FitIndustry:
			fr.Condition = &scoringv1.FitRule_Industry{Industry: &scoringv1.IndustryCondition{Industries: r.Values}}
		case domain.FitEmployeeBand:
			fr.Condition = &scoringv1.FitRule_EmployeeBand{EmployeeBand: &scoringv1.EmployeeBandCondition{Min: int32(r.Min), MaxExclusive: int32(r.Max)}}
		case domain.FitRevenueBand:
			fr.Condition = &scoringv1.FitRule_RevenueBand{RevenueBand: &scoringv1.RevenueBandCondition{CurrencyCode: r.Currency, MinMinor: r.Min, MaxMinorExclusive: r.Max}}
		case domain.FitLocation:
			fr.Condition = &scoringv1.FitRule_Location{Location: &scoringv1.LocationCondition{CountryCodes: r.Values, Regions: r.Regions}}
		case domain.FitSeniority:
			sc := &scoringv1.SeniorityCondition{}
			for _, s := range r.Seniorities {
				sc.Seniorities = append(sc.Seniorities, leadv1.Seniority(s))
			}
			fr.Condition = &scoringv1.FitRule_Seniority{Seniority: sc}
		case domain.FitTitle:
			fr.Condition = &scoringv1.FitRule_Title{Title: &scoringv1.TitleCondition{Keywords: r.Values}}
		case domain.FitFreeMail:
			fr.Condition = &scoringv1.FitRule_FreeMail{FreeMail: &scoringv1.FreeMailCondition{}}
		case domain.FitProductInterest:
			fr.Condition = &scoringv1.FitRule_ProductInterest{ProductInterest: &scoringv1.ProductInterestCondition{Products: r.Values}}
		}
		out.FitRules = append(out.FitRules, fr)
	}
	for _, r := range m.Engagement {
		er := &scoringv1.EngagementRule{Id: r.ID, SignalType: leadv1.SignalType(r.Type), Points: r.Points, Cap: r.Cap}
		if r.HalfLife > 0 {
			er.HalfLife = durationpb.New(r.HalfLife)
		}
		out.EngagementRules = append(out.EngagementRules, er)
	}
	return out
}

// ModelFrom converts a proto model to the domain (output-only fields ignored).
func ModelFrom(m *scoringv1.ScoringModel) domain.Model {
	t := m.GetThresholds()
	out := domain.Model{
		Name: m.GetName(), Description: m.GetDescription(),
		Thresholds: domain.Thresholds{
			MQL: t.GetMql(), GradeA: t.GetGradeAMinFit(), GradeB: t.GetGradeBMinFit(), GradeC: t.GetGradeCMinFit(),
			Hot: t.GetHotMinEngagement(), Warm: t.GetWarmMinEngagement(),
		},
	}
	for _, r := range m.GetFitRules() {
		fr := domain.FitRule{ID: r.GetId(), Points: r.GetPoints(), Description: r.GetDescription()}
		switch c := r.GetCondition().(type) {
		case *scoringv1.FitRule_Industry:
			fr.Kind, fr.Values = domain.FitIndustry, c.Industry.GetIndustries()
		case *scoringv1.FitRule_EmployeeBand:
			fr.Kind, fr.Min, fr.Max = domain.FitEmployeeBand, int64(c.EmployeeBand.GetMin()), int64(c.EmployeeBand.GetMaxExclusive())
		case *scoringv1.FitRule_RevenueBand:
			fr.Kind, fr.Currency, fr.Min, fr.Max = domain.FitRevenueBand, c.RevenueBand.GetCurrencyCode(), c.RevenueBand.GetMinMinor(), c.RevenueBand.GetMaxMinorExclusive()
		case *scoringv1.FitRule_Location:
			fr.Kind, fr.Values, fr.Regions = domain.FitLocation, c.Location.GetCountryCodes(), c.Location.GetRegions()
		case *scoringv1.FitRule_Seniority:
			fr.Kind = domain.FitSeniority
			for _, s := range c.Seniority.GetSeniorities() {
				fr.Seniorities = append(fr.Seniorities, domain.Seniority(s))
			}
		case *scoringv1.FitRule_Title:
			fr.Kind, fr.Values = domain.FitTitle, c.Title.GetKeywords()
		case *scoringv1.FitRule_FreeMail:
			fr.Kind = domain.FitFreeMail
		case *scoringv1.FitRule_ProductInterest:
			fr.Kind, fr.Values = domain.FitProductInterest, c.ProductInterest.GetProducts()
		}
		out.Fit = append(out.Fit, fr)
	}
	for _, r := range m.GetEngagementRules() {
		out.Engagement = append(out.Engagement, domain.EngagementRule{
			ID: r.GetId(), Type: domain.SignalType(r.GetSignalType()), Points: r.GetPoints(), Cap: r.GetCap(),
			HalfLife: r.GetHalfLife().AsDuration(),
		})
	}
	return out
}

// Event converts an outbox event effect to a LeadEvent (nil for jobs).
func Event(r *domain.Record, e *domain.Effect) *eventsv1.LeadEvent {
	ev := &eventsv1.LeadEvent{
		Id: e.Key, LeadId: r.LeadID, OccurredAt: ts(e.At), OrganisationId: r.OrganisationID, Actor: e.Actor,
	}
	switch e.Kind {
	case domain.EffectLeadScored:
		ev.Payload = &eventsv1.LeadEvent_LeadScored{LeadScored: &eventsv1.LeadScored{Score: Score(e.Score), PreviousTotal: e.PrevTotal}}
	case domain.EffectMQLReached:
		ev.Payload = &eventsv1.LeadEvent_MqlReached{MqlReached: &eventsv1.MqlReached{
			Total: e.Score.Total, ModelVersion: e.Score.ModelVersion, Grade: leadv1.Grade(e.Score.Grade),
			Heat: leadv1.Heat(e.Score.Heat), Reasons: e.Reasons, Episode: e.Episode,
		}}
	case domain.EffectStatusChanged:
		ev.Payload = &eventsv1.LeadEvent_StatusChanged{StatusChanged: &eventsv1.StatusChanged{
			From: leadv1.ProspectStatus(e.From), To: leadv1.ProspectStatus(e.To), Reason: e.Reason, OwnerRepId: e.Owner,
		}}
	case domain.EffectLeadQualified:
		ev.Payload = &eventsv1.LeadEvent_LeadQualified{LeadQualified: &eventsv1.LeadQualified{BantMet: e.BantMet, OwnerRepId: e.Owner}}
	default:
		return nil
	}
	return ev
}
