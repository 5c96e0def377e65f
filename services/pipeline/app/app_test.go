package app_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/pipeline/app"
	"github.com/leadflow/leadflow/services/pipeline/domain"
	"github.com/leadflow/leadflow/services/pipeline/store"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// fakeScoring records SetStatus calls; down makes it answer Unavailable and
// reject makes it answer FailedPrecondition.
type fakeScoring struct {
	scoringv1.UnimplementedScoringServiceServer
	mu     sync.Mutex
	calls  []*scoringv1.SetStatusRequest
	reject bool
}

func (f *fakeScoring) SetStatus(_ context.Context, req *scoringv1.SetStatusRequest) (*scoringv1.SetStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reject {
		return nil, status.Error(codes.FailedPrecondition, "illegal transition")
	}
	f.calls = append(f.calls, req)
	return &scoringv1.SetStatusResponse{Changed: true}, nil
}

func (f *fakeScoring) Calls() []*scoringv1.SetStatusRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*scoringv1.SetStatusRequest(nil), f.calls...)
}

// scoringServer serves the fake on a fixed loopback address that can go
// down and come back.
type scoringServer struct {
	t    testing.TB
	addr string
	fake *fakeScoring
	srv  *grpc.Server
}

func startScoring(t testing.TB) *scoringServer {
	s := &scoringServer{t: t, addr: fmt.Sprintf("127.0.0.1:%d", platformtest.FreePort(t)), fake: &fakeScoring{}}
	s.Up()
	t.Cleanup(s.Down)
	return s
}

func (s *scoringServer) Up() {
	s.t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // the port may linger briefly after Down
		if lis, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.srv = grpc.NewServer()
	scoringv1.RegisterScoringServiceServer(s.srv, s.fake)
	go func() { _ = s.srv.Serve(lis) }()
}

func (s *scoringServer) Down() {
	if s.srv != nil {
		s.srv.Stop()
		s.srv = nil
	}
}

type env struct {
	t       testing.TB
	ctx     context.Context
	client  pipelinev1.PipelineServiceClient
	svc     *app.Service
	redis   *platformtest.Redis
	clock   *platformtest.Clock
	spans   *tracetest.InMemoryExporter
	scoring *scoringServer
}

