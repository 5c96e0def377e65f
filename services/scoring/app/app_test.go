package app_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/scoring/app"
	"github.com/leadflow/leadflow/services/scoring/domain"
	"github.com/leadflow/leadflow/services/scoring/service"
)

// peer is a fake routing + pipeline on loopback that can be down.
type peer struct {
	routingv1.UnimplementedRoutingServiceServer
	pipelinev1.UnimplementedPipelineServiceServer
	down     atomic.Bool
	mu       sync.Mutex
	failLead string      // RouteLeads answers Unavailable for this lead only
	noBatch  atomic.Bool // RouteLeads is Unimplemented (an older routing)
	// hang, when set, holds RouteLeads until it is closed or the call's
	// deadline passes (a blackholed routing); entered gets a value per call.
	hang     chan struct{}
	entered  chan struct{}
	inFlight atomic.Int32
	batches  []int // sizes of the RouteLeads calls
	routes   []*routingv1.RouteLeadRequest
	releases []*routingv1.ReleaseLeadRequest
	deals    map[string]int // lead id → CreateDealFromLead calls that succeeded
}

func (p *peer) RouteLead(_ context.Context, r *routingv1.RouteLeadRequest) (*routingv1.RouteLeadResponse, error) {
	if p.down.Load() {
		return nil, status.Error(codes.Unavailable, "routing down")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes = append(p.routes, r)
	return &routingv1.RouteLeadResponse{}, nil
}

func (p *peer) RouteLeads(ctx context.Context, r *routingv1.RouteLeadsRequest) (*routingv1.RouteLeadsResponse, error) {
	if p.noBatch.Load() {
		return nil, status.Error(codes.Unimplemented, "unknown method RouteLeads")
	}
	p.mu.Lock()
	hang := p.hang
	p.mu.Unlock()
	if hang != nil {
		p.inFlight.Add(1)
		p.entered <- struct{}{}
		select {
		case <-hang:
		case <-ctx.Done():
		}
		p.inFlight.Add(-1)
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if p.down.Load() {
		return nil, status.Error(codes.Unavailable, "routing down")
	}
	p.mu.Lock()
	p.batches = append(p.batches, len(r.GetLeads()))
	fail := p.failLead
	p.mu.Unlock()
	out := &routingv1.RouteLeadsResponse{}
	for _, item := range r.GetLeads() {
		if item.GetProfile().GetLeadId() == fail {
			out.Results = append(out.Results, &routingv1.RouteLeadsResult{Code: int32(codes.Unavailable), Message: "shard busy"})
			continue
		}
		resp, _ := p.RouteLead(ctx, item)
		out.Results = append(out.Results, &routingv1.RouteLeadsResult{Response: resp})
	}
	return out, nil
}

func (p *peer) ReleaseLead(_ context.Context, r *routingv1.ReleaseLeadRequest) (*routingv1.ReleaseLeadResponse, error) {
	if p.down.Load() {
		return nil, status.Error(codes.Unavailable, "routing down")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releases = append(p.releases, r)
	return &routingv1.ReleaseLeadResponse{Released: true}, nil
}

func (p *peer) CreateDealFromLead(_ context.Context, r *pipelinev1.CreateDealFromLeadRequest) (*pipelinev1.CreateDealFromLeadResponse, error) {
	if p.down.Load() {
		return nil, status.Error(codes.Unavailable, "pipeline down")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deals[r.GetLeadId()]++
	return &pipelinev1.CreateDealFromLeadResponse{Created: p.deals[r.GetLeadId()] == 1}, nil
}

func (p *peer) snapshot() (routes []*routingv1.RouteLeadRequest, releases []*routingv1.ReleaseLeadRequest, deals map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := map[string]int{}
	for k, v := range p.deals {
		d[k] = v
	}
	return append([]*routingv1.RouteLeadRequest(nil), p.routes...), append([]*routingv1.ReleaseLeadRequest(nil), p.releases...), d
}

type env struct {
	t     *testing.T
	ctx   context.Context
	c     scoringv1.ScoringServiceClient
	sc    *service.Scoring
	peer  *peer
	clock *platformtest.Clock
	rdb   *redis.Client
	spans *tracetest.InMemoryExporter
	redis *platformtest.Redis
	cfg   app.Config
	pc    *grpc.ClientConn // to the fake peers
}

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// setup serves scoring with fakes of routing and pipeline. The service's
// workers are not run: tests drive the queues with ProcessDue on the
// injected clock, so nothing depends on timing.
func setup(t *testing.T, tune ...func(*app.Config)) *env {
	t.Helper()
	r := platformtest.StartRedis(t)
	spans := platformtest.Spans()
	rt := platformtest.Runtime(t, "scoring", r.URL(), platform.WithSpanExporter(spans))
	p := &peer{deals: map[string]int{}}
	gs := grpc.NewServer()
	routingv1.RegisterRoutingServiceServer(gs, p)
	pipelinev1.RegisterPipelineServiceServer(gs, p)
	lis := listen(t)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	pc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	clk := platformtest.NewClock(t0)
	cfg := app.Config{SweepInterval: time.Hour, HandoffMaxAttempts: 20, HandoffMaxBackoff: time.Minute}
	for _, f := range tune {
		f(&cfg)
	}
	e := &env{t: t, ctx: context.Background(), peer: p, clock: clk, rdb: r.Client(), spans: spans, redis: r, cfg: cfg, pc: pc}
	svc := e.newService(rt)
	conn := platformtest.Serve(t, rt, svc)
	e.c = scoringv1.NewScoringServiceClient(conn)
	return e
}

// newService builds the scoring service on rt, without its workers, and
// makes it the env's use cases (a second call stands for a restarted
// process on the same Redis).
func (e *env) newService(rt *platform.Runtime) platform.Service {
	e.t.Helper()
	svc, err := app.New(context.Background(), rt, e.cfg,
		app.WithPeers(routingv1.NewRoutingServiceClient(e.pc), pipelinev1.NewPipelineServiceClient(e.pc)), app.WithClock(e.clock.Now), app.Expose(&e.sc))
	if err != nil {
		e.t.Fatal(err)
	}
	svc.Workers = nil
	return svc
}

// processRouting delivers the route hand-offs queued for direct delivery,
// then the routing jobs due, and returns how many of each it settled.
func (e *env) processRouting() int {
	e.t.Helper()
	direct := e.sc.DeliverDirectRoutes(e.ctx)
	q, _ := e.sc.Queues()
	n, _ := q.ProcessDueBatch(e.ctx, e.sc.DeliverRoutingBatch)
	return direct + n
}

func (e *env) processPipeline() int {
	e.t.Helper()
	_, q := e.sc.Queues()
	n, _ := q.ProcessDue(e.ctx, e.sc.DeliverPipeline)
	return n
}

// profile is a grade-A lead of the default model: software, 500 employees,
// DE, director with a platform title → fit 15+15+10+10+5 = 55.
func profile(id string) *leadv1.LeadProfile {
	return &leadv1.LeadProfile{
		LeadId:       id,
		Organisation: &leadv1.Organisation{Id: "org-" + id, Name: "Acme GmbH", Industry: "software", EmployeeCount: 500, CountryCode: "DE"},
		JobTitle:     "Director Platform", Seniority: leadv1.Seniority_SENIORITY_DIRECTOR,
		CapturedAt:  timestamppb.New(t0),
		Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
}

func signal(lead, id string, typ leadv1.SignalType, at time.Time) *scoringv1.RecordEngagementRequest {
	return &scoringv1.RecordEngagementRequest{Signal: &leadv1.EngagementSignal{Id: id, LeadId: lead, Type: typ, OccurredAt: timestamppb.New(at)}}
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func (e *env) events(kind string) []*eventsv1.LeadEvent {
	e.t.Helper()
	msgs, err := e.rdb.XRange(e.ctx, events.StreamKey, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*eventsv1.LeadEvent
	seen := map[string]bool{}
	for _, m := range msgs {
		ev, err := events.Decode(m.Values)
		if err != nil {
			e.t.Fatal(err)
		}
		if seen[ev.GetId()] { // consumers de-duplicate by id
			continue
		}
		seen[ev.GetId()] = true
		if kind == "" || fmt.Sprintf("%T", ev.GetPayload()) == kind {
			out = append(out, ev)
		}
	}
	return out
}

func sumFactors(s *leadv1.Score) int32 {
	var n int32
	for _, f := range s.GetFactors() {
		n += f.GetPoints()
	}
	return n
}

func TestUpsertScoresWithBreakdownAndIsIdempotent(t *testing.T) {
	e := setup(t)
	res := must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("l1")}))
	s := res.GetScore()
	if !res.GetCreated() || res.GetStatus() != leadv1.ProspectStatus_PROSPECT_STATUS_POTENTIAL {
		t.Fatalf("upsert: %+v", res)
	}
	if s.GetFit() != 55 || s.GetGrade() != leadv1.Grade_GRADE_A || s.GetModelVersion() != 1 || s.GetMql() {
		t.Fatalf("score: %+v", s)
	}
	if sumFactors(s) != s.GetTotal() || s.GetFit()+s.GetEngagement() != s.GetTotal() {
		t.Fatalf("breakdown does not add up: %+v", s)
	}
	// The same profile again changes nothing: same score, no new history.
	again := must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("l1")}))
	if again.GetCreated() || again.GetScore().GetTotal() != s.GetTotal() {
		t.Fatalf("second upsert: %+v", again)
	}
	h := must[*scoringv1.ListScoreHistoryResponse](t)(e.c.ListScoreHistory(e.ctx, &scoringv1.ListScoreHistoryRequest{LeadId: "l1"}))
	if len(h.GetEntries()) != 1 || h.GetEntries()[0].GetCause() != "upsert" {
		t.Fatalf("history: %+v", h.GetEntries())
	}
	if n := len(e.events("*eventsv1.LeadEvent_LeadScored")); n != 1 {
		t.Fatalf("LeadScored events = %d, want 1", n)
	}
	got := must[*scoringv1.GetScoreResponse](t)(e.c.GetScore(e.ctx, &scoringv1.GetScoreRequest{LeadId: "l1"}))
	if got.GetScore().GetTotal() != s.GetTotal() || len(got.GetScore().GetFactors()) != len(s.GetFactors()) {
		t.Fatalf("GetScore: %+v", got)
	}
	if _, err := e.c.GetScore(e.ctx, &scoringv1.GetScoreRequest{LeadId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown lead: %v", err)
	}
}

func TestSingleMQLHandoffAndAgainAfterRecycle(t *testing.T) {
	e := setup(t)
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("l1")}))
	// 55 + pricing 5 = 60: crosses the default MQL threshold (60).
	r := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("l1", "s1", leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, t0)))
	if !r.GetMqlHandoffScheduled() || !r.GetScore().GetMql() {
		t.Fatalf("crossing did not schedule the hand-off: %+v", r)
	}
	// The same signal again (capture retried): duplicate, nothing changes.
	if r := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("l1", "s1", leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, t0))); !r.GetDuplicate() || r.GetMqlHandoffScheduled() {
		t.Fatalf("duplicate signal: %+v", r)
	}
	// More engagement, decay below the threshold, back above: no second hand-off.
	must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("l1", "s2", leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW, t0.Add(time.Hour))))
	low := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("l1", "s3", leadv1.SignalType_SIGNAL_TYPE_EMAIL_OPEN, t0.Add(40*24*time.Hour))))
	if low.GetScore().GetMql() {
		t.Fatalf("expected decay below the threshold: %+v", low.GetScore())
	}
	high := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("l1", "s4", leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, t0.Add(40*24*time.Hour))))
	if !high.GetScore().GetMql() || high.GetMqlHandoffScheduled() {
		t.Fatalf("hovering: %+v", high)
	}
	if n := e.processRouting(); n != 1 {
		t.Fatalf("routing jobs processed = %d, want 1", n)
	}
	routes, _, _ := e.peer.snapshot()
	if len(routes) != 1 || routes[0].GetRequestId() != "l1:mql:1" || routes[0].GetProfile().GetLeadId() != "l1" || len(routes[0].GetReasons()) == 0 || !routes[0].GetScore().GetMql() {
		t.Fatalf("RouteLead calls: %+v", routes)
	}
	if n := len(e.events("*eventsv1.LeadEvent_MqlReached")); n != 1 {
		t.Fatalf("MqlReached events = %d", n)
	}
	// Rep accepts (routing calls SetStatus), then recycles.
	setStatus(t, e, "l1", leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, "rep-1", "acc-1")
	setStatus(t, e, "l1", leadv1.ProspectStatus_PROSPECT_STATUS_NURTURING, "", "rec-1")
	e.processRouting()
	_, releases, _ := e.peer.snapshot()
	if len(releases) != 1 || releases[0].GetLeadId() != "l1" {
		t.Fatalf("ReleaseLead calls: %+v", releases)
	}
	// Later it has cooled down; a demo request heats it up: routed again (episode 2).
	hot := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("l1", "demo", leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST, t0.Add(200*24*time.Hour))))
	if !hot.GetMqlHandoffScheduled() {
		t.Fatalf("heated-up nurtured lead not handed again: %+v", hot.GetScore())
	}
	e.processRouting()
	routes, _, _ = e.peer.snapshot()
	if len(routes) != 2 || routes[1].GetRequestId() != "l1:mql:2" {
		t.Fatalf("second RouteLead: %+v", routes)
	}
}

