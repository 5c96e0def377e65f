// Package grpcapi is reporting's gRPC face: it decodes requests, reads the
// cohort's facts from the store, runs the domain's reports and maps the
// results (and errors) to the contract.
package grpcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/reporting/consumer"
	"github.com/leadflow/leadflow/services/reporting/domain"
	"github.com/leadflow/leadflow/services/reporting/store"
)

// Server implements reportingv1.ReportingServiceServer.
type Server struct {
	reportingv1.UnimplementedReportingServiceServer
	rdb   redis.UniversalClient
	store *store.Store
	// ScoreBandWidth is the default band width of GetScoreCalibration.
	ScoreBandWidth int64
}

// New returns the gRPC face.
func New(rdb redis.UniversalClient, st *store.Store, bandWidth int64) *Server {
	return &Server{rdb: rdb, store: st, ScoreBandWidth: bandWidth}
}

var _ reportingv1.ReportingServiceServer = (*Server)(nil)

func period(p *reportingv1.Period) (time.Time, time.Time) {
	return p.GetFrom().AsTime(), p.GetTo().AsTime()
}

func ratio(r domain.Ratio) *reportingv1.Ratio {
	return &reportingv1.Ratio{Numerator: r.Num, Denominator: r.Den, BasisPoints: r.BasisPoints()}
}

