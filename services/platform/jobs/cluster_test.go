package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// TestOnRedisCluster runs the job queue and the event publisher through a
// runtime built from a redis+cluster:// URL: every script and multi-key
// command must keep its keys in one hash slot (no CROSSSLOT), and scripts
// must touch only the keys they declare.
func TestOnRedisCluster(t *testing.T) {
	cl := platformtest.StartRedisCluster(t)
	rt := platformtest.Runtime(t, "capture", cl.URL())
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	if _, ok := rt.Redis.(*redis.ClusterClient); !ok {
		t.Fatalf("runtime client is %T, want *redis.ClusterClient", rt.Redis)
	}
	ctx := context.Background()
	clock := platformtest.NewClock(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))

	t.Run("jobs", func(t *testing.T) {
		// Several queues so their tags land on different nodes.
		for _, name := range []string{"handoff", "sla", "renewal"} {
			q := jobs.New(rt.Redis, name, jobs.Options{Now: clock.Now, MaxAttempts: 2, BaseBackoff: time.Second, MaxBackoff: time.Second})
			if created, err := q.Schedule(ctx, jobs.Job{ID: "ok", Payload: []byte("p"), LeadID: "lead-1"}); err != nil || !created {
				t.Fatalf("%s schedule: %v %v", name, created, err)
			}
			if created, err := q.Schedule(ctx, jobs.Job{ID: "ok"}); err != nil || created {
				t.Fatalf("%s schedule again: %v %v", name, created, err)
			}
			if _, err := q.Schedule(ctx, jobs.Job{ID: "fails"}); err != nil {
				t.Fatal(err)
			}
			if _, err := q.Schedule(ctx, jobs.Job{ID: "later", Due: clock.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if ok, err := q.Reschedule(ctx, "later", clock.Now().Add(2*time.Hour)); err != nil || !ok {
				t.Fatalf("%s reschedule: %v %v", name, ok, err)
			}
			if ok, err := q.Cancel(ctx, "later"); err != nil || !ok {
				t.Fatalf("%s cancel: %v %v", name, ok, err)
			}
			h := func(_ context.Context, j jobs.Job) error {
				if j.ID == "fails" {
					return errors.New("callee down")
				}
				return nil
			}
			// Claim + ack "ok", claim + retry "fails".
			if n, err := q.ProcessDue(ctx, h); err != nil || n != 2 {
				t.Fatalf("%s first pass: n=%d err=%v", name, n, err)
			}
			clock.Advance(2 * time.Second)
			// Second failure: dead letter.
			if n, err := q.ProcessDue(ctx, h); err != nil || n != 1 {
				t.Fatalf("%s second pass: n=%d err=%v", name, n, err)
			}
			dead, err := q.DeadLetters(ctx, 10)
			if err != nil || len(dead) != 1 || dead[0].ID != "fails" {
				t.Fatalf("%s dead letters: %+v %v", name, dead, err)
			}
			if ok, err := q.Redrive(ctx, "fails"); err != nil || !ok {
				t.Fatalf("%s redrive: %v %v", name, ok, err)
			}
			if n, err := q.ProcessDue(ctx, func(context.Context, jobs.Job) error { return nil }); err != nil || n != 1 {
				t.Fatalf("%s redriven: n=%d err=%v", name, n, err)
			}
			if d, err := q.Depth(ctx); err != nil || d != 0 {
				t.Fatalf("%s depth: %d %v", name, d, err)
			}
		}
	})

	t.Run("direct", func(t *testing.T) {
		// Born claimed, delivered by its own process, acknowledged with its
		// token; then, with the deliverer stopped, released to the workers.
		q := jobs.New(rt.Redis, "direct", jobs.Options{Now: clock.Now}).EnableDirect(jobs.DirectOptions{Timeout: time.Second})
		got := make(chan string, 4)
		dctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- q.RunDirect(dctx, func(_ context.Context, js []jobs.Job) []error {
				for _, j := range js {
					got <- j.ID
				}
				return make([]error, len(js))
			})
		}()
		for end := time.Now().Add(5 * time.Second); !q.DirectUsable(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("the deliverer did not start")
			}
		}
		schedule := func(id string) *jobs.Born {
			pipe := rt.Redis.Pipeline()
			b, err := q.ScheduleDirectOn(ctx, pipe, jobs.Job{ID: id})
			if err != nil || b == nil {
				t.Fatalf("schedule %s: %v %v", id, b, err)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			return b
		}
		q.Hand(ctx, schedule("a"))
		select {
		case id := <-got:
			if id != "a" {
				t.Fatalf("delivered %q", id)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the direct job was not delivered")
		}
		late := schedule("late")
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		q.Hand(ctx, late)
		if n, err := q.ProcessDue(ctx, func(context.Context, jobs.Job) error { return nil }); err != nil || n != 1 {
			t.Fatalf("the released job: n=%d err=%v", n, err)
		}
		if d, err := q.Depth(ctx); err != nil || d != 0 {
			t.Fatalf("direct depth: %d %v", d, err)
		}
	})

	t.Run("events", func(t *testing.T) {
		for _, lead := range []string{"lead-1", "lead-2", "lead-3"} {
			ev := &eventsv1.LeadEvent{LeadId: lead, Payload: &eventsv1.LeadEvent_LeadCaptured{LeadCaptured: &eventsv1.LeadCaptured{Source: "google"}}}
			if err := rt.Events.Publish(ctx, ev); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		entries, err := rt.Redis.XRange(ctx, events.StreamKey, "-", "+").Result()
		if err != nil || len(entries) != 3 {
			t.Fatalf("stream: %d entries, %v", len(entries), err)
		}
		got, err := events.Decode(entries[2].Values)
		if err != nil || got.GetLeadId() != "lead-3" || got.GetProducer() != "capture" {
			t.Fatalf("decode: %v %v", got, err)
		}
	})
}