var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, mut ...func(*app.Config)) *env {
	t.Helper()
	r := platformtest.StartRedis(t)
	sc := startScoring(t)
	spans := platformtest.Spans()
	base := platformtest.Base("pipeline", r.URL())
	base.Peers.Scoring = sc.addr
	rt := platformtest.RuntimeWith(t, base, platform.WithSpanExporter(spans))
	clk := platformtest.NewClock(t0)
	cfg := app.Config{
		LostReasons: "no_budget,timing,lost_to_competitor", RenewalTermMonths: 12, RenewalLeadTime: 30 * 24 * time.Hour,
		HandoffMaxAttempts: 5, HandoffMaxBackoff: time.Minute, Now: clk.Now,
	}
	for _, m := range mut {
		m(&cfg)
	}
	ctx := context.Background()
	svc, conn, err := app.Build(ctx, rt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if conn != nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	cc := platformtest.Serve(t, rt, platform.Service{
		Register: func(s *grpc.Server) { pipelinev1.RegisterPipelineServiceServer(s, svc.Server) },
		Names:    []string{pipelinev1.PipelineService_ServiceDesc.ServiceName},
	})
	return &env{t: t, ctx: ctx, client: pipelinev1.NewPipelineServiceClient(cc), svc: svc, redis: r, clock: clk, spans: spans, scoring: sc}
}

func eur(minor int64) *leadv1.Money { return &leadv1.Money{AmountMinor: minor, CurrencyCode: "EUR"} }

// events reads every LeadEvent on the stream.
func (e *env) events() []*eventsv1.LeadEvent {
	e.t.Helper()
	msgs, err := e.redis.Client().XRange(e.ctx, events.StreamKey, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*eventsv1.LeadEvent
	for _, m := range msgs {
		ev, err := events.Decode(m.Values)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// count is the number of distinct events (by id: consumers de-duplicate)
// of a kind on the stream.
func (e *env) count(kind string) int {
	ids := map[string]bool{}
	for _, ev := range e.events() {
		if strings.Contains(fmt.Sprintf("%T", ev.GetPayload()), kind) {
			ids[ev.GetId()] = true
		}
	}
	return len(ids)
}

func (e *env) handoff(lead string) *pipelinev1.CreateDealFromLeadResponse {
	e.t.Helper()
	res, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: lead, OrganisationId: "org-1", OwnerRepId: "ann"})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func code(err error) codes.Code { return status.Code(err) }

// hasSpan reports whether a span with the name, lead id and outcome ended.
func (e *env) hasSpan(name, lead, outcome string) bool {
	for _, s := range e.spans.GetSpans() {
		if s.Name != name {
			continue
		}
		attrs := map[string]string{}
		for _, a := range s.Attributes {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs[leadtrace.AttrLeadID] == lead && attrs[leadtrace.AttrOutcome] == outcome {
			return true
		}
	}
	return false
}

func TestDefaultPipelineOnFreshInstall(t *testing.T) {
	e := newEnv(t)
	res, err := e.client.GetPipeline(e.ctx, &pipelinev1.GetPipelineRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range res.GetPipeline().GetStages() {
		got = append(got, fmt.Sprintf("%s:%d:%s", s.GetName(), s.GetProbabilityBps(), s.GetKind()))
	}
	want := "[Discovery:1000:STAGE_KIND_OPEN Demo/Presentation:2500:STAGE_KIND_OPEN Proposal:5000:STAGE_KIND_OPEN Negotiation:7500:STAGE_KIND_OPEN Closed Won:10000:STAGE_KIND_WON Closed Lost:0:STAGE_KIND_LOST]"
	if fmt.Sprint(got) != want || !res.GetPipeline().GetIsDefault() {
		t.Fatalf("default pipeline = %v", got)
	}
	// Even after Redis lost it, the default comes back on first use.
	e.redis.Client().FlushAll(e.ctx)
	if _, err := e.client.GetPipeline(e.ctx, &pipelinev1.GetPipelineRequest{PipelineId: "default"}); err != nil {
		t.Fatal(err)
	}
}

func TestHandoffCreatesExactlyOneDealUnderConcurrencyAndRetries(t *testing.T) {
	e := newEnv(t)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const n = 40
	var wg sync.WaitGroup
	results := make(chan *pipelinev1.CreateDealFromLeadResponse, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{
				LeadId: "lead-1", OrganisationId: "org-1", OwnerRepId: "ann", Traceparent: tp, Amount: eur(100000),
			})
			if err != nil {
				t.Error(err)
				return
			}
			results <- res
		}()
	}
	wg.Wait()
	close(results)
	created, ids := 0, map[string]bool{}
	for r := range results {
		if r.GetCreated() {
			created++
		}
		ids[r.GetDeal().GetId()] = true
	}
	if created != 1 || len(ids) != 1 {
		t.Fatalf("created=%d distinct deals=%d, want 1 and 1", created, len(ids))
	}
	// Sequential retries return the same deal.
	for range 3 {
		if r := e.handoff("lead-1"); r.GetCreated() || !ids[r.GetDeal().GetId()] {
			t.Fatalf("retry: %v", r)
		}
	}
	list, err := e.client.ListDeals(e.ctx, &pipelinev1.ListDealsRequest{PageSize: 100})
	if err != nil || len(list.GetDeals()) != 1 {
		t.Fatalf("deals stored = %d %v", len(list.GetDeals()), err)
	}
	d := list.GetDeals()[0]
	if d.GetStageId() != domain.StageDiscovery || d.GetPipelineId() != "default" || d.GetTraceparent() != tp || d.GetLeadId() != "lead-1" {
		t.Fatalf("deal = %v", d)
	}
	if got := e.count("DealCreated"); got != 1 {
		t.Fatalf("DealCreated events = %d", got)
	}
	// The deal's span is in the lead's journey trace.
	found := false
	for _, s := range e.spans.GetSpans() {
		if s.Name == "pipeline.CreateDealFromLead" && s.SpanContext.TraceID().String() == leadtrace.TraceID(tp) {
			found = true
		}
	}
	if !found {
		t.Fatal("no CreateDealFromLead span in the lead's trace")
	}
	// Another pipeline holds its own open deal for the lead.
	p, err := e.client.CreatePipeline(e.ctx, &pipelinev1.CreatePipelineRequest{Name: "Partners", Stages: []*pipelinev1.StageSpec{
		{Name: "Intro", ProbabilityBps: 2000, Kind: pipelinev1.StageKind_STAGE_KIND_OPEN},
		{Name: "Won", ProbabilityBps: 10000, Kind: pipelinev1.StageKind_STAGE_KIND_WON},
		{Name: "Lost", Kind: pipelinev1.StageKind_STAGE_KIND_LOST},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: "lead-1", PipelineId: p.GetPipeline().GetId()})
	if err != nil || !r2.GetCreated() || ids[r2.GetDeal().GetId()] || r2.GetDeal().GetStageId() != p.GetPipeline().GetStages()[0].GetId() {
		t.Fatalf("second pipeline: %v %v", r2, err)
	}
	// Manual CreateDeal for the lead in the default pipeline: AlreadyExists.
	_, err = e.client.CreateDeal(e.ctx, &pipelinev1.CreateDealRequest{LeadId: "lead-1", OrganisationId: "o", OwnerRepId: "ann", Name: "dup"})
	if code(err) != codes.AlreadyExists {
		t.Fatalf("manual duplicate: %v", err)
	}
}

func TestHandoffAfterCloseAndStaleSlot(t *testing.T) {
	e := newEnv(t)
	first := e.handoff("lead-2").GetDeal()
	if _, err := e.client.CloseLost(e.ctx, &pipelinev1.CloseLostRequest{DealId: first.GetId(), Reason: "timing"}); err != nil {
		t.Fatal(err)
	}
	second := e.handoff("lead-2")
	if !second.GetCreated() || second.GetDeal().GetId() == first.GetId() {
		t.Fatalf("hand-off after loss: %v", second)
	}
	// Reopening the first deal now conflicts with the open second one.
	if _, err := e.client.ReopenDeal(e.ctx, &pipelinev1.ReopenDealRequest{DealId: first.GetId()}); code(err) != codes.FailedPrecondition {
		t.Fatalf("reopen with another open deal: %v", err)
	}
	// A slot left pointing at a closed deal (lost release) is taken over.
	if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: second.GetDeal().GetId(), Amount: eur(5000), ClosedAt: timestamppb.New(t0)}); err != nil {
		t.Fatal(err)
	}
	e.redis.Client().Set(e.ctx, store.SlotKey("lead-2", "default"), second.GetDeal().GetId(), 0)
	third := e.handoff("lead-2")
	if !third.GetCreated() || third.GetDeal().GetId() == second.GetDeal().GetId() {
		t.Fatalf("hand-off over a stale slot: %v", third)
	}
	// A slot claimed by a crashed hand-off (no deal written) is completed, not stranded.
	e.redis.Client().Set(e.ctx, store.SlotKey("lead-3", "default"), "0199aaaa-dead-7000-8000-000000000000", 0)
	r := e.handoff("lead-3")
	if !r.GetCreated() || r.GetDeal().GetId() != "0199aaaa-dead-7000-8000-000000000000" {
		t.Fatalf("completing a claimed slot: %v", r)
	}
}

func TestMoveReopenAndStageDurations(t *testing.T) {
	e := newEnv(t)
	tp := "00-11111111111111111111111111111111-2222222222222222-01"
	res, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: "lead-4", OwnerRepId: "ann", Traceparent: tp})
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetDeal().GetId()
	move := func(stage string, version int64) (*pipelinev1.MoveDealResponse, error) {
		return e.client.MoveDeal(e.ctx, &pipelinev1.MoveDealRequest{DealId: id, StageId: stage, ExpectedVersion: version})
	}
	e.clock.Advance(2 * time.Hour)
	if r, err := move(domain.StageProposal, 0); err != nil || !r.GetMoved() {
		t.Fatalf("forward: %v %v", r, err)
	}
	e.clock.Advance(3 * time.Hour)
	r, err := move(domain.StageDemo, 0) // back
	if err != nil || !r.GetMoved() {
		t.Fatalf("back: %v %v", r, err)
	}
	if _, err := move(domain.StageNegotiation, r.GetDeal().GetVersion()-1); code(err) != codes.Aborted {
		t.Fatalf("stale version: %v", err)
	}
	if r, err := move(domain.StageDemo, 0); err != nil || r.GetMoved() {
		t.Fatalf("same stage: %v %v", r, err)
	}
	for _, bad := range []struct {
		stage string
		code  codes.Code
	}{{domain.StageClosedWon, codes.FailedPrecondition}, {domain.StageClosedLost, codes.FailedPrecondition}, {"nope", codes.NotFound}} {
		if _, err := move(bad.stage, 0); code(err) != bad.code {
			t.Fatalf("move to %s: %v", bad.stage, err)
		}
	}
	e.clock.Advance(time.Hour)
	if _, err := e.client.CloseLost(e.ctx, &pipelinev1.CloseLostRequest{DealId: id, Reason: "no_budget"}); err != nil {
		t.Fatal(err)
	}
	if _, err := move(domain.StageDemo, 0); code(err) != codes.FailedPrecondition {
		t.Fatalf("move a closed deal: %v", err)
	}
	e.clock.Advance(time.Hour)
	re, err := e.client.ReopenDeal(e.ctx, &pipelinev1.ReopenDealRequest{DealId: id})
	if err != nil {
		t.Fatal(err)
	}
	d := re.GetDeal()
	if d.GetStatus() != pipelinev1.DealStatus_DEAL_STATUS_OPEN || d.GetStageId() != domain.StageDemo || d.GetLostReason() != "" {
		t.Fatalf("reopened = %v", d)
	}
	var hist []string
	for _, h := range d.GetStageHistory() {
		hist = append(hist, h.GetFromStageId()+">"+h.GetToStageId())
	}
	if want := "[>discovery discovery>proposal proposal>demo demo>closed-lost closed-lost>demo]"; fmt.Sprint(hist) != want {
		t.Fatalf("history = %v", hist)
	}
	// The reopened deal holds the lead's slot again: a hand-off returns it.
	if h := e.handoff("lead-4"); h.GetCreated() || h.GetDeal().GetId() != id {
		t.Fatalf("hand-off after reopen: %v", h)
	}
	e.clock.Advance(4 * time.Hour)
	durs, err := e.client.GetStageDurations(e.ctx, &pipelinev1.GetStageDurationsRequest{DealId: id})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range durs.GetDurations() {
		got = append(got, fmt.Sprintf("%s=%s/%d", s.GetStageName(), s.GetDuration().AsDuration(), s.GetVisits()))
	}
	// discovery 2h; proposal 3h; demo 1h + 4h; closed-lost 1h.
	if want := "[Discovery=2h0m0s/1 Proposal=3h0m0s/1 Demo/Presentation=5h0m0s/2 Closed Lost=1h0m0s/1]"; fmt.Sprint(got) != want {
		t.Fatalf("durations = %v", got)
	}
	if n := e.count("StageChanged"); n != 2 {
		t.Fatalf("StageChanged events = %d", n)
	}
	if e.count("DealReopened") != 1 || e.count("DealLost") != 1 {
		t.Fatal("missing DealLost/DealReopened")
	}
	// Every change is a span in the lead's trace with the lead id and an outcome.
	names := map[string]bool{}
	for _, s := range e.spans.GetSpans() {
		if s.SpanContext.TraceID().String() != leadtrace.TraceID(tp) || !strings.HasPrefix(s.Name, "pipeline.") {
			continue // Redis and gRPC spans of the steps
		}
		var lead, outcome string
		for _, a := range s.Attributes {
			switch string(a.Key) {
			case leadtrace.AttrLeadID:
				lead = a.Value.AsString()
			case leadtrace.AttrOutcome:
				outcome = a.Value.AsString()
			}
		}
		if lead != "lead-4" || outcome == "" {
			t.Fatalf("span %s: lead=%q outcome=%q", s.Name, lead, outcome)
		}
		names[s.Name] = true
	}
	for _, n := range []string{"pipeline.CreateDealFromLead", "pipeline.MoveDeal", "pipeline.CloseLost", "pipeline.ReopenDeal"} {
		if !names[n] {
			t.Errorf("no %s span in the lead's trace (have %v)", n, names)
		}
	}
}

