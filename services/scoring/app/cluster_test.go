package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/scoring/app"
	"github.com/leadflow/leadflow/services/scoring/service"
)

// TestOnRedisCluster runs scoring's scripts and WATCH/MULTI transactions
// (upsert, engagement, status changes, BANT, hand-off scheduling, the
// outbox sweeper, model install) through a runtime on a three-node Redis
// Cluster: a key touched outside its hash tag fails here with CROSSSLOT.
func TestOnRedisCluster(t *testing.T) {
	cl := platformtest.StartRedisCluster(t)
	spans := platformtest.Spans()
	rt := platformtest.Runtime(t, "scoring", cl.URL(), platform.WithSpanExporter(spans))
	if _, ok := rt.Redis.(*redis.ClusterClient); !ok {
		t.Fatalf("runtime client is %T, want *redis.ClusterClient", rt.Redis)
	}
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
	var sc *service.Scoring
	svc, err := app.New(context.Background(), rt, app.Config{SweepInterval: time.Hour, HandoffMaxAttempts: 20, HandoffMaxBackoff: time.Minute},
		app.WithPeers(routingv1.NewRoutingServiceClient(pc), pipelinev1.NewPipelineServiceClient(pc)), app.WithClock(clk.Now), app.Expose(&sc))
	if err != nil {
		t.Fatal(err)
	}
	svc.Workers = nil
	conn := platformtest.Serve(t, rt, svc)
	e := &env{t: t, ctx: context.Background(), c: scoringv1.NewScoringServiceClient(conn), sc: sc, peer: p, clock: clk, spans: spans}

	// Upsert twice (idempotent), a signal before its lead, MQL crossing → routing hand-off.
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("k1")}))
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("k1")}))
	must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("k2", "early", leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW, t0)))
	must[*scoringv1.UpsertLeadResponse](t)(e.c.UpsertLead(e.ctx, &scoringv1.UpsertLeadRequest{Profile: profile("k2")}))
	r := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("k1", "s1", leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, t0)))
	if !r.GetMqlHandoffScheduled() {
		t.Fatalf("MQL hand-off not scheduled: %+v", r)
	}
	if d := must[*scoringv1.RecordEngagementResponse](t)(e.c.RecordEngagement(e.ctx, signal("k1", "s1", leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, t0))); !d.GetDuplicate() {
		t.Fatalf("duplicate signal: %+v", d)
	}
	if n := e.processRouting(); n != 1 {
		t.Fatalf("routing hand-offs = %d, want 1", n)
	}
	// Accept, then qualify: exactly one deal hand-off.
	qualifyReady(t, e, "k3")
	setStatus(t, e, "k3", leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, "", "qual-k3")
	if r := setStatus(t, e, "k3", leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, "", "qual-k3"); r.GetChanged() {
		t.Fatalf("retried SetStatus changed the lead: %+v", r)
	}
	e.processPipeline()
	// Outbox left by a crash: the sweeper finds the flush mark and delivers.
	qualifyReady(t, e, "k4")
	crashWithOutbox(t, e, "k4")
	if _, err := e.sc.Sweep(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sc.Sweep(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.processPipeline()
	routes, _, deals := e.peer.snapshot()
	if len(routes) != 1 || deals["k3"] != 1 || deals["k4"] != 1 {
		t.Fatalf("hand-offs: routes %d, deals %v", len(routes), deals)
	}
	h := must[*scoringv1.GetStatusHistoryResponse](t)(e.c.GetStatusHistory(e.ctx, &scoringv1.GetStatusHistoryRequest{LeadId: "k3"}))
	if len(h.GetTransitions()) != 2 {
		t.Fatalf("history: %+v", h.GetTransitions())
	}
	l := must[*scoringv1.ListLeadsResponse](t)(e.c.ListLeads(e.ctx, &scoringv1.ListLeadsRequest{Status: leadv1.ProspectStatus_PROSPECT_STATUS_WORKING}))
	if len(l.GetLeads()) != 1 {
		t.Fatalf("working leads: %+v", l.GetLeads())
	}
	if n, err := rt.Redis.XLen(e.ctx, events.StreamKey).Result(); err != nil || n == 0 {
		t.Fatalf("events: %d %v", n, err)
	}
}