func setStatus(t *testing.T, e *env, lead string, st leadv1.ProspectStatus, owner, req string) *scoringv1.SetStatusResponse {
	t.Helper()
	r, err := e.c.SetStatus(e.ctx, &scoringv1.SetStatusRequest{LeadId: lead, Status: st, OwnerRepId: owner, RequestId: req, Reason: "test"})
	if err != nil {
		t.Fatalf("SetStatus %s: %v", st, err)
	}
	return r
}

func TestSignalBeforeLeadIsKeptAndApplied(t *testing.T) {
	e := setup(t)
	r := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("early", "s1", leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST, t0)))
	if !r.GetPending() {
		t.Fatalf("want pending: %+v", r)
	}
	up := must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("early")}))
	if up.GetScore().GetEngagement() != 30 || !up.GetMqlHandoffScheduled() {
		t.Fatalf("pending demo request not applied on arrival: %+v", up)
	}
	if _, err := e.c.RecordEngagement(e.ctx, &scoringv1.RecordEngagementRequest{Signal: &leadv1.EngagementSignal{Id: "v", VisitorId: "cookie", Type: leadv1.SignalType_SIGNAL_TYPE_CHAT, OccurredAt: timestamppb.New(t0)}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("visitor-only signal: %v", err)
	}
}

