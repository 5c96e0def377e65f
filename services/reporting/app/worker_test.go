package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
	"github.com/leadflow/leadflow/services/reporting/app"
	"github.com/leadflow/leadflow/services/reporting/consumer"
	"github.com/leadflow/leadflow/services/reporting/store"
)

// eventually polls cond (up to 10 s) and fails with what when it never holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServiceConsumesInTheBackgroundAndSurvivesARedisRestart runs the real
// service (consumer worker on) and restarts Redis under it.
func TestServiceConsumesInTheBackgroundAndSurvivesARedisRestart(t *testing.T) {
	r := platformtest.StartRedis(t, platformtest.WithAOF())
	rt := platformtest.Runtime(t, "reporting", r.URL())
	cfg := testConfig()
	cfg.Consume, cfg.Block, cfg.ConsumerName = true, 100*time.Millisecond, "worker-1"
	svc, err := app.New(context.Background(), rt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := reportingv1.NewReportingServiceClient(platformtest.Serve(t, rt, svc))
	ctx := context.Background()
	h := &harness{t: t, ctx: ctx, redis: r, rdb: r.Client(), rt: rt, client: client, store: store.New(rt.Redis)}

	evs := script()
	half := len(evs) / 2
	h.publish(evs[:half]...)
	captured := func() int64 {
		res, err := client.GetFunnel(ctx, &reportingv1.GetFunnelRequest{Period: novPeriod()})
		if err != nil {
			return -1
		}
		return res.GetTotal().GetCaptured()
	}
	eventually(t, "first half consumed (L1 and L2 captured)", func() bool { return captured() == 2 })

	r.Restart()
	eventually(t, "publish after restart", func() bool {
		return rt.Events.Publish(ctx, proto.Clone(evs[half]).(*eventsv1.LeadEvent)) == nil
	})
	h.publish(evs[half+1:]...)
	eventually(t, "everything consumed after the restart", func() bool { return captured() == 5 && h.pending() == 0 })
	// Give the consumer time to finish the last batch's ack, then compare all.
	eventually(t, "lag 0", func() bool {
		g, err := h.rdb.XInfoGroups(ctx, "lf:{events}:stream").Result()
		return err == nil && len(g) == 1 && g[0].Lag == 0 && g[0].Pending == 0
	})
	assertScriptNumbers(t, h)
}

// TestRebuildWhileEventsKeepArriving rebuilds while a live consumer applies
// new events: the result equals a clean run over the same events.
func TestRebuildWhileEventsKeepArriving(t *testing.T) {
	h := newHarness(t)
	evs := script()
	h.publish(evs...)
	c := h.consumer("live", time.Minute)
	h.drain(c)

	// 300 more leads arrive while the rebuild runs; the live consumer keeps going.
	more := make([]*eventsv1.LeadEvent, 0, 600)
	for i := 0; i < 300; i++ {
		lead := "M" + itoa(int64(i))
		more = append(more, captured(lead, at(5, 8, i%60), "google", "fall-cpc", leadv1.Channel_CHANNEL_WEB_FORM),
			mql(lead, at(5, 9, i%60), 70, leadv1.Grade_GRADE_B))
	}
	ctx, cancel := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, e := range more {
			if err := h.rt.Events.Publish(h.ctx, proto.Clone(e).(*eventsv1.LeadEvent)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := c.ReadOnce(ctx, 50*time.Millisecond); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	}()
	var rebuilds int
	for i := 0; i < 3; i++ {
		if _, err := h.client.RebuildAggregates(h.ctx, &reportingv1.RebuildAggregatesRequest{}); err != nil {
			t.Fatal(err)
		}
		rebuilds++
	}
	eventually(t, "all 300 new leads counted", func() bool {
		return h.funnel(reportingv1.GroupBy_GROUP_BY_UNSPECIFIED).GetTotal().GetCaptured() == 305 && h.pending() == 0
	})
	cancel()
	wg.Wait()

	clean := newHarness(t)
	clean.publish(append(evs, more...)...)
	clean.drain(clean.consumer("c", time.Minute))
	if d := cmp.Diff(withoutStreamIDs(clean.dump()), withoutStreamIDs(h.dump())); d != "" {
		t.Fatalf("after %d rebuilds under load (-clean +rebuilt):\n%s", rebuilds, d)
	}
	if got := h.funnel(reportingv1.GroupBy_GROUP_BY_UNSPECIFIED).GetTotal().GetMql(); got != 304 {
		t.Fatalf("MQL = %d, want 304", got)
	}
}

// TestConsumerRecreatesADeletedGroup: the stream (and with it the group) is
// deleted under a running consumer (e.g. a Redis without persistence
// restarted); the consumer creates the group again and goes on.
func TestConsumerRecreatesADeletedGroup(t *testing.T) {
	r := platformtest.StartRedis(t)
	rt := platformtest.Runtime(t, "reporting", r.URL())
	cfg := testConfig()
	cfg.Consume, cfg.Block = true, 50*time.Millisecond
	svc, err := app.New(context.Background(), rt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := reportingv1.NewReportingServiceClient(platformtest.Serve(t, rt, svc))
	ctx := context.Background()
	h := &harness{t: t, ctx: ctx, redis: r, rdb: r.Client(), rt: rt, client: client, store: store.New(rt.Redis)}
	captured := func() int64 {
		res, err := client.GetFunnel(ctx, &reportingv1.GetFunnelRequest{Period: novPeriod()})
		if err != nil {
			return -1
		}
		return res.GetTotal().GetCaptured()
	}
	h.publish(captured1("G1"))
	eventually(t, "G1 consumed", func() bool { return captured() == 1 })
	if err := h.rdb.Del(ctx, "lf:{events}:stream").Err(); err != nil {
		t.Fatal(err)
	}
	h.publish(captured1("G2"))
	eventually(t, "G2 consumed after the group was recreated", func() bool { return captured() == 2 })
}

func captured1(lead string) *eventsv1.LeadEvent {
	return captured(lead, at(3, 9, 0), "google", "c", leadv1.Channel_CHANNEL_WEB_FORM)
}

// TestConsumerLingersSoATrickleIsAppliedTogether: after a read that was not
// full the consumer waits Linger before reading again, so the entries that
// arrived meanwhile cost one read and one acknowledgement together; the
// first entry after a quiet spell is applied before the wait.
func TestConsumerLingersSoATrickleIsAppliedTogether(t *testing.T) {
	h := newHarness(t)
	lingering := make(chan time.Duration)
	release := make(chan struct{})
	c, err := consumer.New(h.rt.Redis, h.store, consumer.Options{Name: "linger", Batch: 100, Block: 50 * time.Millisecond,
		Linger: time.Second, ClaimInterval: time.Hour, Logger: h.rt.Logger,
		Sleep: func(ctx context.Context, d time.Duration) {
			select {
			case lingering <- d:
			case <-ctx.Done():
				return
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitLinger := func(what string) {
		t.Helper()
		select {
		case d := <-lingering:
			if d != time.Second {
				t.Fatalf("lingered %s, want the configured 1s", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the consumer never lingered %s", what)
		}
	}
	calls := func() map[string]int64 {
		t.Helper()
		m, err := redisx.CommandCalls(h.ctx, h.rdb)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	evs := script()
	h.publish(evs[0])
	waitLinger("after the first entry")
	if p := h.pending(); p != 0 {
		t.Fatalf("the first entry waits for the linger: %d pending", p)
	}
	before := calls()
	h.publish(evs[1:]...)
	release <- struct{}{}
	waitLinger("after the trickle")
	after := calls()
	if n := after["xreadgroup"] - before["xreadgroup"]; n != 1 {
		t.Errorf("%d entries that arrived during the linger took %d reads, want 1", len(evs)-1, n)
	}
	if n := after["xack"] - before["xack"]; n != 1 {
		t.Errorf("%d entries that arrived during the linger took %d acknowledgements, want 1", len(evs)-1, n)
	}
	if p := h.pending(); p != 0 {
		t.Fatalf("%d entries left pending", p)
	}
	g, err := h.rdb.XInfoGroups(h.ctx, events.StreamKey).Result()
	if err != nil || len(g) != 1 || g[0].Lag != 0 {
		t.Fatalf("group after the trickle: %+v %v (want lag 0: every entry read)", g, err)
	}
}
