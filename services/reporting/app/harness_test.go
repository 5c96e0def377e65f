package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/reporting/app"
	"github.com/leadflow/leadflow/services/reporting/consumer"
	"github.com/leadflow/leadflow/services/reporting/store"
)

type harness struct {
	t      *testing.T
	ctx    context.Context
	redis  *platformtest.Redis
	rdb    *redis.Client
	rt     *platform.Runtime
	client reportingv1.ReportingServiceClient
	store  *store.Store
	reader *sdkmetric.ManualReader
}

func testConfig() app.Config {
	return app.Config{Batch: 100, Block: time.Second, ClaimMinIdle: time.Minute, ClaimInterval: time.Second,
		MaxDeliveries: 3, Retention: 0, TrimInterval: time.Minute, ScoreBandWidth: 10, Consume: false}
}

// newHarness serves reporting on a real Redis with the background consumer
// off: tests drive consumers step by step.
func newHarness(t *testing.T, opts ...platform.Option) *harness {
	t.Helper()
	r := platformtest.StartRedis(t)
	reader := sdkmetric.NewManualReader()
	rt := platformtest.Runtime(t, "reporting", r.URL(), append(opts, platform.WithMetricReader(reader))...)
	ctx := context.Background()
	svc, err := app.New(ctx, rt, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	conn := platformtest.Serve(t, rt, svc)
	return &harness{t: t, ctx: ctx, redis: r, rdb: r.Client(), rt: rt,
		client: reportingv1.NewReportingServiceClient(conn), store: store.New(rt.Redis), reader: reader}
}

// consumer returns a consumer named name with the given claim idle time.
func (h *harness) consumer(name string, minIdle time.Duration) *consumer.Consumer {
	h.t.Helper()
	c, err := consumer.New(h.rt.Redis, h.store, consumer.Options{Name: name, Batch: 7, ClaimMinIdle: minIdle, MaxDeliveries: 3,
		Meter: h.rt.Meter(), Logger: h.rt.Logger, Tracer: h.rt.Tracer()})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := c.Ensure(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// publish publishes events through the platform publisher.
func (h *harness) publish(evs ...*eventsv1.LeadEvent) {
	h.t.Helper()
	for _, e := range evs {
		if err := h.rt.Events.Publish(h.ctx, proto.Clone(e).(*eventsv1.LeadEvent)); err != nil {
			h.t.Fatal(err)
		}
	}
}

// xadd appends raw field values to the stream.
func (h *harness) xadd(values ...any) string {
	h.t.Helper()
	id, err := h.rdb.XAdd(h.ctx, &redis.XAddArgs{Stream: events.StreamKey, Values: values}).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// drain reads with c until the stream has nothing new.
func (h *harness) drain(c *consumer.Consumer) {
	h.t.Helper()
	for i := 0; i < 10000; i++ {
		n, err := c.ReadOnce(h.ctx, -1)
		if err != nil {
			h.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	h.t.Fatal("stream never drained")
}

func (h *harness) pending() int64 {
	h.t.Helper()
	p, err := h.rdb.XPending(h.ctx, events.StreamKey, consumer.Group).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Count
}

func (h *harness) dump() map[string]string {
	h.t.Helper()
	gen, err := h.store.Generation(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := h.store.Dump(h.ctx, gen)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func novPeriod() *reportingv1.Period {
	return &reportingv1.Period{From: timestamppb.New(at(2, 0, 0)), To: timestamppb.New(at(16, 0, 0))}
}

func (h *harness) funnel(g reportingv1.GroupBy) *reportingv1.GetFunnelResponse {
	h.t.Helper()
	res, err := h.client.GetFunnel(h.ctx, &reportingv1.GetFunnelRequest{Period: novPeriod(), GroupBy: g})
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}