// qualify brings a lead to WORKING with BANT filled in.
func qualifyReady(t *testing.T, e *env, id string) {
	t.Helper()
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile(id)}))
	setStatus(t, e, id, leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, "rep-7", "acc-"+id)
	b := must[*scoringv1.UpdateBantResponse](t)(e.c.UpdateBant(e.ctx, &scoringv1.UpdateBantRequest{LeadId: id, Bant: &scoringv1.Bant{
		Budget: &leadv1.Money{AmountMinor: 2_500_000, CurrencyCode: "EUR"}, BudgetConfirmed: true,
		AuthorityRole: scoringv1.AuthorityRole_AUTHORITY_ROLE_DECISION_MAKER, NeedDescription: "pipeline reporting", NeedConfirmed: true,
		Timeline: timestamppb.New(t0.Add(60 * 24 * time.Hour)),
	}}))
	if b.GetBant().GetMetCount() != 4 {
		t.Fatalf("BANT met = %d", b.GetBant().GetMetCount())
	}
}

func TestQualifiedGivesExactlyOneDealUnderRetriesAndPipelineDown(t *testing.T) {
	e := setup(t)
	qualifyReady(t, e, "q1")
	e.peer.down.Store(true)
	// The rep's tool retries SetStatus, some concurrently.
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.c.SetStatus(e.ctx, &scoringv1.SetStatusRequest{LeadId: "q1", Status: leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, RequestId: "qual-1", Reason: "BANT complete"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	setStatus(t, e, "q1", leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, "", "qual-1")
	// Pipeline is down for a while: deliveries fail and back off.
	for range 4 {
		if n := e.processPipeline(); n != 1 {
			t.Fatalf("pipeline jobs claimed = %d, want 1", n)
		}
		e.clock.Advance(2 * time.Minute)
	}
	_, q := e.sc.Queues()
	if d, _ := q.Depth(e.ctx); d != 1 {
		t.Fatalf("queue depth while pipeline down = %d", d)
	}
	e.peer.down.Store(false)
	e.processPipeline()
	e.clock.Advance(2 * time.Minute)
	e.processPipeline() // nothing left
	_, _, deals := e.peer.snapshot()
	if deals["q1"] != 1 || len(deals) != 1 {
		t.Fatalf("deal hand-offs = %v, want exactly one for q1", deals)
	}
	if dead, _ := q.DeadLetters(e.ctx, 10); len(dead) != 0 {
		t.Fatalf("dead letters: %+v", dead)
	}
	// Retrying once more after delivery changes nothing either.
	r := setStatus(t, e, "q1", leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, "", "qual-1")
	if r.GetChanged() || r.GetLead().GetStatus() != leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED {
		t.Fatalf("late retry: %+v", r)
	}
	e.clock.Advance(time.Hour)
	e.processPipeline()
	if _, _, deals = e.peer.snapshot(); deals["q1"] != 1 {
		t.Fatalf("deal hand-offs after late retry = %d", deals["q1"])
	}
	q1 := e.events("*eventsv1.LeadEvent_LeadQualified")
	if len(q1) != 1 || q1[0].GetLeadQualified().GetBantMet() != 4 || q1[0].GetLeadQualified().GetOwnerRepId() != "rep-7" {
		t.Fatalf("LeadQualified events: %+v", q1)
	}
	h := must[*scoringv1.GetStatusHistoryResponse](t)(e.c.GetStatusHistory(e.ctx, &scoringv1.GetStatusHistoryRequest{LeadId: "q1"}))
	if len(h.GetTransitions()) != 2 || h.GetTransitions()[1].GetTo() != leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED || h.GetTransitions()[1].GetActor() != "dev" || h.GetTransitions()[1].GetReason() != "BANT complete" {
		t.Fatalf("status history: %+v", h.GetTransitions())
	}
}

func TestIllegalTransitionIsFailedPreconditionAndChangesNothing(t *testing.T) {
	e := setup(t)
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("x")}))
	_, err := e.c.SetStatus(e.ctx, &scoringv1.SetStatusRequest{LeadId: "x", Status: leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, RequestId: "r1", OwnerRepId: "rep"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("POTENTIAL → QUALIFIED: %v", err)
	}
	got := must[*scoringv1.GetLeadResponse](t)(e.c.GetLead(e.ctx, &scoringv1.GetLeadRequest{LeadId: "x"}))
	if got.GetLead().GetStatus() != leadv1.ProspectStatus_PROSPECT_STATUS_POTENTIAL || got.GetLead().GetOwnerRepId() != "" {
		t.Fatalf("refused move changed the lead: %+v", got.GetLead())
	}
	if n := len(e.events("*eventsv1.LeadEvent_StatusChanged")); n != 0 {
		t.Fatalf("StatusChanged events after a refused move: %d", n)
	}
	if _, err := e.c.SetStatus(e.ctx, &scoringv1.SetStatusRequest{LeadId: "x", Status: leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, RequestId: "r2"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("WORKING without owner: %v", err)
	}
	if _, err := e.c.SetStatus(e.ctx, &scoringv1.SetStatusRequest{LeadId: "nope", Status: leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, RequestId: "r3", OwnerRepId: "a"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown lead: %v", err)
	}
	// Protovalidate rejects a missing request id before the handler runs.
	if _, err := e.c.SetStatus(e.ctx, &scoringv1.SetStatusRequest{LeadId: "x", Status: leadv1.ProspectStatus_PROSPECT_STATUS_BAD_FIT}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no request id: %v", err)
	}
}

func TestListLeadsPerStatusOrderedAndFiltered(t *testing.T) {
	e := setup(t)
	for i, emp := range []int32{5, 500, 60} {
		p := profile(fmt.Sprint("L", i))
		p.Organisation.EmployeeCount = emp
		must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: p}))
	}
	setStatus(t, e, "L2", leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, "rep-1", "a")
	list := func(req *scoringv1.ListLeadsRequest) ([]string, string) {
		r := must[*scoringv1.ListLeadsResponse](t)(e.c.ListLeads(e.ctx, req))
		var ids []string
		for _, l := range r.GetLeads() {
			ids = append(ids, l.GetLeadId())
		}
		return ids, r.GetNextPageToken()
	}
	pot := leadv1.ProspectStatus_PROSPECT_STATUS_POTENTIAL
	ids, tok := list(&scoringv1.ListLeadsRequest{Status: pot, PageSize: 1})
	if fmt.Sprint(ids) != "[L1]" || tok == "" {
		t.Fatalf("page 1: %v %q", ids, tok)
	}
	ids, tok = list(&scoringv1.ListLeadsRequest{Status: pot, PageSize: 1, PageToken: tok})
	if fmt.Sprint(ids) != "[L0]" || tok != "" {
		t.Fatalf("page 2: %v %q", ids, tok)
	}
	ids, _ = list(&scoringv1.ListLeadsRequest{Status: leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, OwnerRepId: "rep-1"})
	if fmt.Sprint(ids) != "[L2]" {
		t.Fatalf("working for rep-1: %v", ids)
	}
	ids, _ = list(&scoringv1.ListLeadsRequest{Status: pot, Grade: leadv1.Grade_GRADE_A})
	if fmt.Sprint(ids) != "[L1]" {
		t.Fatalf("potential grade A: %v", ids)
	}
	if _, err := e.c.ListLeads(e.ctx, &scoringv1.ListLeadsRequest{Status: pot, PageToken: "garbage"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad token: %v", err)
	}
}

