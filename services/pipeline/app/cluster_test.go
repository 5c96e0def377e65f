package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	"github.com/leadflow/leadflow/services/pipeline/app"
	"github.com/leadflow/leadflow/services/pipeline/domain"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// TestOnRedisCluster runs pipeline's transactions and scripts (deal from a
// lead, concurrent and retried; move; quote; activity; close won with the
// renewal job; close lost with the recycle hand-off; forecast, list) through
// a runtime on a three-node Redis Cluster: a key a transaction touches
// outside its hash tag fails here with CROSSSLOT.
func TestOnRedisCluster(t *testing.T) {
	cl := platformtest.StartRedisCluster(t)
	sc := startScoring(t)
	base := platformtest.Base("pipeline", cl.URL())
	base.Peers.Scoring = sc.addr
	rt := platformtest.RuntimeWith(t, base)
	if _, ok := rt.Redis.(*redis.ClusterClient); !ok {
		t.Fatalf("runtime client is %T, want *redis.ClusterClient", rt.Redis)
	}
	clk := platformtest.NewClock(t0)
	ctx := context.Background()
	svc, conn, err := app.Build(ctx, rt, app.Config{
		LostReasons: "no_budget,timing", RenewalTermMonths: 12, RenewalLeadTime: 30 * 24 * time.Hour,
		HandoffMaxAttempts: 5, HandoffMaxBackoff: time.Minute, Now: clk.Now,
	})
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
	e := &env{t: t, ctx: ctx, client: pipelinev1.NewPipelineServiceClient(cc), svc: svc, clock: clk, scoring: sc}

	// The same lead handed off concurrently (the creation itself raced,
	// through the Cluster's own insert path), then again: one deal, created
	// by exactly one call.
	res := make([]*pipelinev1.CreateDealFromLeadResponse, 4)
	var wg sync.WaitGroup
	for i := range res {
		wg.Go(func() {
			r, err := e.client.CreateDealFromLead(ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: "lead-c1", OrganisationId: "org-1", OwnerRepId: "ann"})
			if err != nil {
				t.Error(err)
				return
			}
			res[i] = r
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	created := 0
	for _, r := range res {
		if r.GetDeal().GetId() != res[0].GetDeal().GetId() {
			t.Fatalf("two deals for one lead: %v", res)
		}
		if r.GetCreated() {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent hand-offs answered created, want 1", created)
	}
	first := res[0].GetDeal()
	if r := e.handoff("lead-c1"); r.GetCreated() || r.GetDeal().GetId() != first.GetId() {
		t.Fatalf("hand-off again: %v, want the deal %s", r, first.GetId())
	}
	id := first.GetId()
	// The lead filter reads the slot keys (other slots than the pipelines').
	if l, err := e.client.ListDeals(ctx, &pipelinev1.ListDealsRequest{LeadId: "lead-c1"}); err != nil || len(l.GetDeals()) != 1 || l.GetDeals()[0].GetId() != id {
		t.Fatalf("lead-c1's deals: %v %v", l, err)
	}
	clk.Advance(time.Hour)
	if r, err := e.client.MoveDeal(ctx, &pipelinev1.MoveDealRequest{DealId: id, StageId: domain.StageProposal}); err != nil || !r.GetMoved() {
		t.Fatalf("move: %v %v", r, err)
	}
	if _, err := e.client.CreateQuote(ctx, &pipelinev1.CreateQuoteRequest{DealId: id, CurrencyCode: "EUR", LineItems: []*pipelinev1.LineItemSpec{
		{Product: "seat", Quantity: 3, UnitPrice: eur(3333)},
	}}); err != nil {
		t.Fatalf("quote: %v", err)
	}
	if _, err := e.client.LogActivity(ctx, &pipelinev1.LogActivityRequest{DealId: id, Type: pipelinev1.ActivityType_ACTIVITY_TYPE_CALL, Subject: "s", RequestId: "act-1"}); err != nil {
		t.Fatalf("activity: %v", err)
	}
	won, err := e.client.CloseWon(ctx, &pipelinev1.CloseWonRequest{DealId: id, Amount: eur(1200000), ClosedAt: timestamppb.New(clk.Now())})
	if err != nil || won.GetDeal().GetStatus() != pipelinev1.DealStatus_DEAL_STATUS_WON {
		t.Fatalf("close won: %v %v", won, err)
	}
	if n, err := svc.Renewals.Depth(ctx); err != nil || n != 1 {
		t.Fatalf("renewal jobs: %d %v", n, err)
	}
	clk.Advance(365 * 24 * time.Hour)
	if n, err := svc.Renewals.ProcessDue(ctx, svc.Server.HandleRenewal); err != nil || n != 1 {
		t.Fatalf("renewal: %d %v", n, err)
	}
	// Another deal lost and recycled: the hand-off to scoring is delivered.
	lost := e.handoff("lead-c2").GetDeal().GetId()
	if _, err := e.client.CloseLost(ctx, &pipelinev1.CloseLostRequest{DealId: lost, Reason: "timing", Recycle: true}); err != nil {
		t.Fatalf("close lost: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(sc.fake.Calls()) == 0 && time.Now().Before(deadline) {
		if _, err := svc.Recycle.ProcessDue(ctx, svc.Server.HandleRecycle); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Minute)
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(sc.fake.Calls()); n != 1 {
		t.Fatalf("recycle SetStatus calls = %d", n)
	}
	if l, err := e.client.ListDeals(ctx, &pipelinev1.ListDealsRequest{OwnerRepId: "ann"}); err != nil || len(l.GetDeals()) != 2 {
		t.Fatalf("list deals: %v %v", l, err)
	}
	if _, err := e.client.GetForecast(ctx, &pipelinev1.GetForecastRequest{FromMonth: "2026-03", ToMonth: "2026-05"}); err != nil {
		t.Fatalf("forecast: %v", err)
	}
	if n, err := rt.Redis.XLen(ctx, events.StreamKey).Result(); err != nil || n < 4 {
		t.Fatalf("events: %d %v", n, err)
	}
}
