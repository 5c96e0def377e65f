package app_test

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
)

// at is a UTC time in November 2026 (day, hour, minute).
func at(day, hour, minute int) time.Time {
	return time.Date(2026, time.November, day, hour, minute, 0, 0, time.UTC)
}

var seq int

// ev builds an event with a deterministic id and a trace id per lead.
func ev(lead string, t time.Time, producer string, set func(*eventsv1.LeadEvent)) *eventsv1.LeadEvent {
	seq++
	e := &eventsv1.LeadEvent{
		Id:         fmt.Sprintf("ev-%04d", seq),
		LeadId:     lead,
		OccurredAt: timestamppb.New(t),
		Producer:   producer,
		TraceId:    fmt.Sprintf("%032x", len(lead)*1000+int(lead[len(lead)-1])),
		Actor:      producer,
	}
	set(e)
	return e
}

func eur(minor int64) *leadv1.Money { return &leadv1.Money{AmountMinor: minor, CurrencyCode: "EUR"} }
func usd(minor int64) *leadv1.Money { return &leadv1.Money{AmountMinor: minor, CurrencyCode: "USD"} }

func captured(lead string, t time.Time, source, campaign string, ch leadv1.Channel) *eventsv1.LeadEvent {
	return ev(lead, t, "capture", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadCaptured{LeadCaptured: &eventsv1.LeadCaptured{Channel: ch, Source: source, Campaign: campaign, CountryCode: "DE"}}
	})
}

func scored(lead string, t time.Time, total int32, g leadv1.Grade) *eventsv1.LeadEvent {
	return ev(lead, t, "scoring", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadScored{LeadScored: &eventsv1.LeadScored{Score: &leadv1.Score{Total: total, Grade: g}}}
	})
}

func mql(lead string, t time.Time, total int32, g leadv1.Grade) *eventsv1.LeadEvent {
	return ev(lead, t, "scoring", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_MqlReached{MqlReached: &eventsv1.MqlReached{Total: total, Grade: g, Heat: leadv1.Heat_HEAT_HOT}}
	})
}

func routed(lead string, t time.Time, team, rep string) *eventsv1.LeadEvent {
	return ev(lead, t, "routing", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadRouted{LeadRouted: &eventsv1.LeadRouted{DecisionId: "d-" + lead, TeamId: team, RepId: rep}}
	})
}

func queued(lead string, t time.Time, team string) *eventsv1.LeadEvent {
	return ev(lead, t, "routing", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadQueued{LeadQueued: &eventsv1.LeadQueued{TeamId: team}}
	})
}

func assigned(lead string, t time.Time, team, rep string, due time.Time) *eventsv1.LeadEvent {
	return ev(lead, t, "routing", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadAssigned{LeadAssigned: &eventsv1.LeadAssigned{TeamId: team, RepId: rep, FirstTouchDue: timestamppb.New(due)}}
	})
}

func touched(lead string, t time.Time, team, rep string, first, within bool) *eventsv1.LeadEvent {
	return ev(lead, t, "routing", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadTouched{LeadTouched: &eventsv1.LeadTouched{TeamId: team, RepId: rep, TouchType: "call", FirstTouch: first, WithinSla: within}}
	})
}

func accepted(lead string, t time.Time, team, rep string) *eventsv1.LeadEvent {
	return ev(lead, t, "routing", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadAccepted{LeadAccepted: &eventsv1.LeadAccepted{TeamId: team, RepId: rep}}
	})
}

func breached(lead string, t time.Time, team, rep string) *eventsv1.LeadEvent {
	return ev(lead, t, "routing", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_SlaBreached{SlaBreached: &eventsv1.SlaBreached{TeamId: team, RepId: rep, Kind: "first_touch", Action: "reassign"}}
	})
}

func reassigned(lead string, t time.Time, team, from, to string) *eventsv1.LeadEvent {
	return ev(lead, t, "routing", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadReassigned{LeadReassigned: &eventsv1.LeadReassigned{TeamId: team, FromRepId: from, ToRepId: to, Reason: "sla_breach"}}
	})
}

func qualified(lead string, t time.Time, rep string) *eventsv1.LeadEvent {
	return ev(lead, t, "scoring", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_LeadQualified{LeadQualified: &eventsv1.LeadQualified{BantMet: 4, OwnerRepId: rep}}
	})
}

func dealCreated(lead string, t time.Time, deal, stage, rep string, amount *leadv1.Money) *eventsv1.LeadEvent {
	return ev(lead, t, "pipeline", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_DealCreated{DealCreated: &eventsv1.DealCreated{DealId: deal, PipelineId: "default", StageId: stage, OwnerRepId: rep, Amount: amount}}
	})
}

func stageChanged(lead string, t time.Time, deal, from, to string) *eventsv1.LeadEvent {
	return ev(lead, t, "pipeline", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_StageChanged{StageChanged: &eventsv1.StageChanged{DealId: deal, PipelineId: "default", FromStageId: from, ToStageId: to}}
	})
}

func won(lead string, t time.Time, deal, rep string, amount *leadv1.Money, created time.Time) *eventsv1.LeadEvent {
	return ev(lead, t, "pipeline", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_DealWon{DealWon: &eventsv1.DealWon{DealId: deal, PipelineId: "default", Amount: amount, OwnerRepId: rep,
			ClosedAt: timestamppb.New(t), DealCreatedAt: timestamppb.New(created)}}
	})
}

func lost(lead string, t time.Time, deal, rep, reason string) *eventsv1.LeadEvent {
	return ev(lead, t, "pipeline", func(e *eventsv1.LeadEvent) {
		e.Payload = &eventsv1.LeadEvent_DealLost{DealLost: &eventsv1.DealLost{DealId: deal, PipelineId: "default", Reason: reason, OwnerRepId: rep}}
	})
}