func TestModelsRPCAndDryRun(t *testing.T) {
	e := setup(t)
	active := must[*scoringv1.GetModelResponse](t)(e.c.GetModel(e.ctx, &scoringv1.GetModelRequest{}))
	if active.GetModel().GetVersion() != 1 || !active.GetModel().GetActive() {
		t.Fatalf("fresh install: %+v", active.GetModel())
	}
	// An invalid model lists every bad field.
	bad := active.GetModel()
	bad.Thresholds.GradeBMinFit = bad.GetThresholds().GetGradeAMinFit()
	bad.FitRules[1].Id = bad.GetFitRules()[0].GetId()
	_, err := e.c.CreateModel(e.ctx, &scoringv1.CreateModelRequest{Model: bad})
	if fields := platform.FieldViolations(err); status.Code(err) != codes.InvalidArgument || len(fields) != 2 {
		t.Fatalf("invalid model: %v %+v", err, fields)
	}
	// A stricter model: version 2, inactive until activated.
	m := must[*scoringv1.GetModelResponse](t)(e.c.GetModel(e.ctx, &scoringv1.GetModelRequest{Version: 1})).GetModel()
	m.Name = "strict"
	m.Thresholds.Mql = 200
	c := must[*scoringv1.CreateModelResponse](t)(e.c.CreateModel(e.ctx, &scoringv1.CreateModelRequest{Model: m}))
	if c.GetModel().GetVersion() != 2 || c.GetModel().GetActive() || c.GetModel().GetCreatedBy() != "dev" {
		t.Fatalf("created: %+v", c.GetModel())
	}
	// The round trip keeps every rule.
	if len(c.GetModel().GetFitRules()) != len(m.GetFitRules()) || len(c.GetModel().GetEngagementRules()) != len(m.GetEngagementRules()) {
		t.Fatal("rules lost in the round trip")
	}
	// Dry run against v2 and v1: stores nothing.
	dr := &scoringv1.DryRunScoreRequest{Profile: profile("dry"), ModelVersion: 2, Signals: []*leadv1.EngagementSignal{{Id: "d", VisitorId: "dry-visitor", Type: leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST, OccurredAt: timestamppb.New(t0)}}}
	s2 := must[*scoringv1.DryRunScoreResponse](t)(e.c.DryRunScore(e.ctx, dr)).GetScore()
	dr.ModelVersion = 1
	s1 := must[*scoringv1.DryRunScoreResponse](t)(e.c.DryRunScore(e.ctx, dr)).GetScore()
	if s2.GetTotal() != 85 || s2.GetMql() || !s1.GetMql() || s2.GetModelVersion() != 2 || sumFactors(s2) != s2.GetTotal() {
		t.Fatalf("dry runs: v2 %+v v1 %+v", s2, s1)
	}
	if _, err := e.c.GetLead(e.ctx, &scoringv1.GetLeadRequest{LeadId: "dry"}); status.Code(err) != codes.NotFound {
		t.Fatalf("dry run stored the lead: %v", err)
	}
	if _, err := e.c.ActivateModel(e.ctx, &scoringv1.ActivateModelRequest{Version: 2}); err != nil {
		t.Fatal(err)
	}
	// The next change of a lead uses v2.
	up := must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("after")}))
	if up.GetScore().GetModelVersion() != 2 {
		t.Fatalf("upsert after activation used v%d", up.GetScore().GetModelVersion())
	}
	ms := must[*scoringv1.ListModelsResponse](t)(e.c.ListModels(e.ctx, &scoringv1.ListModelsRequest{PageSize: 1}))
	if len(ms.GetModels()) != 1 || ms.GetModels()[0].GetVersion() != 2 || !ms.GetModels()[0].GetActive() || ms.GetNextPageToken() == "" {
		t.Fatalf("ListModels: %+v", ms)
	}
	if _, err := e.c.ActivateModel(e.ctx, &scoringv1.ActivateModelRequest{Version: 7}); status.Code(err) != codes.NotFound {
		t.Fatalf("activate unknown: %v", err)
	}
}

