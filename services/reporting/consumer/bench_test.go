package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
	"github.com/leadflow/leadflow/services/reporting/consumer"
	"github.com/leadflow/leadflow/services/reporting/domain"
	"github.com/leadflow/leadflow/services/reporting/store"
)

// journey returns the i-th event of a synthetic stream: leads of ten events
// each (capture, score, MQL, routed, assigned, touched, accepted, qualified,
// deal created, won).
func journey(i int) *eventsv1.LeadEvent {
	lead := fmt.Sprintf("lead-%d", i/10)
	t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	e := &eventsv1.LeadEvent{Id: fmt.Sprintf("ev-%d", i), LeadId: lead, OccurredAt: timestamppb.New(t), Producer: "bench",
		TraceId: "0af7651916cd43dd8448eb211c80319c"}
	switch i % 10 {
	case 0:
		e.Payload = &eventsv1.LeadEvent_LeadCaptured{LeadCaptured: &eventsv1.LeadCaptured{Source: "google", Campaign: fmt.Sprintf("c%d", i%7), Channel: leadv1.Channel_CHANNEL_WEB_FORM}}
	case 1:
		e.Payload = &eventsv1.LeadEvent_LeadScored{LeadScored: &eventsv1.LeadScored{Score: &leadv1.Score{Total: 70, Grade: leadv1.Grade_GRADE_A}}}
	case 2:
		e.Payload = &eventsv1.LeadEvent_MqlReached{MqlReached: &eventsv1.MqlReached{Total: 70, Grade: leadv1.Grade_GRADE_A}}
	case 3:
		e.Payload = &eventsv1.LeadEvent_LeadRouted{LeadRouted: &eventsv1.LeadRouted{TeamId: "emea", RepId: "r1"}}
	case 4:
		e.Payload = &eventsv1.LeadEvent_LeadAssigned{LeadAssigned: &eventsv1.LeadAssigned{TeamId: "emea", RepId: "r1", FirstTouchDue: timestamppb.New(t.Add(time.Hour))}}
	case 5:
		e.Payload = &eventsv1.LeadEvent_LeadTouched{LeadTouched: &eventsv1.LeadTouched{TeamId: "emea", RepId: "r1", FirstTouch: true, WithinSla: true}}
	case 6:
		e.Payload = &eventsv1.LeadEvent_LeadAccepted{LeadAccepted: &eventsv1.LeadAccepted{TeamId: "emea", RepId: "r1"}}
	case 7:
		e.Payload = &eventsv1.LeadEvent_LeadQualified{LeadQualified: &eventsv1.LeadQualified{BantMet: 3}}
	case 8:
		e.Payload = &eventsv1.LeadEvent_DealCreated{DealCreated: &eventsv1.DealCreated{DealId: "d" + lead, StageId: "discovery", OwnerRepId: "r1"}}
	case 9:
		e.Payload = &eventsv1.LeadEvent_DealWon{DealWon: &eventsv1.DealWon{DealId: "d" + lead, Amount: &leadv1.Money{AmountMinor: 100000, CurrencyCode: "EUR"}}}
	}
	return e
}

// BenchmarkConsume measures events processed per second by one consumer:
// read (XREADGROUP, batch 100), decode, apply (one Lua script call per 20
// events, pipelined), XACK; and Redis's CPU time and commands per event.
func BenchmarkConsume(b *testing.B) {
	r := platformtest.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer rdb.Close()
	ctx := context.Background()
	// Publish b.N events before the clock starts.
	for lo := 0; lo < b.N; lo += 1000 {
		pipe := rdb.Pipeline()
		for i := lo; i < min(lo+1000, b.N); i++ {
			raw, err := proto.Marshal(journey(i))
			if err != nil {
				b.Fatal(err)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: events.StreamKey, Values: []any{events.Field, raw}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	c, err := consumer.New(rdb, store.New(rdb), consumer.Options{Name: "bench", Batch: 100})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	cpu0, err := redisx.ServerCPU(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	cmds0, err := redisx.CommandCalls(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	done := 0
	for done < b.N {
		n, err := c.ReadOnce(ctx, -1)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			b.Fatalf("stream drained after %d of %d events", done, b.N)
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cpu1, err := redisx.ServerCPU(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "redis-cpu-µs/event")
	cmds1, err := redisx.CommandCalls(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for k, v := range cmds1 {
		if k != "info" {
			n += v - cmds0[k]
		}
	}
	b.ReportMetric(float64(n)/float64(b.N), "redis-cmds/event")
	if p, err := rdb.XPending(ctx, events.StreamKey, consumer.Group).Result(); err != nil || p.Count != 0 {
		b.Fatalf("pending after benchmark: %v %v", p, err)
	}
}

// BenchmarkFunnelQuery measures one funnel over a cohort of 2000 leads
// (20000 events): ZRANGE of the cohort, 2000 HGETALLs pipelined, the report.
func BenchmarkFunnelQuery(b *testing.B) {
	r := platformtest.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer rdb.Close()
	ctx := context.Background()
	const n = 20000
	pipe := rdb.Pipeline()
	for i := 0; i < n; i++ {
		raw, err := proto.Marshal(journey(i))
		if err != nil {
			b.Fatal(err)
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: events.StreamKey, Values: []any{events.Field, raw}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	st := store.New(rdb)
	c, err := consumer.New(rdb, st, consumer.Options{Name: "bench", Batch: 500})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	for {
		k, err := c.ReadOnce(ctx, -1)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		facts, err := st.CohortFacts(ctx, from, to)
		if err != nil {
			b.Fatal(err)
		}
		_, total := domain.Funnel(facts, domain.GroupWeek)
		if total.Counts[domain.StepWon] != n/10 {
			b.Fatalf("won = %d", total.Counts[domain.StepWon])
		}
	}
	b.ReportMetric(n/10, "leads/query")
}