// script is the scripted set of lead journeys the expectations in
// app_test.go were computed from by hand (see the comments there). The
// stream order is deliberately not the time order for L4 (its MQL arrives
// before its capture) and the L1 capture is published twice (a publisher
// retry: same event id).
func script() []*eventsv1.LeadEvent {
	seq = 0
	l4mql := mql("L4", at(9, 10, 1), 88, leadv1.Grade_GRADE_A)
	l1cap := captured("L1", at(2, 9, 0), "google", "fall-cpc", leadv1.Channel_CHANNEL_WEB_FORM)
	evs := []*eventsv1.LeadEvent{
		// L1: week of Nov 2, fall-cpc, emea/rep-a, touched in SLA, won 120000 EUR after 7 days.
		l1cap,
		scored("L1", at(2, 9, 5), 75, leadv1.Grade_GRADE_A),
		mql("L1", at(2, 9, 5), 75, leadv1.Grade_GRADE_A),
		routed("L1", at(2, 9, 6), "emea", "rep-a"),
		assigned("L1", at(2, 9, 6), "emea", "rep-a", at(2, 10, 6)),
		touched("L1", at(2, 9, 36), "emea", "rep-a", true, true),
		accepted("L1", at(2, 9, 40), "emea", "rep-a"),
		qualified("L1", at(3, 10, 0), "rep-a"),
		dealCreated("L1", at(3, 10, 0), "d1", "discovery", "rep-a", eur(100000)),
		stageChanged("L1", at(4, 10, 0), "d1", "discovery", "demo"),
		stageChanged("L1", at(5, 10, 0), "d1", "demo", "proposal"),
		scored("L1", at(5, 11, 0), 90, leadv1.Grade_GRADE_A), // later score: calibration keeps the MQL score
		won("L1", at(10, 10, 0), "d1", "rep-a", eur(120000), at(3, 10, 0)),
		l1cap, // duplicate delivery of the same event

		// L2: week of Nov 2, fall-cpc, queued then rep-b, SLA breach, reassigned to rep-a, lost.
		captured("L2", at(2, 12, 0), "linkedin", "fall-cpc", leadv1.Channel_CHANNEL_PAID_AD),
		scored("L2", at(2, 12, 10), 62, leadv1.Grade_GRADE_B),
		mql("L2", at(2, 12, 10), 62, leadv1.Grade_GRADE_B),
		routed("L2", at(2, 12, 11), "emea", ""),
		queued("L2", at(2, 12, 11), "emea"),
		assigned("L2", at(2, 13, 10), "emea", "rep-b", at(2, 14, 10)),
		breached("L2", at(2, 14, 10), "emea", "rep-b"),
		reassigned("L2", at(2, 14, 10), "emea", "rep-b", "rep-a"),
		touched("L2", at(2, 15, 0), "emea", "rep-a", true, false),
		accepted("L2", at(2, 15, 5), "emea", "rep-a"),
		qualified("L2", at(4, 9, 0), "rep-a"),
		dealCreated("L2", at(4, 9, 0), "d2", "discovery", "rep-a", nil),
		stageChanged("L2", at(5, 9, 0), "d2", "discovery", "demo"),
		lost("L2", at(12, 9, 0), "d2", "rep-a", "no budget"),

		// L3: week of Nov 2, webinar-nov, scored 40, never MQL.
		captured("L3", at(3, 8, 0), "google", "webinar-nov", leadv1.Channel_CHANNEL_WEB_FORM),
		scored("L3", at(3, 8, 1), 40, leadv1.Grade_GRADE_C),

		// L4: week of Nov 9, webinar-nov, na/rep-c, won 50000 USD after 2 days.
		l4mql,
		captured("L4", at(9, 10, 0), "google", "webinar-nov", leadv1.Channel_CHANNEL_EVENT),
		scored("L4", at(9, 10, 1), 88, leadv1.Grade_GRADE_A),
		routed("L4", at(9, 10, 2), "na", "rep-c"),
		assigned("L4", at(9, 10, 2), "na", "rep-c", at(9, 11, 2)),
		touched("L4", at(9, 10, 12), "na", "rep-c", true, true),
		accepted("L4", at(9, 10, 20), "na", "rep-c"),
		qualified("L4", at(9, 15, 0), "rep-c"),
		dealCreated("L4", at(9, 15, 0), "d4", "discovery", "rep-c", usd(50000)),
		won("L4", at(11, 15, 0), "d4", "rep-c", usd(50000), at(9, 15, 0)),

		// L5: week of Nov 9, fall-cpc, na/rep-c, not touched yet.
		captured("L5", at(10, 10, 0), "linkedin", "fall-cpc", leadv1.Channel_CHANNEL_WEB_FORM),
		scored("L5", at(10, 10, 30), 71, leadv1.Grade_GRADE_B),
		mql("L5", at(10, 10, 30), 71, leadv1.Grade_GRADE_B),
		routed("L5", at(10, 10, 31), "na", "rep-c"),
		assigned("L5", at(10, 10, 31), "na", "rep-c", at(10, 11, 31)),

		// L6: captured after the period: in no report of the period.
		captured("L6", at(20, 9, 0), "google", "fall-cpc", leadv1.Channel_CHANNEL_WEB_FORM),
		mql("L6", at(20, 9, 5), 95, leadv1.Grade_GRADE_A),

		// L7: events without a capture: journey only, in no cohort.
		scored("L7", at(4, 9, 0), 55, leadv1.Grade_GRADE_B),
	}
	return evs
}