func TestEveryChangeIsASpanInTheLeadsTrace(t *testing.T) {
	e := setup(t)
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("tr")}))
	must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("tr", "d", leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST, t0)))
	setStatus(t, e, "tr", leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, "rep", "a")
	e.processRouting()
	want := leadtrace.TraceID(profile("tr").GetTraceparent())
	found := map[string]bool{}
	delivery := ""
	for _, s := range e.spans.GetSpans() {
		if s.SpanContext.TraceID().String() != want {
			continue
		}
		for _, a := range s.Attributes {
			if string(a.Key) == leadtrace.AttrLeadID && a.Value.AsString() == "tr" {
				found[s.Name] = true
				if s.Name == "jobs scoring-routing" {
					delivery = s.SpanContext.SpanID().String()
				}
			}
		}
	}
	// The batch hand-off is the delivery span; routing's spans nest under it.
	routes, _, _ := e.peer.snapshot()
	if len(routes) != 1 || leadtrace.SpanContext(routes[0].GetTraceparent()).SpanID().String() != delivery {
		t.Errorf("RouteLeads item traceparent should name the delivery span %s: %v", delivery, routes)
	}
	for _, n := range []string{"scoring.UpsertLead", "scoring.RecordEngagement", "scoring.SetStatus", "jobs scoring-routing"} {
		if !found[n] {
			t.Errorf("no span %s with the lead id in the lead's trace (found %v)", n, found)
		}
	}
	evs := e.events("")
	for _, ev := range evs {
		if ev.GetTraceId() != want {
			t.Errorf("event %T has trace %s, want %s", ev.GetPayload(), ev.GetTraceId(), want)
		}
	}
}