func money(m domain.Money) *leadv1.Money {
	return &leadv1.Money{AmountMinor: m.Minor, CurrencyCode: m.Currency}
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func stats(s domain.DurationStats) *reportingv1.DurationStats {
	out := &reportingv1.DurationStats{Count: s.Count}
	if s.Count > 0 {
		out.P50, out.P90 = durationpb.New(s.P50), durationpb.New(s.P90)
	}
	return out
}

var stepProto = map[domain.Step]reportingv1.FunnelStep{
	domain.StepCaptured:    reportingv1.FunnelStep_FUNNEL_STEP_CAPTURED,
	domain.StepMQL:         reportingv1.FunnelStep_FUNNEL_STEP_MQL,
	domain.StepRouted:      reportingv1.FunnelStep_FUNNEL_STEP_ROUTED,
	domain.StepAccepted:    reportingv1.FunnelStep_FUNNEL_STEP_ACCEPTED,
	domain.StepQualified:   reportingv1.FunnelStep_FUNNEL_STEP_QUALIFIED,
	domain.StepOpportunity: reportingv1.FunnelStep_FUNNEL_STEP_OPPORTUNITY,
	domain.StepWon:         reportingv1.FunnelStep_FUNNEL_STEP_WON,
}

func funnelRow(r domain.FunnelRow) *reportingv1.FunnelRow {
	out := &reportingv1.FunnelRow{
		Key: r.Key, BucketStart: ts(r.Start),
		Captured: r.Counts[domain.StepCaptured], Mql: r.Counts[domain.StepMQL], Routed: r.Counts[domain.StepRouted],
		Accepted: r.Counts[domain.StepAccepted], Qualified: r.Counts[domain.StepQualified],
		Opportunities: r.Counts[domain.StepOpportunity], Won: r.Counts[domain.StepWon], Lost: r.Lost,
	}
	for _, m := range r.Revenue {
		out.Revenue = append(out.Revenue, money(m))
	}
	for _, c := range r.Conversions() {
		out.Conversions = append(out.Conversions, &reportingv1.Conversion{From: stepProto[c.From], To: stepProto[c.To], Rate: ratio(c.Rate)})
	}
	return out
}

// GetFunnel implements the RPC.
func (s *Server) GetFunnel(ctx context.Context, req *reportingv1.GetFunnelRequest) (*reportingv1.GetFunnelResponse, error) {
	from, to := period(req.GetPeriod())
	facts, err := s.store.CohortFacts(ctx, from, to)
	if err != nil {
		return nil, err
	}
	rows, total := domain.Funnel(facts, domain.GroupBy(req.GetGroupBy()))
	out := &reportingv1.GetFunnelResponse{Total: funnelRow(total)}
	for _, r := range rows {
		out.Rows = append(out.Rows, funnelRow(r))
	}
	return out, nil
}

func speedRow(r domain.SpeedRow) *reportingv1.SpeedRow {
	return &reportingv1.SpeedRow{
		Key: r.Key, CaptureToAssignment: stats(r.ToAssign), CaptureToFirstTouch: stats(r.ToTouch),
		SlaMet: r.Met, SlaMissed: r.Missed, SlaCompliance: ratio(r.Compliance()),
		Breaches: r.Breaches, Reassignments: r.Reassigns,
	}
}

// GetSpeedReport implements the RPC.
func (s *Server) GetSpeedReport(ctx context.Context, req *reportingv1.GetSpeedReportRequest) (*reportingv1.GetSpeedReportResponse, error) {
	from, to := period(req.GetPeriod())
	facts, err := s.store.CohortFacts(ctx, from, to)
	if err != nil {
		return nil, err
	}
	teams, reps, total := domain.Speed(facts)
	out := &reportingv1.GetSpeedReportResponse{Total: speedRow(total)}
	for _, r := range teams {
		out.ByTeam = append(out.ByTeam, speedRow(r))
	}
	for _, r := range reps {
		out.ByRep = append(out.ByRep, speedRow(r))
	}
	return out, nil
}

func salesRow(r domain.SalesRow) *reportingv1.SalesRow {
	out := &reportingv1.SalesRow{
		Key: r.Key, Opportunities: r.Opportunities, Won: r.Won, Lost: r.Lost, Open: r.Open,
		WinRate: ratio(r.WinRate()), SalesCycle: stats(r.Cycle),
	}
	if r.Cycle.Count > 0 {
		out.AverageSalesCycle = durationpb.New(r.AverageCycle)
	}
	for _, c := range r.Currencies {
		cf := &reportingv1.CurrencyFigures{
			CurrencyCode: c.Currency, WonDeals: c.Won,
			WonAmount:       money(domain.Money{Currency: c.Currency, Minor: c.WonAmount}),
			AverageDealSize: money(domain.Money{Currency: c.Currency, Minor: c.AverageDeal}),
		}
		if c.HasVelocity {
			cf.VelocityPerDay = money(domain.Money{Currency: c.Currency, Minor: c.VelocityPerDay})
		}
		out.Currencies = append(out.Currencies, cf)
	}
	for _, st := range r.Stages {
		out.Stages = append(out.Stages, &reportingv1.StageConversion{StageId: st.Stage, Entered: st.Entered, Won: st.Won,
			ToWon: ratio(domain.Ratio{Num: st.Won, Den: st.Entered})})
	}
	return out
}

// GetSalesReport implements the RPC.
func (s *Server) GetSalesReport(ctx context.Context, req *reportingv1.GetSalesReportRequest) (*reportingv1.GetSalesReportResponse, error) {
	from, to := period(req.GetPeriod())
	facts, err := s.store.CohortFacts(ctx, from, to)
	if err != nil {
		return nil, err
	}
	rows, total := domain.Sales(facts, domain.GroupBy(req.GetGroupBy()))
	out := &reportingv1.GetSalesReportResponse{Total: salesRow(total)}
	for _, r := range rows {
		out.Rows = append(out.Rows, salesRow(r))
	}
	return out, nil
}

func isMidnight(t time.Time) bool {
	t = t.UTC()
	return t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0
}

// RecordCampaignSpend implements the RPC.
func (s *Server) RecordCampaignSpend(ctx context.Context, req *reportingv1.RecordCampaignSpendRequest) (*reportingv1.RecordCampaignSpendResponse, error) {
	from, to := period(req.GetPeriod())
	var bad []platform.FieldViolation
	if !isMidnight(from) {
		bad = append(bad, platform.FieldViolation{Field: "period.from", Description: "must be a UTC midnight (spend covers whole days)"})
	}
	if !isMidnight(to) {
		bad = append(bad, platform.FieldViolation{Field: "period.to", Description: "must be a UTC midnight (spend covers whole days)"})
	}
	campaign := strings.TrimSpace(req.GetCampaign())
	if campaign == "" {
		bad = append(bad, platform.FieldViolation{Field: "campaign", Description: "must not be blank"})
	}
	if req.GetAmount().GetAmountMinor() < 0 {
		bad = append(bad, platform.FieldViolation{Field: "amount.amount_minor", Description: "spend must not be negative"})
	}
	if req.GetAmount().GetCurrencyCode() == "" {
		bad = append(bad, platform.FieldViolation{Field: "amount.currency_code", Description: "is required"})
	}
	if len(bad) > 0 {
		return nil, platform.InvalidArgument("invalid campaign spend", bad...)
	}
	replaced, err := s.store.RecordSpend(ctx, domain.Spend{Campaign: campaign, From: from.UTC(), To: to.UTC(),
		Money: domain.Money{Currency: req.GetAmount().GetCurrencyCode(), Minor: req.GetAmount().GetAmountMinor()}})
	if err != nil {
		return nil, err
	}
	return &reportingv1.RecordCampaignSpendResponse{Replaced: replaced}, nil
}

func costRow(r domain.CostRow) *reportingv1.CostRow {
	out := &reportingv1.CostRow{Campaign: r.Campaign, Spend: money(r.Spend), Leads: r.Leads, Mqls: r.MQLs,
		Opportunities: r.Opportunities, Won: r.Won}
	if m, ok := r.Per(r.Leads); ok {
		out.CostPerLead = money(m)
	}
	if m, ok := r.Per(r.MQLs); ok {
		out.CostPerMql = money(m)
	}
	if m, ok := r.Per(r.Opportunities); ok {
		out.CostPerOpportunity = money(m)
	}
	if m, ok := r.Per(r.Won); ok {
		out.CostPerWon = money(m)
	}
	return out
}

// GetCostReport implements the RPC.
func (s *Server) GetCostReport(ctx context.Context, req *reportingv1.GetCostReportRequest) (*reportingv1.GetCostReportResponse, error) {
	from, to := period(req.GetPeriod())
	facts, err := s.store.CohortFacts(ctx, from, to)
	if err != nil {
		return nil, err
	}
	spends, err := s.store.Spends(ctx)
	if err != nil {
		return nil, err
	}
	rows, totals := domain.Cost(facts, spends, from, to)
	out := &reportingv1.GetCostReportResponse{}
	for _, r := range rows {
		out.Rows = append(out.Rows, costRow(r))
	}
	for _, r := range totals {
		out.Totals = append(out.Totals, costRow(r))
	}
	return out, nil
}

func calRow(r domain.CalibrationRow) *reportingv1.CalibrationRow {
	return &reportingv1.CalibrationRow{Key: r.Key, Leads: r.Leads, Mqls: r.MQLs, Qualified: r.Qualified, Won: r.Won,
		ToQualified: ratio(domain.Ratio{Num: r.Qualified, Den: r.Leads}), ToWon: ratio(domain.Ratio{Num: r.Won, Den: r.Leads})}
}

// GetScoreCalibration implements the RPC.
func (s *Server) GetScoreCalibration(ctx context.Context, req *reportingv1.GetScoreCalibrationRequest) (*reportingv1.GetScoreCalibrationResponse, error) {
	from, to := period(req.GetPeriod())
	facts, err := s.store.CohortFacts(ctx, from, to)
	if err != nil {
		return nil, err
	}
	width := int64(req.GetBandWidth())
	if width == 0 {
		width = s.ScoreBandWidth
	}
	bands, grades := domain.Calibration(facts, width)
	out := &reportingv1.GetScoreCalibrationResponse{}
	for _, r := range bands {
		out.ByBand = append(out.ByBand, calRow(r))
	}
	for _, r := range grades {
		out.ByGrade = append(out.ByGrade, calRow(r))
	}
	return out, nil
}

// GetLeadJourney implements the RPC.
func (s *Server) GetLeadJourney(ctx context.Context, req *reportingv1.GetLeadJourneyRequest) (*reportingv1.GetLeadJourneyResponse, error) {
	raws, err := s.store.Journey(ctx, req.GetLeadId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.NotFound, "no events for this lead")
	}
	if err != nil {
		return nil, err
	}
	evs := make([]*eventsv1.LeadEvent, 0, len(raws))
	for _, raw := range raws {
		ev := &eventsv1.LeadEvent{}
		if err := proto.Unmarshal(raw, ev); err != nil {
			return nil, err // applied events were decoded once; this is corruption
		}
		evs = append(evs, ev)
	}
	sort.Slice(evs, func(i, j int) bool {
		ti, tj := evs[i].GetOccurredAt().AsTime(), evs[j].GetOccurredAt().AsTime()
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return evs[i].GetId() < evs[j].GetId()
	})
	out := &reportingv1.GetLeadJourneyResponse{LeadId: req.GetLeadId()}
	start := evs[0].GetOccurredAt().AsTime()
	for _, ev := range evs {
		if ev.GetLeadCaptured() != nil {
			start = ev.GetOccurredAt().AsTime()
			break
		}
	}
	for _, ev := range evs {
		// The journey's trace id: the capture event's, else the first one known.
		if ev.GetTraceId() != "" && (out.TraceId == "" || ev.GetLeadCaptured() != nil) {
			out.TraceId = ev.GetTraceId()
			if ev.GetLeadCaptured() != nil {
				break
			}
		}
	}
	for i, ev := range evs {
		at := ev.GetOccurredAt().AsTime()
		step := &reportingv1.JourneyStep{Event: ev, Kind: domain.Kind(ev), Producer: ev.GetProducer(),
			SinceStart: durationpb.New(at.Sub(start)), SincePrevious: durationpb.New(0)}
		if i > 0 {
			step.SincePrevious = durationpb.New(at.Sub(evs[i-1].GetOccurredAt().AsTime()))
		}
		out.Steps = append(out.Steps, step)
	}
	return out, nil
}

