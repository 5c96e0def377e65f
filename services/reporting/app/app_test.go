package app_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
)

func ratio(num, den int64) *reportingv1.Ratio {
	bp := int64(0)
	if den > 0 {
		bp = num * 10000 / den
	}
	return &reportingv1.Ratio{Numerator: num, Denominator: den, BasisPoints: bp}
}

// row builds an expected funnel row from the step counts
// (captured, mql, routed, accepted, qualified, opportunities, won), lost and revenue.
func row(key string, start *timestamppb.Timestamp, c [7]int64, lost int64, revenue ...*leadv1.Money) *reportingv1.FunnelRow {
	steps := []reportingv1.FunnelStep{
		reportingv1.FunnelStep_FUNNEL_STEP_CAPTURED, reportingv1.FunnelStep_FUNNEL_STEP_MQL,
		reportingv1.FunnelStep_FUNNEL_STEP_ROUTED, reportingv1.FunnelStep_FUNNEL_STEP_ACCEPTED,
		reportingv1.FunnelStep_FUNNEL_STEP_QUALIFIED, reportingv1.FunnelStep_FUNNEL_STEP_OPPORTUNITY,
		reportingv1.FunnelStep_FUNNEL_STEP_WON,
	}
	r := &reportingv1.FunnelRow{Key: key, BucketStart: start, Captured: c[0], Mql: c[1], Routed: c[2], Accepted: c[3],
		Qualified: c[4], Opportunities: c[5], Won: c[6], Lost: lost, Revenue: revenue}
	for i := 1; i < 7; i++ {
		r.Conversions = append(r.Conversions, &reportingv1.Conversion{From: steps[i-1], To: steps[i], Rate: ratio(c[i], c[i-1])})
	}
	return r
}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

func stats(n int64, p50, p90 time.Duration) *reportingv1.DurationStats {
	if n == 0 {
		return &reportingv1.DurationStats{}
	}
	return &reportingv1.DurationStats{Count: n, P50: durationpb.New(p50), P90: durationpb.New(p90)}
}

// The expected numbers below are computed by hand from script():
//
//	lead week  campaign     team rep(1st) MQL  acc  qual deal outcome
//	L1   11-02 fall-cpc     emea rep-a    75A  yes  yes  d1   won 120000 EUR (7 days)
//	L2   11-02 fall-cpc     emea rep-b    62B  yes  yes  d2   lost
//	L3   11-02 webinar-nov  -    -        (40C) no  no   -    -
//	L4   11-09 webinar-nov  na   rep-c    88A  yes  yes  d4   won 50000 USD (2 days)
//	L5   11-09 fall-cpc     na   rep-c    71B  no   no   -    -
//	L6 is captured on 11-20 (outside), L7 has no capture.
func TestScriptedJourneysGiveHandComputedNumbers(t *testing.T) {
	h := newHarness(t)
	h.publish(script()...)
	h.drain(h.consumer("c1", time.Minute))
	if p := h.pending(); p != 0 {
		t.Fatalf("pending after drain = %d", p)
	}
	assertScriptNumbers(t, h)
}