func TestSweeperDeliversAfterACrashBetweenWriteAndDelivery(t *testing.T) {
	e := setup(t)
	qualifyReady(t, e, "c1")
	// Simulate a crash after the write: drop the pipeline job and put the
	// effect back into the outbox, as if delivery never happened.
	setStatus(t, e, "c1", leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, "", "q")
	_, q := e.sc.Queues()
	if ok, err := q.Cancel(e.ctx, "deal:c1:1"); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	rec, err := e.sc.Store().GetLead(e.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Outbox) != 0 {
		t.Fatalf("outbox not emptied after delivery: %+v", rec.Outbox)
	}
	crashWithOutbox(t, e, "c1")
	// The first sweep only notes the mark (a live call may still be delivering).
	if n, err := e.sc.Sweep(e.ctx); err != nil || n != 0 {
		t.Fatalf("first sweep: %d %v", n, err)
	}
	n, err := e.sc.Sweep(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("second sweep: %d %v", n, err)
	}
	e.processPipeline()
	if _, _, deals := e.peer.snapshot(); deals["c1"] != 1 {
		t.Fatalf("deal hand-offs after sweep = %v", deals)
	}
	if marks, _ := e.sc.Store().FlushPending(e.ctx, 10); len(marks) != 0 {
		t.Fatalf("lead still marked after sweep: %+v", marks)
	}
}

// crashWithOutbox leaves an undelivered deal hand-off in the lead's outbox
// with the flush mark set: the state a crash after the write leaves behind.
func crashWithOutbox(t *testing.T, e *env, id string) {
	t.Helper()
	_, err := e.sc.Store().UpdateLead(e.ctx, id, func(cur *domain.Record, _ []domain.Signal) (*domain.LeadWrite, error) {
		cur.Outbox = append(cur.Outbox, domain.Effect{Kind: domain.EffectCreateDeal, Key: "deal:" + id + ":1", At: t0, Owner: cur.Owner})
		return &domain.LeadWrite{Record: cur, Flush: true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRedisDownIsUnavailableAndARetryCompletesTheHandOff(t *testing.T) {
	e := setup(t)
	p := profile("rd")
	p.ProductInterests = []string{"api"} // 55 + 5 = 60: MQL on arrival
	must[*scoringv1.GetModelResponse](t)(e.c.GetModel(e.ctx, &scoringv1.GetModelRequest{}))
	e.redis.Kill()
	_, err := e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: p})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Redis down: %v", err)
	}
	e.redis.Start()
	// Capture retries the same hand-off until it gets OK.
	var res *scoringv1.UpsertLeadResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err = e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: p})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !res.GetScore().GetMql() {
		t.Fatalf("retry after Redis came back: %+v %v", res, err)
	}
	e.processRouting()
	if routes, _, _ := e.peer.snapshot(); len(routes) != 1 {
		t.Fatalf("RouteLead calls = %d, want 1", len(routes))
	}
}