func TestCloseWonSchedulesRenewal(t *testing.T) {
	e := newEnv(t)
	id := e.handoff("lead-5").GetDeal().GetId()
	closedAt := t0.Add(time.Hour)
	e.clock.Advance(2 * time.Hour)
	// Amount and close date are required (protovalidate, before the handler).
	_, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id})
	if code(err) != codes.InvalidArgument || len(platform.FieldViolations(err)) < 2 {
		t.Fatalf("close won without amount/date: %v %v", err, platform.FieldViolations(err))
	}
	won, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(1200000), ClosedAt: timestamppb.New(closedAt)})
	if err != nil {
		t.Fatal(err)
	}
	d := won.GetDeal()
	wantRenewal := time.Date(2027, 3, 10, 10, 0, 0, 0, time.UTC)
	if d.GetStatus() != pipelinev1.DealStatus_DEAL_STATUS_WON || d.GetStageId() != domain.StageClosedWon || !d.GetRenewalAt().AsTime().Equal(wantRenewal) {
		t.Fatalf("won deal = %v", d)
	}
	// A retry returns the won deal and publishes nothing new.
	if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(1200000), ClosedAt: timestamppb.New(closedAt)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(1), ClosedAt: timestamppb.New(closedAt)}); code(err) != codes.FailedPrecondition {
		t.Fatalf("close won again with another amount: %v", err)
	}
	var dealWon *eventsv1.DealWon
	for _, ev := range e.events() {
		if w := ev.GetDealWon(); w != nil {
			dealWon = w
		}
	}
	if n := e.count("DealWon"); n != 1 {
		t.Fatalf("distinct DealWon events = %d", n)
	}
	if dealWon == nil || dealWon.GetAmount().GetAmountMinor() != 1200000 || !dealWon.GetDealCreatedAt().AsTime().Equal(t0) || !dealWon.GetClosedAt().AsTime().Equal(closedAt) {
		t.Fatalf("DealWon = %v", dealWon)
	}
	// The reminder is due 30 days before the renewal, not earlier.
	e.clock.Advance(wantRenewal.Sub(e.clock.Now()) - 31*24*time.Hour)
	if n, err := e.svc.Renewals.ProcessDue(e.ctx, e.svc.Server.HandleRenewal); err != nil || n != 0 {
		t.Fatalf("early pass delivered %d %v", n, err)
	}
	e.clock.Advance(2 * 24 * time.Hour)
	if n, err := e.svc.Renewals.ProcessDue(e.ctx, e.svc.Server.HandleRenewal); err != nil || n != 1 {
		t.Fatalf("due pass delivered %d %v", n, err)
	}
	var due *eventsv1.RenewalDue
	for _, ev := range e.events() {
		if r := ev.GetRenewalDue(); r != nil {
			due = r
			if ev.GetLeadId() != "lead-5" {
				t.Fatalf("RenewalDue lead = %q", ev.GetLeadId())
			}
		}
	}
	if due == nil || due.GetDealId() != id || !due.GetRenewalAt().AsTime().Equal(wantRenewal) || due.GetAmount().GetAmountMinor() != 1200000 {
		t.Fatalf("RenewalDue = %v", due)
	}
	if !e.hasSpan("pipeline.RenewalDue", "lead-5", "renewal_due") {
		t.Fatal("no pipeline.RenewalDue span")
	}
	// Upsell from the won deal.
	up, err := e.client.OpenUpsell(e.ctx, &pipelinev1.OpenUpsellRequest{DealId: id, Amount: eur(300000)})
	if err != nil {
		t.Fatal(err)
	}
	if u := up.GetDeal(); u.GetKind() != pipelinev1.DealKind_DEAL_KIND_UPSELL || u.GetParentDealId() != id || u.GetLeadId() != "lead-5" || u.GetStageId() != domain.StageDiscovery {
		t.Fatalf("upsell = %v", u)
	}
	if _, err := e.client.OpenUpsell(e.ctx, &pipelinev1.OpenUpsellRequest{DealId: up.GetDeal().GetId()}); code(err) != codes.FailedPrecondition {
		t.Fatalf("upsell from an open deal: %v", err)
	}
}