// RebuildAggregates implements the RPC.
func (s *Server) RebuildAggregates(ctx context.Context, req *reportingv1.RebuildAggregatesRequest) (*reportingv1.RebuildAggregatesResponse, error) {
	res, err := consumer.Rebuild(ctx, s.rdb, s.store, req.GetAllowPartial())
	switch {
	case errors.Is(err, store.ErrRebuildRunning):
		return nil, status.Error(codes.Aborted, "a rebuild is already running; retry later")
	case errors.Is(err, consumer.ErrTrimmed):
		return nil, status.Error(codes.FailedPrecondition, err.Error()+"; set allow_partial to rebuild from what is left")
	case err != nil:
		return nil, err
	}
	return &reportingv1.RebuildAggregatesResponse{Generation: res.Generation, EntriesReplayed: res.EntriesReplayed,
		EventsApplied: res.EventsApplied, Leads: res.Leads}, nil
}

// ListDeadLetters implements the RPC.
func (s *Server) ListDeadLetters(ctx context.Context, req *reportingv1.ListDeadLettersRequest) (*reportingv1.ListDeadLettersResponse, error) {
	size := int64(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	end := "+"
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || !validID(string(b)) {
			return nil, platform.InvalidArgument("bad page token", platform.FieldViolation{Field: "page_token", Description: "not a token from a previous page"})
		}
		end = "(" + string(b)
	}
	msgs, err := s.rdb.XRevRangeN(ctx, events.DeadLetterKey, end, "-", size+1).Result()
	if err != nil {
		return nil, err
	}
	out := &reportingv1.ListDeadLettersResponse{}
	if int64(len(msgs)) > size {
		msgs = msgs[:size]
		out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(msgs[len(msgs)-1].ID))
	}
	for _, m := range msgs {
		out.DeadLetters = append(out.DeadLetters, deadLetter(m))
	}
	return out, nil
}

func validID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	return ok && ms != "" && seq != "" && strings.Trim(ms, "0123456789") == "" && strings.Trim(seq, "0123456789") == ""
}

func deadLetter(m redis.XMessage) *reportingv1.DeadLetter {
	str := func(k string) string {
		v, _ := m.Values[k].(string)
		return v
	}
	num := func(k string) int64 {
		var n int64
		for _, r := range str(k) {
			if r < '0' || r > '9' {
				return 0
			}
			n = n*10 + int64(r-'0')
		}
		return n
	}
	d := &reportingv1.DeadLetter{Id: m.ID, StreamId: str("stream_id"), Reason: str("reason"), Deliveries: num("deliveries"),
		Consumer: str("consumer")}
	if at := num("at"); at > 0 {
		d.DeadAt = timestamppb.New(time.UnixMilli(at))
	}
	if raw := str(events.Field); raw != "" {
		d.RawSize = int64(len(raw))
		ev := &eventsv1.LeadEvent{}
		if proto.Unmarshal([]byte(raw), ev) == nil {
			d.Event = ev
		}
	}
	return d
}