func TestScoreLeadDecaysAsOfNow(t *testing.T) {
	e := setup(t)
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("dc")}))
	r := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("dc", "p", leadv1.SignalType_SIGNAL_TYPE_CHAT, t0)))
	if r.GetScore().GetEngagement() != 8 {
		t.Fatalf("engagement %d", r.GetScore().GetEngagement())
	}
	// Two chat half-lives (28 days) later: 8 → 2.
	sc := must[*scoringv1.ScoreLeadResponse](t)(e.c.ScoreLead(e.ctx, &scoringv1.ScoreLeadRequest{LeadId: "dc", AsOf: timestamppb.New(t0.Add(28 * 24 * time.Hour))}))
	if sc.GetScore().GetEngagement() != 2 || !sc.GetScore().GetScoredAt().AsTime().Equal(t0.Add(28*24*time.Hour)) {
		t.Fatalf("rescored: %+v", sc.GetScore())
	}
	h := must[*scoringv1.ListScoreHistoryResponse](t)(e.c.ListScoreHistory(e.ctx, &scoringv1.ListScoreHistoryRequest{LeadId: "dc", PageSize: 2}))
	if len(h.GetEntries()) != 2 || h.GetEntries()[0].GetCause() != "rescore" || h.GetEntries()[1].GetSignalId() != "p" || h.GetNextPageToken() == "" {
		t.Fatalf("history: %+v", h)
	}
}

func TestSweeperClearsAMarkLeftByALostRace(t *testing.T) {
	e := setup(t)
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("m1")}))
	// A writer marked revision 99 and then lost its race: nothing to deliver.
	if err := e.rdb.ZAdd(e.ctx, "lf:scoring:{flush}:leads", redis.Z{Score: 99, Member: "m1"}).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.sc.Sweep(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if marks, _ := e.sc.Store().FlushPending(e.ctx, 10); len(marks) != 0 {
		t.Fatalf("stale mark kept: %+v", marks)
	}
}

// The routing worker sends the MQLs due together in one RouteLeads call; a
// lead that routing could not take is retried alone, the others are marked
// delivered and never sent again, and a lead marked BAD_FIT before its
// hand-off ran is not sent at all.
func TestRouteHandoffsGoInOneCallAndSettleEachLead(t *testing.T) {
	e := setup(t)
	ids := []string{"b1", "b2", "b3", "b4"}
	for _, id := range ids {
		must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile(id)}))
		r := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal(id, "s-"+id, leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, t0)))
		if !r.GetMqlHandoffScheduled() {
			t.Fatalf("%s: no hand-off scheduled", id)
		}
	}
	setStatus(t, e, "b4", leadv1.ProspectStatus_PROSPECT_STATUS_BAD_FIT, "", "bf")
	e.peer.mu.Lock()
	e.peer.failLead = "b2"
	e.peer.mu.Unlock()

	if n := e.processRouting(); n < 4 {
		t.Fatalf("claimed %d jobs, want the 4 route hand-offs (and b4's release)", n)
	}
	routes, _, _ := e.peer.snapshot()
	sent := map[string]int{}
	for _, r := range routes {
		sent[r.GetProfile().GetLeadId()]++
	}
	if sent["b1"] != 1 || sent["b3"] != 1 || sent["b2"] != 0 || sent["b4"] != 0 {
		t.Fatalf("routed %v: want b1 and b3 once, b2 refused, b4 (bad fit) never", sent)
	}
	e.peer.mu.Lock()
	batches := append([]int(nil), e.peer.batches...)
	e.peer.failLead = ""
	e.peer.mu.Unlock()
	if len(batches) != 1 || batches[0] != 3 {
		t.Fatalf("RouteLeads calls %v, want one call with b1, b2, b3", batches)
	}

	// b2 comes back after its backoff, alone; b1 and b3 are done.
	e.clock.Advance(2 * time.Minute)
	if n := e.processRouting(); n != 1 {
		t.Fatalf("second pass claimed %d, want b2's retry only", n)
	}
	routes, _, _ = e.peer.snapshot()
	sent = map[string]int{}
	for _, r := range routes {
		sent[r.GetProfile().GetLeadId()]++
	}
	if sent["b1"] != 1 || sent["b2"] != 1 || sent["b3"] != 1 || sent["b4"] != 0 {
		t.Fatalf("after the retry routed %v, want b1, b2, b3 once each", sent)
	}
	q, _ := e.sc.Queues()
	if d, _ := q.Depth(e.ctx); d != 0 {
		t.Fatalf("routing queue depth %d after all settled", d)
	}
}