func TestReopenCancelsRenewal(t *testing.T) {
	e := newEnv(t)
	id := e.handoff("lead-6").GetDeal().GetId()
	if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(100), ClosedAt: timestamppb.New(t0)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.Renewals.Depth(e.ctx); n != 1 {
		t.Fatalf("renewal jobs = %d", n)
	}
	if _, err := e.client.ReopenDeal(e.ctx, &pipelinev1.ReopenDealRequest{DealId: id, StageId: domain.StageNegotiation}); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.Renewals.Depth(e.ctx); n != 0 {
		t.Fatalf("renewal jobs after reopen = %d", n)
	}
	// Even a reminder that escaped cancellation is dropped for a deal no longer won.
	e.clock.Advance(400 * 24 * time.Hour)
	if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(100), ClosedAt: timestamppb.New(e.clock.Now())}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ReopenDeal(e.ctx, &pipelinev1.ReopenDealRequest{DealId: id}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(400 * 24 * time.Hour)
	_, _ = e.svc.Renewals.ProcessDue(e.ctx, e.svc.Server.HandleRenewal)
	if n := e.count("RenewalDue"); n != 0 {
		t.Fatalf("RenewalDue for a reopened deal: %d", n)
	}
}

func TestRecycleHandoffSurvivesScoringDown(t *testing.T) {
	e := newEnv(t)
	res := e.handoff("lead-7")
	id := res.GetDeal().GetId()
	e.scoring.Down()
	// Unknown reason: InvalidArgument naming the field, nothing scheduled.
	_, err := e.client.CloseLost(e.ctx, &pipelinev1.CloseLostRequest{DealId: id, Reason: "bored", Recycle: true})
	if code(err) != codes.InvalidArgument || len(platform.FieldViolations(err)) != 1 || platform.FieldViolations(err)[0].Field != "reason" {
		t.Fatalf("unknown reason: %v", err)
	}
	lost, err := e.client.CloseLost(e.ctx, &pipelinev1.CloseLostRequest{DealId: id, Reason: "Timing", Recycle: true, Note: "next fiscal year"})
	if err != nil {
		t.Fatalf("close lost while scoring is down must still answer OK: %v", err)
	}
	if d := lost.GetDeal(); d.GetLostReason() != "timing" || !d.GetRecycled() || d.GetStatus() != pipelinev1.DealStatus_DEAL_STATUS_LOST {
		t.Fatalf("lost deal = %v", d)
	}
	// A retried CloseLost schedules nothing new.
	if _, err := e.client.CloseLost(e.ctx, &pipelinev1.CloseLostRequest{DealId: id, Reason: "timing", Recycle: true}); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.Recycle.Depth(e.ctx); n != 1 {
		t.Fatalf("recycle jobs = %d", n)
	}
	// Scoring down: attempts fail and stay queued.
	for range 2 {
		if n, _ := e.svc.Recycle.ProcessDue(e.ctx, e.svc.Server.HandleRecycle); n != 1 {
			t.Fatalf("claimed %d", n)
		}
		e.clock.Advance(2 * time.Minute)
	}
	if n, _ := e.svc.Recycle.Depth(e.ctx); n != 1 {
		t.Fatalf("job lost while scoring was down: depth %d", n)
	}
	if len(e.scoring.fake.Calls()) != 0 {
		t.Fatal("scoring called while down")
	}
	// Scoring comes back: the hand-off is delivered once.
	e.scoring.Up()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.scoring.fake.Calls()) == 0 && time.Now().Before(deadline) {
		_, _ = e.svc.Recycle.ProcessDue(e.ctx, e.svc.Server.HandleRecycle)
		e.clock.Advance(2 * time.Minute)
		time.Sleep(50 * time.Millisecond) // the client reconnects with its own backoff
	}
	calls := e.scoring.fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("SetStatus calls = %d", len(calls))
	}
	c := calls[0]
	if c.GetLeadId() != "lead-7" || c.GetStatus() != leadv1.ProspectStatus_PROSPECT_STATUS_NURTURING || c.GetRequestId() == "" || c.GetOwnerRepId() != "ann" || !strings.Contains(c.GetReason(), "timing") {
		t.Fatalf("SetStatus = %v", c)
	}
	if n, _ := e.svc.Recycle.Depth(e.ctx); n != 0 {
		t.Fatalf("depth after delivery = %d", n)
	}
	if !e.hasSpan("pipeline.RecycleLead", "lead-7", "recycled") {
		t.Fatal("no pipeline.RecycleLead span with outcome recycled")
	}
	var lostEv *eventsv1.DealLost
	for _, ev := range e.events() {
		if l := ev.GetDealLost(); l != nil {
			lostEv = l
		}
	}
	if lostEv == nil || !lostEv.GetRecycled() || lostEv.GetReason() != "timing" {
		t.Fatalf("DealLost = %v", lostEv)
	}
}

