package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/reporting/app"
	"github.com/leadflow/leadflow/services/reporting/consumer"
	"github.com/leadflow/leadflow/services/reporting/store"
)

// TestOnRedisCluster consumes the scripted journeys through the consumer
// group and the apply script, reads every report, and rebuilds the
// aggregates (a scan over every master) on a three-node Redis Cluster: a key
// the apply script or a transaction touches outside its hash tag fails here
// with CROSSSLOT.
func TestOnRedisCluster(t *testing.T) {
	cl := platformtest.StartRedisCluster(t)
	reader := sdkmetric.NewManualReader()
	rt := platformtest.Runtime(t, "reporting", cl.URL(), platform.WithMetricReader(reader))
	if _, ok := rt.Redis.(*redis.ClusterClient); !ok {
		t.Fatalf("runtime client is %T, want *redis.ClusterClient", rt.Redis)
	}
	ctx := context.Background()
	svc, err := app.New(ctx, rt, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	conn := platformtest.Serve(t, rt, svc)
	h := &harness{t: t, ctx: ctx, rt: rt, client: reportingv1.NewReportingServiceClient(conn), store: store.New(rt.Redis), reader: reader}

	h.publish(script()...)
	c := h.consumer("c1", time.Minute)
	h.drain(c)
	if p, err := rt.Redis.XPending(ctx, events.StreamKey, consumer.Group).Result(); err != nil || p.Count != 0 {
		t.Fatalf("pending after drain: %v %v", p, err)
	}
	assertScriptNumbers(t, h)
	before := h.dump()
	genBefore, err := h.store.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}

	res, err := h.client.RebuildAggregates(ctx, &reportingv1.RebuildAggregatesRequest{})
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if res.GetLeads() != 6 {
		t.Fatalf("rebuild = %v", res)
	}
	if d := cmp.Diff(before, h.dump()); d != "" {
		t.Fatalf("rebuilt aggregates differ (-live +rebuilt):\n%s", d)
	}
	assertScriptNumbers(t, h)
	// The old generation is gone from every node.
	err = cl.Client().ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		keys, err := n.Keys(ctx, store.GenPrefix(genBefore)+"*").Result()
		if err == nil && len(keys) != 0 {
			t.Errorf("old generation keys left on %s: %v", n.Options().Addr, keys)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