// UpsertLeads serves each lead as UpsertLead; their outboxes are flushed
// together (coalesced), yet every lead's events are published once, in its
// own trace, and every outbox and flush mark is cleared.
func TestUpsertLeadsFlushesEveryLeadOnceInItsOwnTrace(t *testing.T) {
	e := setup(t)
	const n = 40
	req := &scoringv1.UpsertLeadsRequest{}
	for i := range n {
		p := profile(fmt.Sprintf("u%02d", i))
		p.Traceparent = fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
		req.Leads = append(req.Leads, &scoringv1.UpsertLeadRequest{Profile: p})
	}
	resp := must[*scoringv1.UpsertLeadsResponse](t)(e.c.UpsertLeads(e.ctx, req))
	if len(resp.GetResults()) != n {
		t.Fatalf("%d results for %d leads", len(resp.GetResults()), n)
	}
	for i, r := range resp.GetResults() {
		if r.GetCode() != 0 || !r.GetResponse().GetCreated() || r.GetResponse().GetScore().GetTotal() != 55 {
			t.Fatalf("lead %d: %v", i, r)
		}
	}
	perLead := map[string]int{}
	for _, ev := range e.events("*eventsv1.LeadEvent_LeadScored") {
		perLead[ev.GetLeadId()]++
		want := fmt.Sprintf("%032x", mustAtoi(t, ev.GetLeadId()[1:])+1)
		if ev.GetTraceId() != want {
			t.Errorf("lead %s: event in trace %s, want its own %s", ev.GetLeadId(), ev.GetTraceId(), want)
		}
	}
	for i := range n {
		id := fmt.Sprintf("u%02d", i)
		if perLead[id] != 1 {
			t.Errorf("lead %s: %d LeadScored events, want 1", id, perLead[id])
		}
		rec, err := e.sc.Store().GetLead(e.ctx, id)
		if err != nil || len(rec.Outbox) != 0 {
			t.Errorf("lead %s: outbox %v left after the flush (%v)", id, rec, err)
		}
	}
	if marks, err := e.sc.Store().FlushPending(e.ctx, 100); err != nil || len(marks) != 0 {
		t.Fatalf("flush marks left: %v %v", marks, err)
	}

	// A malformed item refuses the whole call and changes nothing.
	bad := &scoringv1.UpsertLeadsRequest{Leads: []*scoringv1.UpsertLeadRequest{{Profile: profile("new-1")}, {}}}
	if _, err := e.c.UpsertLeads(e.ctx, bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed item: %v", err)
	}
	if _, err := e.sc.Store().GetLead(e.ctx, "new-1"); err == nil {
		t.Fatal("a refused call stored a lead")
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A routing without RouteLeads (older, during a rolling upgrade) still
// gets every MQL, through single RouteLead calls, once each.
func TestRouteHandoffsFallBackToSingleCallsOnAnOlderRouting(t *testing.T) {
	e := setup(t)
	e.peer.noBatch.Store(true)
	for _, id := range []string{"o1", "o2"} {
		must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile(id)}))
		must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal(id, "s-"+id, leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, t0)))
	}
	if n := e.processRouting(); n != 2 {
		t.Fatalf("claimed %d, want the 2 route hand-offs", n)
	}
	routes, _, _ := e.peer.snapshot()
	if len(routes) != 2 {
		t.Fatalf("RouteLead calls %d, want 2", len(routes))
	}
	q, _ := e.sc.Queues()
	if d, _ := q.Depth(e.ctx); d != 0 {
		t.Fatalf("routing queue depth %d: hand-offs left", d)
	}
}

// Hand-offs may arrive out of order (capture's direct hand-off sends a
// profile without reading the lead back): a profile older than the one
// applied last is ignored and answered OK with the current score; a newer
// revision with the same content is no change; revision 0 (an older
// capture) is always applied.
func TestAnOlderProfileRevisionIsIgnored(t *testing.T) {
	e := setup(t)
	up := func(rev int64, s leadv1.Seniority) *scoringv1.UpsertLeadResponse {
		t.Helper()
		p := profile("l-rev")
		p.Revision, p.Seniority = rev, s
		return must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: p}))
	}
	history := func() int {
		t.Helper()
		h := must[*scoringv1.ListScoreHistoryResponse](t)(e.c.ListScoreHistory(e.ctx, &scoringv1.ListScoreHistoryRequest{LeadId: "l-rev"}))
		return len(h.GetEntries())
	}
	director := up(2, leadv1.Seniority_SENIORITY_DIRECTOR).GetScore().GetFit()
	late := up(1, leadv1.Seniority_SENIORITY_MANAGER)
	if late.GetScore().GetFit() != director || history() != 1 {
		t.Fatalf("revision 1 after 2 was applied: fit %d (revision 2's %d), history %d", late.GetScore().GetFit(), director, history())
	}
	manager := up(3, leadv1.Seniority_SENIORITY_MANAGER).GetScore().GetFit()
	if manager == director || history() != 2 {
		t.Fatalf("revision 3 was not applied: fit %d, history %d", manager, history())
	}
	if up(4, leadv1.Seniority_SENIORITY_MANAGER); history() != 2 {
		t.Fatalf("a new revision with the same content rescored: history %d", history())
	}
	if got := up(0, leadv1.Seniority_SENIORITY_DIRECTOR).GetScore().GetFit(); got != director || history() != 3 {
		t.Fatalf("revision 0 (unknown) was not applied: fit %d, history %d", got, history())
	}
}