func TestRecycleRejectedGoesToDeadLetters(t *testing.T) {
	e := newEnv(t)
	e.scoring.fake.reject = true
	id := e.handoff("lead-8").GetDeal().GetId()
	if _, err := e.client.CloseLost(e.ctx, &pipelinev1.CloseLostRequest{DealId: id, Reason: "no_budget", Recycle: true}); err != nil {
		t.Fatal(err)
	}
	_, _ = e.svc.Recycle.ProcessDue(e.ctx, e.svc.Server.HandleRecycle)
	dead, err := e.svc.Recycle.DeadLetters(e.ctx, 10)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].LastError, "illegal transition") {
		t.Fatalf("dead letters = %v %v", dead, err)
	}
	// A manual deal without a lead cannot recycle.
	m, err := e.client.CreateDeal(e.ctx, &pipelinev1.CreateDealRequest{OrganisationId: "o", OwnerRepId: "ann", Name: "Manual"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CloseLost(e.ctx, &pipelinev1.CloseLostRequest{DealId: m.GetDeal().GetId(), Reason: "timing", Recycle: true}); code(err) != codes.InvalidArgument {
		t.Fatalf("recycle without lead: %v", err)
	}
}

func TestQuotes(t *testing.T) {
	e := newEnv(t)
	id := e.handoff("lead-9").GetDeal().GetId()
	create := func(valid time.Time) *pipelinev1.Quote {
		req := &pipelinev1.CreateQuoteRequest{DealId: id, CurrencyCode: "EUR", LineItems: []*pipelinev1.LineItemSpec{
			{Product: "seat", Quantity: 3, UnitPrice: eur(3333), DiscountBps: 1000},
			{Product: "support", Quantity: 1, UnitPrice: eur(100000), DiscountBps: 2500},
		}}
		if !valid.IsZero() {
			req.ValidUntil = timestamppb.New(valid)
		}
		q, err := e.client.CreateQuote(e.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return q.GetQuote()
	}
	q1 := create(time.Time{})
	if q1.GetVersion() != 1 || q1.GetSubtotal().GetAmountMinor() != 109999 || q1.GetDiscountTotal().GetAmountMinor() != 26000 || q1.GetTotal().GetAmountMinor() != 83999 {
		t.Fatalf("q1 = %v", q1)
	}
	q2 := create(t0.Add(24 * time.Hour))
	if q2.GetVersion() != 2 {
		t.Fatalf("q2 version = %d", q2.GetVersion())
	}
	if _, err := e.client.AcceptQuote(e.ctx, &pipelinev1.AcceptQuoteRequest{DealId: id, QuoteId: q1.GetId()}); code(err) != codes.FailedPrecondition {
		t.Fatalf("accept a draft: %v", err)
	}
	for _, q := range []*pipelinev1.Quote{q1, q2} {
		if _, err := e.client.SendQuote(e.ctx, &pipelinev1.SendQuoteRequest{DealId: id, QuoteId: q.GetId()}); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.count("QuoteSent"); n != 2 {
		t.Fatalf("QuoteSent = %d", n)
	}
	// q2 expires.
	e.clock.Advance(48 * time.Hour)
	if _, err := e.client.AcceptQuote(e.ctx, &pipelinev1.AcceptQuoteRequest{DealId: id, QuoteId: q2.GetId()}); code(err) != codes.FailedPrecondition {
		t.Fatalf("accept expired: %v", err)
	}
	acc, err := e.client.AcceptQuote(e.ctx, &pipelinev1.AcceptQuoteRequest{DealId: id, QuoteId: q1.GetId(), SetDealAmount: true})
	if err != nil {
		t.Fatal(err)
	}
	if acc.GetQuote().GetStatus() != pipelinev1.QuoteStatus_QUOTE_STATUS_ACCEPTED || acc.GetDeal().GetAmount().GetAmountMinor() != 83999 || acc.GetDeal().GetAcceptedQuoteId() != q1.GetId() {
		t.Fatalf("accepted = %v", acc)
	}
	list, err := e.client.ListQuotes(e.ctx, &pipelinev1.ListQuotesRequest{DealId: id})
	if err != nil || len(list.GetQuotes()) != 2 || list.GetQuotes()[1].GetStatus() != pipelinev1.QuoteStatus_QUOTE_STATUS_EXPIRED {
		t.Fatalf("quotes = %v %v", list, err)
	}
	q3 := create(time.Time{})
	_, _ = e.client.SendQuote(e.ctx, &pipelinev1.SendQuoteRequest{DealId: id, QuoteId: q3.GetId()})
	if r, err := e.client.RejectQuote(e.ctx, &pipelinev1.RejectQuoteRequest{DealId: id, QuoteId: q3.GetId(), Reason: "price"}); err != nil || r.GetQuote().GetStatus() != pipelinev1.QuoteStatus_QUOTE_STATUS_REJECTED {
		t.Fatalf("reject: %v %v", r, err)
	}
	// Mismatched currency: InvalidArgument naming the line.
	_, err = e.client.CreateQuote(e.ctx, &pipelinev1.CreateQuoteRequest{DealId: id, CurrencyCode: "USD", LineItems: []*pipelinev1.LineItemSpec{{Product: "x", Quantity: 1, UnitPrice: eur(1)}}})
	if code(err) != codes.InvalidArgument || platform.FieldViolations(err)[0].Field != "line_items[0].unit_price.currency_code" {
		t.Fatalf("currency mismatch: %v", err)
	}
	// Closed deals take no new quotes.
	if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(83999), ClosedAt: timestamppb.New(e.clock.Now())}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.CreateQuote(e.ctx, &pipelinev1.CreateQuoteRequest{DealId: id, CurrencyCode: "EUR", LineItems: []*pipelinev1.LineItemSpec{{Product: "x", Quantity: 1, UnitPrice: eur(1)}}})
	if code(err) != codes.FailedPrecondition {
		t.Fatalf("quote on a won deal: %v", err)
	}
}

func TestActivities(t *testing.T) {
	e := newEnv(t)
	id := e.handoff("lead-10").GetDeal().GetId()
	log := func(typ pipelinev1.ActivityType, due *timestamppb.Timestamp, req string) (*pipelinev1.LogActivityResponse, error) {
		return e.client.LogActivity(e.ctx, &pipelinev1.LogActivityRequest{DealId: id, Type: typ, Subject: "s", DueAt: due, RequestId: req})
	}
	for _, typ := range []pipelinev1.ActivityType{pipelinev1.ActivityType_ACTIVITY_TYPE_CALL, pipelinev1.ActivityType_ACTIVITY_TYPE_EMAIL, pipelinev1.ActivityType_ACTIVITY_TYPE_MEETING, pipelinev1.ActivityType_ACTIVITY_TYPE_NOTE} {
		if _, err := log(typ, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := log(pipelinev1.ActivityType_ACTIVITY_TYPE_TASK, nil, ""); code(err) != codes.InvalidArgument {
		t.Fatalf("task without due date: %v", err)
	}
	task, err := log(pipelinev1.ActivityType_ACTIVITY_TYPE_TASK, timestamppb.New(t0.Add(24*time.Hour)), "req-1")
	if err != nil || !task.GetCreated() || task.GetActivity().GetRepId() != "ann" {
		t.Fatalf("task: %v %v", task, err)
	}
	again, err := log(pipelinev1.ActivityType_ACTIVITY_TYPE_TASK, timestamppb.New(t0.Add(24*time.Hour)), "req-1")
	if err != nil || again.GetCreated() || again.GetActivity().GetId() != task.GetActivity().GetId() {
		t.Fatalf("retried task: %v %v", again, err)
	}
	e.clock.Advance(time.Hour)
	done, err := e.client.CompleteTask(e.ctx, &pipelinev1.CompleteTaskRequest{DealId: id, ActivityId: task.GetActivity().GetId()})
	if err != nil || !done.GetActivity().GetCompletedAt().AsTime().Equal(t0.Add(time.Hour)) {
		t.Fatalf("complete: %v %v", done, err)
	}
	list, err := e.client.ListActivities(e.ctx, &pipelinev1.ListActivitiesRequest{DealId: id, PageSize: 3})
	if err != nil || len(list.GetActivities()) != 3 || list.GetNextPageToken() == "" {
		t.Fatalf("page 1: %v %v", list, err)
	}
	rest, err := e.client.ListActivities(e.ctx, &pipelinev1.ListActivitiesRequest{DealId: id, PageSize: 3, PageToken: list.GetNextPageToken()})
	if err != nil || len(rest.GetActivities()) != 2 || rest.GetNextPageToken() != "" {
		t.Fatalf("page 2: %v %v", rest, err)
	}
	if n := e.count("ActivityLogged"); n != 5 {
		t.Fatalf("ActivityLogged = %d", n)
	}
	if _, err := e.client.LogActivity(e.ctx, &pipelinev1.LogActivityRequest{DealId: "nope", Type: pipelinev1.ActivityType_ACTIVITY_TYPE_CALL, Subject: "s"}); code(err) != codes.NotFound {
		t.Fatalf("activity on a missing deal: %v", err)
	}
}

func TestForecastAndListDeals(t *testing.T) {
	e := newEnv(t)
	mk := func(owner string, amount int64, closeAt time.Time, stage string) string {
		r, err := e.client.CreateDeal(e.ctx, &pipelinev1.CreateDealRequest{OrganisationId: "o", OwnerRepId: owner, Name: "d", Amount: eur(amount), ExpectedCloseAt: timestamppb.New(closeAt)})
		if err != nil {
			t.Fatal(err)
		}
		if stage != domain.StageDiscovery {
			if _, err := e.client.MoveDeal(e.ctx, &pipelinev1.MoveDealRequest{DealId: r.GetDeal().GetId(), StageId: stage}); err != nil {
				t.Fatal(err)
			}
		}
		return r.GetDeal().GetId()
	}
	apr := time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC)
	may := time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC)
	mk("ann", 1005, apr, domain.StageDiscovery)    // 100.5
	mk("ann", 1005, apr, domain.StageDiscovery)    // 100.5 → 201 together
	mk("bob", 333, apr, domain.StageProposal)      // 166.5 → 167
	mk("bob", 10000, may, domain.StageNegotiation) // 7500
	f, err := e.client.GetForecast(e.ctx, &pipelinev1.GetForecastRequest{FromMonth: "2026-04", ToMonth: "2026-05"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range f.GetByMonth() {
		got = append(got, fmt.Sprintf("%s:%d/%d", l.GetMonth(), l.GetWeightedAmount().GetAmountMinor(), l.GetAmount().GetAmountMinor()))
	}
	if fmt.Sprint(got) != "[2026-04:368/2343 2026-05:7500/10000]" {
		t.Fatalf("by month = %v", got)
	}
	got = nil
	for _, l := range f.GetByOwner() {
		got = append(got, fmt.Sprintf("%s:%d", l.GetOwnerRepId(), l.GetWeightedAmount().GetAmountMinor()))
	}
	if fmt.Sprint(got) != "[ann:201 bob:7667]" {
		t.Fatalf("by owner = %v", got)
	}
	if _, err := e.client.GetForecast(e.ctx, &pipelinev1.GetForecastRequest{FromMonth: "2026-05", ToMonth: "2026-04"}); code(err) != codes.InvalidArgument {
		t.Fatalf("reversed range: %v", err)
	}
	l, err := e.client.ListDeals(e.ctx, &pipelinev1.ListDealsRequest{OwnerRepId: "bob", CloseMonth: "2026-05"})
	if err != nil || len(l.GetDeals()) != 1 || l.GetDeals()[0].GetStageId() != domain.StageNegotiation {
		t.Fatalf("bob's May deals = %v %v", l, err)
	}
	if _, err := e.client.ListDeals(e.ctx, &pipelinev1.ListDealsRequest{CloseMonth: "2026-13"}); code(err) != codes.InvalidArgument {
		t.Fatalf("bad month: %v", err)
	}
}

func TestPipelineEditsKeepDeals(t *testing.T) {
	e := newEnv(t)
	id := e.handoff("lead-11").GetDeal().GetId()
	if _, err := e.client.MoveDeal(e.ctx, &pipelinev1.MoveDealRequest{DealId: id, StageId: domain.StageProposal}); err != nil {
		t.Fatal(err)
	}
	add, err := e.client.AddStage(e.ctx, &pipelinev1.AddStageRequest{Stage: &pipelinev1.StageSpec{Name: "Legal", ProbabilityBps: 8500, Kind: pipelinev1.StageKind_STAGE_KIND_OPEN}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RenameStage(e.ctx, &pipelinev1.RenameStageRequest{StageId: domain.StageProposal, Name: "Offer"}); err != nil {
		t.Fatal(err)
	}
	stages := add.GetPipeline().GetStages()
	var ids []string
	for i := len(stages) - 1; i >= 0; i-- {
		ids = append(ids, stages[i].GetId())
	}
	if _, err := e.client.ReorderStages(e.ctx, &pipelinev1.ReorderStagesRequest{StageIds: ids[1:]}); code(err) != codes.InvalidArgument {
		t.Fatalf("partial reorder: %v", err)
	}
	p, err := e.client.ReorderStages(e.ctx, &pipelinev1.ReorderStagesRequest{StageIds: ids})
	if err != nil || p.GetPipeline().GetStages()[0].GetId() != ids[0] {
		t.Fatalf("reorder: %v %v", p, err)
	}
	// The deal is untouched and still moves within the edited pipeline.
	if _, err := e.client.MoveDeal(e.ctx, &pipelinev1.MoveDealRequest{DealId: id, StageId: add.GetStage().GetId()}); err != nil {
		t.Fatal(err)
	}
	d, _ := e.client.GetDeal(e.ctx, &pipelinev1.GetDealRequest{DealId: id})
	if d.GetDeal().GetStageId() != add.GetStage().GetId() {
		t.Fatalf("deal = %v", d)
	}
	if _, err := e.client.GetDeal(e.ctx, &pipelinev1.GetDealRequest{DealId: "nope"}); code(err) != codes.NotFound {
		t.Fatalf("missing deal: %v", err)
	}
	if _, err := e.client.GetPipeline(e.ctx, &pipelinev1.GetPipelineRequest{PipelineId: "nope"}); code(err) != codes.NotFound {
		t.Fatalf("missing pipeline: %v", err)
	}
	_, err = e.client.CreatePipeline(e.ctx, &pipelinev1.CreatePipelineRequest{Name: "Bad", Stages: []*pipelinev1.StageSpec{
		{Name: "A", ProbabilityBps: 10, Kind: pipelinev1.StageKind_STAGE_KIND_OPEN},
		{Name: "W", ProbabilityBps: 10000, Kind: pipelinev1.StageKind_STAGE_KIND_WON},
		{Name: "W2", ProbabilityBps: 10000, Kind: pipelinev1.StageKind_STAGE_KIND_WON},
	}})
	if code(err) != codes.InvalidArgument {
		t.Fatalf("bad pipeline: %v", err)
	}
	if _, err := e.client.ListLostReasons(e.ctx, &pipelinev1.ListLostReasonsRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	e := newEnv(t)
	e.redis.Kill()
	_, err := e.client.GetDeal(e.ctx, &pipelinev1.GetDealRequest{DealId: "x"})
	if code(err) != codes.Unavailable {
		t.Fatalf("redis down: %v", err)
	}
	e.redis.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: "lead-12"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A publish that fails after the change committed fails the call; the retry
// publishes the same event (same id), so nothing is lost and nothing doubles.
func TestEventRepublishedByRetry(t *testing.T) {
	e := newEnv(t)
	id := e.handoff("lead-13").GetDeal().GetId()
	// Make XADD fail: the stream key holds a string.
	e.redis.Client().Set(e.ctx, events.StreamKey, "not a stream", 0)
	_, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(700), ClosedAt: timestamppb.New(t0)})
	if err == nil {
		t.Fatal("CloseWon answered OK although its event was not published")
	}
	got, _ := e.client.GetDeal(e.ctx, &pipelinev1.GetDealRequest{DealId: id})
	if got.GetDeal().GetStatus() != pipelinev1.DealStatus_DEAL_STATUS_WON {
		t.Fatal("the close did not commit")
	}
	e.redis.Client().Del(e.ctx, events.StreamKey)
	for range 2 {
		if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(700), ClosedAt: timestamppb.New(t0)}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, ev := range e.events() {
		if ev.GetDealWon() != nil {
			ids = append(ids, ev.GetId())
		}
	}
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("DealWon event ids = %v, want the same id twice", ids)
	}
}

func TestCreateDealAndUpsellAreIdempotentByRequestID(t *testing.T) {
	e := newEnv(t)
	const n = 10
	var wg sync.WaitGroup
	ids := make(chan string, n)
	created := make(chan bool, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.client.CreateDeal(e.ctx, &pipelinev1.CreateDealRequest{OrganisationId: "o", OwnerRepId: "ann", Name: "Manual", RequestId: "req-1"})
			if err != nil {
				t.Error(err)
				return
			}
			ids <- r.GetDeal().GetId()
			created <- r.GetCreated()
		}()
	}
	wg.Wait()
	close(ids)
	close(created)
	distinct, nCreated := map[string]bool{}, 0
	for id := range ids {
		distinct[id] = true
	}
	for c := range created {
		if c {
			nCreated++
		}
	}
	if len(distinct) != 1 || nCreated != 1 {
		t.Fatalf("distinct deals %d, created %d; want 1 and 1", len(distinct), nCreated)
	}
	var dealID string
	for id := range distinct {
		dealID = id
	}
	if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: dealID, Amount: eur(100), ClosedAt: timestamppb.New(t0)}); err != nil {
		t.Fatal(err)
	}
	up := func() *pipelinev1.OpenUpsellResponse {
		r, err := e.client.OpenUpsell(e.ctx, &pipelinev1.OpenUpsellRequest{DealId: dealID, RequestId: "up-1"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := up(), up()
	if !a.GetCreated() || b.GetCreated() || a.GetDeal().GetId() != b.GetDeal().GetId() {
		t.Fatalf("upsell retry: %v / %v", a, b)
	}
	if n := e.count("DealCreated"); n != 0 {
		t.Fatalf("DealCreated for deals without a lead = %d, want 0 (LeadEvent needs a lead_id)", n)
	}
	// A claimed request whose deal was never written (crashed call) is completed.
	e.redis.Client().Set(e.ctx, "lf:pipeline:{req:create-deal:dev:req-2}", "0199bbbb-dead-7000-8000-000000000000", 0)
	r, err := e.client.CreateDeal(e.ctx, &pipelinev1.CreateDealRequest{OrganisationId: "o", OwnerRepId: "ann", Name: "M2", RequestId: "req-2"})
	if err != nil || !r.GetCreated() || r.GetDeal().GetId() != "0199bbbb-dead-7000-8000-000000000000" {
		t.Fatalf("completing a claimed request: %v %v", r, err)
	}
}

// ListDeals with lead_id lists the lead's open deal (what the load tool
// waits for after QUALIFIED) until it is closed; lead_id with a closed status
// is refused (the lead filter lists open deals only).
func TestListDealsByLead(t *testing.T) {
	e := newEnv(t)
	r, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: "lead-1", OrganisationId: "o", OwnerRepId: "ann", Amount: eur(1000)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CreateDeal(e.ctx, &pipelinev1.CreateDealRequest{LeadId: "lead-2", OrganisationId: "o", OwnerRepId: "ann", Name: "d", Amount: eur(1000)}); err != nil {
		t.Fatal(err)
	}
	l, err := e.client.ListDeals(e.ctx, &pipelinev1.ListDealsRequest{LeadId: "lead-1"})
	if err != nil || len(l.GetDeals()) != 1 || l.GetDeals()[0].GetId() != r.GetDeal().GetId() {
		t.Fatalf("lead-1's deals = %v %v", l, err)
	}
	if _, err := e.client.ListDeals(e.ctx, &pipelinev1.ListDealsRequest{LeadId: "lead-1", Status: pipelinev1.DealStatus_DEAL_STATUS_WON}); code(err) != codes.InvalidArgument {
		t.Fatalf("lead_id with status WON: %v", err)
	}
	if _, err := e.client.CloseWon(e.ctx, &pipelinev1.CloseWonRequest{DealId: r.GetDeal().GetId(), Amount: eur(1000), ClosedAt: timestamppb.New(t0)}); err != nil {
		t.Fatal(err)
	}
	l, err = e.client.ListDeals(e.ctx, &pipelinev1.ListDealsRequest{LeadId: "lead-1", Status: pipelinev1.DealStatus_DEAL_STATUS_OPEN})
	if err != nil || len(l.GetDeals()) != 0 {
		t.Fatalf("lead-1's open deals after the win = %v %v", l, err)
	}
}