// assertScriptNumbers checks every report against the hand-computed numbers.
func assertScriptNumbers(t *testing.T, h *harness) {
	t.Helper()
	wk1, wk2 := timestamppb.New(at(2, 0, 0)), timestamppb.New(at(9, 0, 0))
	total := row("", nil, [7]int64{5, 4, 4, 3, 3, 3, 2}, 1, eur(120000), usd(50000))

	f := h.funnel(reportingv1.GroupBy_GROUP_BY_UNSPECIFIED)
	diff(t, "funnel total", &reportingv1.GetFunnelResponse{Total: total}, f)

	diff(t, "funnel by week", &reportingv1.GetFunnelResponse{Total: total, Rows: []*reportingv1.FunnelRow{
		row("2026-11-02", wk1, [7]int64{3, 2, 2, 2, 2, 2, 1}, 1, eur(120000)),
		row("2026-11-09", wk2, [7]int64{2, 2, 2, 1, 1, 1, 1}, 0, usd(50000)),
	}}, h.funnel(reportingv1.GroupBy_GROUP_BY_WEEK))

	diff(t, "funnel by day", &reportingv1.GetFunnelResponse{Total: total, Rows: []*reportingv1.FunnelRow{
		row("2026-11-02", wk1, [7]int64{2, 2, 2, 2, 2, 2, 1}, 1, eur(120000)),
		row("2026-11-03", timestamppb.New(at(3, 0, 0)), [7]int64{1, 0, 0, 0, 0, 0, 0}, 0),
		row("2026-11-09", wk2, [7]int64{1, 1, 1, 1, 1, 1, 1}, 0, usd(50000)),
		row("2026-11-10", timestamppb.New(at(10, 0, 0)), [7]int64{1, 1, 1, 0, 0, 0, 0}, 0),
	}}, h.funnel(reportingv1.GroupBy_GROUP_BY_DAY))

	diff(t, "funnel by month", &reportingv1.GetFunnelResponse{Total: total, Rows: []*reportingv1.FunnelRow{
		row("2026-11", timestamppb.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)), [7]int64{5, 4, 4, 3, 3, 3, 2}, 1, eur(120000), usd(50000)),
	}}, h.funnel(reportingv1.GroupBy_GROUP_BY_MONTH))

	diff(t, "funnel by campaign", &reportingv1.GetFunnelResponse{Total: total, Rows: []*reportingv1.FunnelRow{
		row("fall-cpc", nil, [7]int64{3, 3, 3, 2, 2, 2, 1}, 1, eur(120000)),
		row("webinar-nov", nil, [7]int64{2, 1, 1, 1, 1, 1, 1}, 0, usd(50000)),
	}}, h.funnel(reportingv1.GroupBy_GROUP_BY_CAMPAIGN))

	diff(t, "funnel by source", &reportingv1.GetFunnelResponse{Total: total, Rows: []*reportingv1.FunnelRow{
		row("google", nil, [7]int64{3, 2, 2, 2, 2, 2, 2}, 0, eur(120000), usd(50000)),
		row("linkedin", nil, [7]int64{2, 2, 2, 1, 1, 1, 0}, 1),
	}}, h.funnel(reportingv1.GroupBy_GROUP_BY_SOURCE))

	diff(t, "funnel by team", &reportingv1.GetFunnelResponse{Total: total, Rows: []*reportingv1.FunnelRow{
		row("", nil, [7]int64{1, 0, 0, 0, 0, 0, 0}, 0),
		row("emea", nil, [7]int64{2, 2, 2, 2, 2, 2, 1}, 1, eur(120000)),
		row("na", nil, [7]int64{2, 2, 2, 1, 1, 1, 1}, 0, usd(50000)),
	}}, h.funnel(reportingv1.GroupBy_GROUP_BY_TEAM))

	diff(t, "funnel by rep", &reportingv1.GetFunnelResponse{Total: total, Rows: []*reportingv1.FunnelRow{
		row("", nil, [7]int64{1, 0, 0, 0, 0, 0, 0}, 0),
		row("rep-a", nil, [7]int64{1, 1, 1, 1, 1, 1, 1}, 0, eur(120000)),
		row("rep-b", nil, [7]int64{1, 1, 1, 1, 1, 1, 0}, 1),
		row("rep-c", nil, [7]int64{2, 2, 2, 1, 1, 1, 1}, 0, usd(50000)),
	}}, h.funnel(reportingv1.GroupBy_GROUP_BY_REP))

	// Speed. Capture→assignment: L1 6m, L2 70m, L4 2m, L5 31m. Capture→first
	// touch: L1 36m, L2 3h, L4 12m. SLA: L1 and L4 met, L2 missed (late).
	speed, err := h.client.GetSpeedReport(h.ctx, &reportingv1.GetSpeedReportRequest{Period: novPeriod()})
	if err != nil {
		t.Fatal(err)
	}
	m := time.Minute
	diff(t, "speed", &reportingv1.GetSpeedReportResponse{
		Total: &reportingv1.SpeedRow{CaptureToAssignment: stats(4, 6*m, 70*m), CaptureToFirstTouch: stats(3, 36*m, 180*m),
			SlaMet: 2, SlaMissed: 1, SlaCompliance: ratio(2, 3), Breaches: 1, Reassignments: 1},
		ByTeam: []*reportingv1.SpeedRow{
			{Key: "emea", CaptureToAssignment: stats(2, 6*m, 70*m), CaptureToFirstTouch: stats(2, 36*m, 180*m),
				SlaMet: 1, SlaMissed: 1, SlaCompliance: ratio(1, 2), Breaches: 1, Reassignments: 1},
			{Key: "na", CaptureToAssignment: stats(2, 2*m, 31*m), CaptureToFirstTouch: stats(1, 12*m, 12*m),
				SlaMet: 1, SlaCompliance: ratio(1, 1)},
		},
		ByRep: []*reportingv1.SpeedRow{
			{Key: "rep-a", CaptureToAssignment: stats(1, 6*m, 6*m), CaptureToFirstTouch: stats(2, 36*m, 180*m),
				SlaMet: 1, SlaMissed: 1, SlaCompliance: ratio(1, 2)},
			{Key: "rep-b", CaptureToAssignment: stats(1, 70*m, 70*m), CaptureToFirstTouch: stats(0, 0, 0),
				SlaCompliance: ratio(0, 0), Breaches: 1, Reassignments: 1},
			{Key: "rep-c", CaptureToAssignment: stats(2, 2*m, 31*m), CaptureToFirstTouch: stats(1, 12*m, 12*m),
				SlaMet: 1, SlaCompliance: ratio(1, 1)},
		},
	}, speed)

	// Sales. Deals d1 (won 120000 EUR, 7 days), d2 (lost), d4 (won 50000 USD,
	// 2 days). Win rate 2/3; cycle p50 2d, p90 7d, mean 4.5d. Velocity/day =
	// 3 opportunities × 2/3 × average deal ÷ 4.5 days: EUR 53333, USD 22222.
	sales, err := h.client.GetSalesReport(h.ctx, &reportingv1.GetSalesReportRequest{Period: novPeriod(), GroupBy: reportingv1.GroupBy_GROUP_BY_REP})
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	diff(t, "sales", &reportingv1.GetSalesReportResponse{
		Total: &reportingv1.SalesRow{Opportunities: 3, Won: 2, Lost: 1, WinRate: ratio(2, 3),
			SalesCycle: stats(2, 2*day, 7*day), AverageSalesCycle: durationpb.New(108 * time.Hour),
			Currencies: []*reportingv1.CurrencyFigures{
				{CurrencyCode: "EUR", WonDeals: 1, WonAmount: eur(120000), AverageDealSize: eur(120000), VelocityPerDay: eur(53333)},
				{CurrencyCode: "USD", WonDeals: 1, WonAmount: usd(50000), AverageDealSize: usd(50000), VelocityPerDay: usd(22222)},
			},
			Stages: []*reportingv1.StageConversion{
				{StageId: "discovery", Entered: 3, Won: 2, ToWon: ratio(2, 3)},
				{StageId: "demo", Entered: 2, Won: 1, ToWon: ratio(1, 2)},
				{StageId: "proposal", Entered: 1, Won: 1, ToWon: ratio(1, 1)},
			}},
		Rows: []*reportingv1.SalesRow{
			// rep-a owns d1 (won, 7 days) and d2 (lost): 2 × 1/2 × 120000 ÷ 7 days.
			{Key: "rep-a", Opportunities: 2, Won: 1, Lost: 1, WinRate: ratio(1, 2),
				SalesCycle: stats(1, 7*day, 7*day), AverageSalesCycle: durationpb.New(7 * day),
				Currencies: []*reportingv1.CurrencyFigures{
					{CurrencyCode: "EUR", WonDeals: 1, WonAmount: eur(120000), AverageDealSize: eur(120000), VelocityPerDay: eur(17142)},
				},
				Stages: []*reportingv1.StageConversion{
					{StageId: "demo", Entered: 2, Won: 1, ToWon: ratio(1, 2)},
					{StageId: "discovery", Entered: 2, Won: 1, ToWon: ratio(1, 2)},
					{StageId: "proposal", Entered: 1, Won: 1, ToWon: ratio(1, 1)},
				}},
			// rep-c owns d4: 1 × 1 × 50000 ÷ 2 days.
			{Key: "rep-c", Opportunities: 1, Won: 1, WinRate: ratio(1, 1),
				SalesCycle: stats(1, 2*day, 2*day), AverageSalesCycle: durationpb.New(2 * day),
				Currencies: []*reportingv1.CurrencyFigures{
					{CurrencyCode: "USD", WonDeals: 1, WonAmount: usd(50000), AverageDealSize: usd(50000), VelocityPerDay: usd(25000)},
				},
				Stages: []*reportingv1.StageConversion{{StageId: "discovery", Entered: 1, Won: 1, ToWon: ratio(1, 1)}}},
		},
	}, sales)

	// Calibration, bands of 10 by MQL score (latest score if never MQL):
	// L3 40 → 40-49, L2 62 → 60-69, L1 75 and L5 71 → 70-79, L4 88 → 80-89.
	cal, err := h.client.GetScoreCalibration(h.ctx, &reportingv1.GetScoreCalibrationRequest{Period: novPeriod()})
	if err != nil {
		t.Fatal(err)
	}
	calRow := func(key string, leads, mqls, qual, won int64) *reportingv1.CalibrationRow {
		return &reportingv1.CalibrationRow{Key: key, Leads: leads, Mqls: mqls, Qualified: qual, Won: won,
			ToQualified: ratio(qual, leads), ToWon: ratio(won, leads)}
	}
	diff(t, "calibration", &reportingv1.GetScoreCalibrationResponse{
		ByBand: []*reportingv1.CalibrationRow{
			calRow("40-49", 1, 0, 0, 0), calRow("60-69", 1, 1, 1, 0), calRow("70-79", 2, 2, 1, 1), calRow("80-89", 1, 1, 1, 1),
		},
		ByGrade: []*reportingv1.CalibrationRow{
			calRow("GRADE_A", 2, 2, 2, 2), calRow("GRADE_B", 2, 2, 1, 0), calRow("GRADE_C", 1, 0, 0, 0),
		},
	}, cal)
}
