package app_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/reporting/consumer"
)

func TestCostReportDividesSpendByTheCampaignsLeads(t *testing.T) {
	h := newHarness(t)
	h.publish(script()...)
	h.drain(h.consumer("c1", time.Minute))

	// fall-cpc: 140000 EUR over Nov 1–14 (14 days); the period Nov 2–15
	// covers 13 of them: 130000. webinar-nov: 30000 USD over exactly the period.
	spend := func(campaign string, from, to time.Time, m *leadv1.Money) *reportingv1.RecordCampaignSpendResponse {
		res, err := h.client.RecordCampaignSpend(h.ctx, &reportingv1.RecordCampaignSpendRequest{Campaign: campaign,
			Period: &reportingv1.Period{From: timestamppb.New(from), To: timestamppb.New(to)}, Amount: m})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if spend("fall-cpc", at(1, 0, 0), at(15, 0, 0), eur(99)).GetReplaced() {
		t.Fatal("first record reported as replaced")
	}
	if !spend("fall-cpc", at(1, 0, 0), at(15, 0, 0), eur(140000)).GetReplaced() {
		t.Fatal("second record for the same campaign and period not reported as replaced")
	}
	spend("webinar-nov", at(2, 0, 0), at(16, 0, 0), usd(30000))
	spend("other", at(20, 0, 0), at(21, 0, 0), usd(1000)) // outside the period

	res, err := h.client.GetCostReport(h.ctx, &reportingv1.GetCostReportRequest{Period: novPeriod()})
	if err != nil {
		t.Fatal(err)
	}
	fall := &reportingv1.CostRow{Campaign: "fall-cpc", Spend: eur(130000), Leads: 3, Mqls: 3, Opportunities: 2, Won: 1,
		CostPerLead: eur(43333), CostPerMql: eur(43333), CostPerOpportunity: eur(65000), CostPerWon: eur(130000)}
	web := &reportingv1.CostRow{Campaign: "webinar-nov", Spend: usd(30000), Leads: 2, Mqls: 1, Opportunities: 1, Won: 1,
		CostPerLead: usd(15000), CostPerMql: usd(30000), CostPerOpportunity: usd(30000), CostPerWon: usd(30000)}
	fallTotal, webTotal := proto.CloneOf(fall), proto.CloneOf(web)
	fallTotal.Campaign, webTotal.Campaign = "", ""
	diff(t, "cost", &reportingv1.GetCostReportResponse{
		Rows:   []*reportingv1.CostRow{fall, web},
		Totals: []*reportingv1.CostRow{fallTotal, webTotal},
	}, res)

	// Spend must cover whole UTC days; every bad field is named.
	_, err = h.client.RecordCampaignSpend(h.ctx, &reportingv1.RecordCampaignSpendRequest{Campaign: "x",
		Period: &reportingv1.Period{From: timestamppb.New(at(1, 3, 0)), To: timestamppb.New(at(2, 5, 0))}, Amount: eur(-5)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("non-midnight spend: %v", err)
	}
	got := map[string]bool{}
	for _, v := range platform.FieldViolations(err) {
		got[v.Field] = true
	}
	if !got["period.from"] || !got["period.to"] || !got["amount.amount_minor"] {
		t.Fatalf("violations = %v", platform.FieldViolations(err))
	}
}

func TestInvalidPeriodIsRejectedByTheContract(t *testing.T) {
	h := newHarness(t)
	_, err := h.client.GetFunnel(h.ctx, &reportingv1.GetFunnelRequest{
		Period: &reportingv1.Period{From: timestamppb.New(at(5, 0, 0)), To: timestamppb.New(at(2, 0, 0))}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("reversed period: %v", err)
	}
	_, err = h.client.GetSpeedReport(h.ctx, &reportingv1.GetSpeedReportRequest{})
	if status.Code(err) != codes.InvalidArgument || len(platform.FieldViolations(err)) == 0 {
		t.Fatalf("missing period: %v", err)
	}
}

func TestLeadJourneyListsEveryEventInOrderWithItsTraceID(t *testing.T) {
	h := newHarness(t)
	evs := script()
	h.publish(evs...)
	h.drain(h.consumer("c1", time.Minute))

	res, err := h.client.GetLeadJourney(h.ctx, &reportingv1.GetLeadJourneyRequest{LeadId: "L2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind, producer string
		sincePrev      time.Duration
	}{
		{"lead_captured", "capture", 0},
		{"lead_scored", "scoring", 10 * time.Minute},
		{"mql_reached", "scoring", 0},
		{"lead_routed", "routing", time.Minute},
		{"lead_queued", "routing", 0},
		{"lead_assigned", "routing", 59 * time.Minute},
		{"sla_breached", "routing", time.Hour},
		{"lead_reassigned", "routing", 0},
		{"lead_touched", "routing", 50 * time.Minute},
		{"lead_accepted", "routing", 5 * time.Minute},
		{"lead_qualified", "scoring", 41*time.Hour + 55*time.Minute},
		{"deal_created", "pipeline", 0},
		{"stage_changed", "pipeline", 24 * time.Hour},
		{"deal_lost", "pipeline", 7 * 24 * time.Hour},
	}
	if len(res.GetSteps()) != len(want) {
		t.Fatalf("journey has %d steps, want %d", len(res.GetSteps()), len(want))
	}
	var wantTrace string
	for _, e := range evs {
		if e.GetLeadId() == "L2" {
			wantTrace = e.GetTraceId()
			break
		}
	}
	if res.GetTraceId() != wantTrace || res.GetLeadId() != "L2" {
		t.Fatalf("trace id %q, want %q", res.GetTraceId(), wantTrace)
	}
	for i, w := range want {
		s := res.GetSteps()[i]
		if s.GetKind() != w.kind || s.GetProducer() != w.producer || s.GetSincePrevious().AsDuration() != w.sincePrev {
			t.Errorf("step %d = %s by %s after %v; want %s by %s after %v", i, s.GetKind(), s.GetProducer(),
				s.GetSincePrevious().AsDuration(), w.kind, w.producer, w.sincePrev)
		}
	}
	if last := res.GetSteps()[len(want)-1]; last.GetSinceStart().AsDuration() != 10*24*time.Hour-3*time.Hour {
		t.Errorf("since start of the last step = %v", last.GetSinceStart().AsDuration())
	}

	// L4's MQL was published before its capture: the journey is in time order.
	l4, err := h.client.GetLeadJourney(h.ctx, &reportingv1.GetLeadJourneyRequest{LeadId: "L4"})
	if err != nil {
		t.Fatal(err)
	}
	if l4.GetSteps()[0].GetKind() != "lead_captured" || l4.GetSteps()[1].GetKind() != "mql_reached" {
		t.Errorf("L4 journey starts %s, %s", l4.GetSteps()[0].GetKind(), l4.GetSteps()[1].GetKind())
	}

	if _, err := h.client.GetLeadJourney(h.ctx, &reportingv1.GetLeadJourneyRequest{LeadId: "nobody"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown lead: %v", err)
	}
}

func TestHeadlineMetricsShowTheFunnel(t *testing.T) {
	h := newHarness(t)
	h.publish(script()...)
	c := h.consumer("c1", time.Minute)
	h.drain(c)
	// Redelivery must not count twice.
	h.publish(script()...)
	h.drain(c)

	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	steps := map[string]int64{}
	revenue := map[string]int64{}
	var lag, pending int64 = -1, -1
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch m.Name {
			case "leadflow.reporting.funnel.leads":
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					v, _ := dp.Attributes.Value(attribute.Key("step"))
					steps[v.AsString()] += dp.Value
				}
			case "leadflow.reporting.revenue.won":
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					v, _ := dp.Attributes.Value(attribute.Key("currency"))
					revenue[v.AsString()] += dp.Value
				}
			case "leadflow.reporting.consumer.lag":
				lag = m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value
			case "leadflow.reporting.consumer.pending":
				pending = m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value
			}
		}
	}
	// Every lead of the script, L6 and L7 included (counters are not cohorts):
	// captured L1–L6, MQL L1 L2 L4 L5 L6, routed L1 L2 L4 L5, …
	wantSteps := map[string]int64{"captured": 6, "mql": 5, "routed": 4, "accepted": 3, "qualified": 3, "opportunity": 3, "won": 2, "lost": 1}
	for k, v := range wantSteps {
		if steps[k] != v {
			t.Errorf("funnel metric %s = %d, want %d (all: %v)", k, steps[k], v, steps)
		}
	}
	if revenue["EUR"] != 120000 || revenue["USD"] != 50000 {
		t.Errorf("revenue metric = %v", revenue)
	}
	if lag != 0 || pending != 0 {
		t.Errorf("lag %d, pending %d; want 0, 0", lag, pending)
	}
}

// Reporting's step in a lead's journey trace: one reporting.apply span per
// step that published events (their traceparent), a child of that step's
// span, naming the events' kinds and whether they were applied or were
// duplicates.
func TestAppliedEventsAreStepsOfTheLeadsTrace(t *testing.T) {
	exp := platformtest.Spans()
	h := newHarness(t, platform.WithSpanExporter(exp))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const captureStep, scoringStep = "00f067aa0ba902b7", "b7ad6b7169203331"
	step := func(e *eventsv1.LeadEvent, span string) *eventsv1.LeadEvent {
		e.Traceparent, e.TraceId = "00-"+traceID+"-"+span+"-01", traceID
		return e
	}
	c := step(captured("T1", at(2, 9, 0), "google", "c", leadv1.Channel_CHANNEL_WEB_FORM), captureStep)
	// Scoring publishes lead_scored and mql_reached from one step.
	h.publish(c, step(scored("T1", at(2, 9, 1), 80, leadv1.Grade_GRADE_A), scoringStep), step(mql("T1", at(2, 9, 1), 80, leadv1.Grade_GRADE_A), scoringStep))
	h.drain(h.consumer("c1", time.Minute))
	h.publish(c) // a duplicate delivery
	h.drain(h.consumer("c1", time.Minute))

	var got []string
	for _, s := range exp.GetSpans() {
		if s.Name != "reporting.apply" {
			continue
		}
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("span in trace %s, want the lead's %s", s.SpanContext.TraceID(), traceID)
		}
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes {
			attrs[a.Key] = a.Value
		}
		if attrs[leadtrace.AttrLeadID].AsString() != "T1" {
			t.Errorf("span lead id = %q", attrs[leadtrace.AttrLeadID].AsString())
		}
		got = append(got, fmt.Sprintf("%s %v %s", s.Parent.SpanID(), attrs[consumer.AttrEvents].AsStringSlice(), attrs[leadtrace.AttrOutcome].AsString()))
	}
	want := []string{
		captureStep + " [lead_captured] applied",
		scoringStep + " [lead_scored mql_reached] applied",
		captureStep + " [lead_captured] duplicate",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("apply spans (parent, events, outcome) = %q, want %q", got, want)
	}
}
