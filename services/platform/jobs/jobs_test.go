package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// eventually polls fn until it holds or d has passed.
func eventually(d time.Duration, fn func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if fn() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

func newQueue(t *testing.T, rdb redis.UniversalClient, c *platformtest.Clock, o Options) *Queue {
	o.Now = c.Now
	if o.BaseBackoff == 0 {
		o.BaseBackoff = time.Second
	}
	return New(rdb, "test", o)
}

func setup(t *testing.T) (redis.UniversalClient, *platformtest.Clock) {
	r := platformtest.StartRedis(t)
	return r.Client(), platformtest.NewClock(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
}

func TestScheduleIsIdempotentAndWaitsUntilDue(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{})
	ctx := context.Background()

	created, err := q.Schedule(ctx, Job{ID: "a", Payload: []byte("first"), Due: c.Now().Add(time.Minute), LeadID: "lead-1"})
	if err != nil || !created {
		t.Fatalf("schedule: %v %v", created, err)
	}
	created, err = q.Schedule(ctx, Job{ID: "a", Payload: []byte("second")})
	if err != nil || created {
		t.Fatalf("second schedule of the same id must keep the first: %v %v", created, err)
	}
	var got []Job
	h := func(_ context.Context, j Job) error { got = append(got, j); return nil }
	if n, err := q.ProcessDue(ctx, h); err != nil || n != 0 {
		t.Fatalf("before due: n=%d err=%v", n, err)
	}
	c.Advance(time.Minute)
	if n, err := q.ProcessDue(ctx, h); err != nil || n != 1 {
		t.Fatalf("when due: n=%d err=%v", n, err)
	}
	if string(got[0].Payload) != "first" || got[0].Attempt != 1 || got[0].LeadID != "lead-1" {
		t.Fatalf("job = %+v", got[0])
	}
	if d, _ := q.Depth(ctx); d != 0 {
		t.Fatalf("depth after ack = %d", d)
	}
	// A done job's id may be scheduled again (a new hand-off).
	if created, _ := q.Schedule(ctx, Job{ID: "a"}); !created {
		t.Fatal("id of a finished job should be schedulable again")
	}
}

func TestFailedJobsBackOffThenDeadLetter(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{MaxAttempts: 3, BaseBackoff: time.Second, MaxBackoff: 10 * time.Second})
	ctx := context.Background()
	if _, err := q.Schedule(ctx, Job{ID: "j"}); err != nil {
		t.Fatal(err)
	}
	var attempts []int
	fail := func(_ context.Context, j Job) error {
		attempts = append(attempts, j.Attempt)
		return errors.New("callee down")
	}

	if n, _ := q.ProcessDue(ctx, fail); n != 1 {
		t.Fatalf("first attempt not run")
	}
	// Not due again until the backoff (1s ±20%) has passed.
	if n, _ := q.ProcessDue(ctx, fail); n != 0 {
		t.Fatalf("retried before its backoff")
	}
	c.Advance(1300 * time.Millisecond)
	if n, _ := q.ProcessDue(ctx, fail); n != 1 {
		t.Fatalf("second attempt not run after backoff")
	}
	c.Advance(3 * time.Second) // second backoff is 2s ±20%
	if n, _ := q.ProcessDue(ctx, fail); n != 1 {
		t.Fatalf("third attempt not run")
	}
	c.Advance(time.Hour)
	if n, _ := q.ProcessDue(ctx, fail); n != 0 {
		t.Fatalf("a dead job must not run again")
	}
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Fatalf("attempts = %v", attempts)
	}
	dead, err := q.DeadLetters(ctx, 10)
	if err != nil || len(dead) != 1 || dead[0].ID != "j" || dead[0].LastError != "callee down" || dead[0].Attempt != 3 {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	// A dead job is still known: scheduling its id again does not duplicate it.
	if created, _ := q.Schedule(ctx, Job{ID: "j"}); created {
		t.Fatal("dead job was scheduled twice")
	}
	if ok, err := q.Redrive(ctx, "j"); !ok || err != nil {
		t.Fatalf("redrive: %v %v", ok, err)
	}
	if n, _ := q.ProcessDue(ctx, func(context.Context, Job) error { return nil }); n != 1 {
		t.Fatal("redriven job not delivered")
	}
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{})
	ctx := context.Background()
	_, _ = q.Schedule(ctx, Job{ID: "p"})
	_, _ = q.ProcessDue(ctx, func(context.Context, Job) error { return Permanent(errors.New("payload cannot be decoded")) })
	dead, _ := q.DeadLetters(ctx, 10)
	if len(dead) != 1 || dead[0].Attempt != 1 {
		t.Fatalf("dead letters = %+v", dead)
	}
}

func TestCrashedWorkerLeaseExpiresAndJobIsRetried(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{Lease: 30 * time.Second})
	ctx := context.Background()
	_, _ = q.Schedule(ctx, Job{ID: "k"})
	// A worker claims the job and dies before acknowledging it.
	claimedJobs, err := q.claim(ctx, 64)
	if err != nil || len(claimedJobs) != 1 {
		t.Fatalf("claim: %v %v", claimedJobs, err)
	}
	var got []int
	h := func(_ context.Context, j Job) error { got = append(got, j.Attempt); return nil }
	if n, _ := q.ProcessDue(ctx, h); n != 0 {
		t.Fatal("a leased job must not be delivered twice at once")
	}
	c.Advance(31 * time.Second)
	if n, _ := q.ProcessDue(ctx, h); n != 1 || got[0] != 2 {
		t.Fatalf("after the lease: n=%d attempts=%v", n, got)
	}
	// The dead worker's late acknowledgement changes nothing.
	if n, _ := ackScript.Run(ctx, rdb, q.keys, "k", claimedJobs[0].token).Int(); n != 0 {
		t.Fatal("stale claim acknowledged")
	}
}

func TestCancelAndReschedule(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{})
	ctx := context.Background()
	_, _ = q.Schedule(ctx, Job{ID: "sla", Due: c.Now().Add(time.Hour)})
	if ok, _ := q.Reschedule(ctx, "sla", c.Now().Add(time.Minute)); !ok {
		t.Fatal("reschedule failed")
	}
	c.Advance(time.Minute)
	ran := 0
	h := func(context.Context, Job) error { ran++; return nil }
	_, _ = q.Schedule(ctx, Job{ID: "other", Due: c.Now().Add(time.Hour)})
	if ok, _ := q.Cancel(ctx, "other"); !ok {
		t.Fatal("cancel failed")
	}
	if ok, _ := q.Cancel(ctx, "other"); ok {
		t.Fatal("second cancel reported a job")
	}
	c.Advance(2 * time.Hour)
	_, _ = q.ProcessDue(ctx, h)
	if ran != 1 {
		t.Fatalf("ran %d jobs, want only the rescheduled one", ran)
	}
}

func TestTwoWorkersDeliverEachJobOnce(t *testing.T) {
	rdb, c := setup(t)
	q1 := newQueue(t, rdb, c, Options{Batch: 7})
	q2 := newQueue(t, rdb, c, Options{Batch: 5})
	ctx := context.Background()
	const n = 500
	for i := range n {
		if _, err := q1.Schedule(ctx, Job{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var total atomic.Int64
	h := func(_ context.Context, j Job) error {
		mu.Lock()
		seen[j.ID]++
		mu.Unlock()
		total.Add(1)
		return nil
	}
	var wg sync.WaitGroup
	for _, q := range []*Queue{q1, q2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Load() < n {
				if _, err := q.ProcessDue(ctx, h); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("delivered %d distinct jobs, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("job %s delivered %d times", id, k)
		}
	}
}

func TestDueNowJobsWakeAnIdleWorker(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{})
	ctx := context.Background()
	if _, err := q.Schedule(ctx, Job{ID: "later", Due: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.LLen(ctx, q.keys[3]).Result(); n != 0 {
		t.Fatalf("a delayed job woke the workers (%d tokens)", n)
	}
	for i := range 20 {
		if _, err := q.Schedule(ctx, Job{ID: fmt.Sprint("now-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := rdb.LLen(ctx, q.keys[3]).Result(); n < 1 || n > 8 {
		t.Fatalf("wake tokens = %d, want 1..8 (bounded)", n)
	}

	// A running worker (real clock) delivers them.
	rq := New(rdb, "run", Options{PollInterval: 50 * time.Millisecond})
	runCtx, cancel := context.WithCancel(ctx)
	var delivered atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- rq.Run(runCtx, func(context.Context, Job) error { delivered.Add(1); return nil })
	}()
	for i := range 5 {
		if _, err := rq.Schedule(ctx, Job{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for delivered.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if delivered.Load() != 5 {
		t.Fatalf("delivered %d of 5", delivered.Load())
	}
}

// TestTrickleCostsOneClaimPerJob: a claim that took fewer jobs than it
// asked for took all that were due, so the worker waits on the wake list
// instead of claiming again at once (a claim that would come back empty,
// one wasted round trip per job when jobs trickle in). The next job's wake
// token still starts it at once.
func TestTrickleCostsOneClaimPerJob(t *testing.T) {
	rdb, _ := setup(t)
	ctx := context.Background()
	// A long poll: claims come from wake tokens, plus at most one per second
	// that the worker waits (the wait is capped at a second).
	q := New(rdb, "trickle", Options{PollInterval: time.Minute})
	var delivered atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- q.Run(runCtx, func(context.Context, Job) error { delivered.Add(1); return nil })
	}()
	claims := func() int64 {
		t.Helper()
		m, err := redisx.CommandCalls(ctx, rdb)
		if err != nil {
			t.Fatal(err)
		}
		return m["zrangebyscore"] // once per claim, inside the claim script
	}
	const n = 20
	start, before := time.Now(), claims()
	for i := range n {
		if _, err := q.Schedule(ctx, Job{ID: fmt.Sprint("t-", i)}); err != nil {
			t.Fatal(err)
		}
		if !eventually(10*time.Second, func() bool {
			d, err := q.Depth(ctx)
			return delivered.Load() == int64(i+1) && err == nil && d == 0
		}) {
			t.Fatalf("job %d not delivered and acknowledged", i)
		}
	}
	got := claims() - before
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Claiming again after each job would take 2n.
	if limit := int64(n) + int64(time.Since(start)/time.Second) + 1; got > limit {
		t.Fatalf("%d jobs one at a time took %d claims, want at most %d (one each, plus one per second of waiting)", n, got, limit)
	}
}

// A job that never finishes holds one slot, not the worker: the jobs
// scheduled after it are delivered while it still runs, and the worker
// never holds more than Concurrency jobs at once.
func TestRunDoesNotWaitForASlowJob(t *testing.T) {
	rdb, _ := setup(t)
	q := New(rdb, "slots", Options{Concurrency: 3, PollInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	var inFlight, maxInFlight, delivered atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- q.Run(ctx, func(ctx context.Context, j Job) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			if j.ID == "slow" {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			delivered.Add(1)
			return nil
		})
	}()
	if _, err := q.Schedule(ctx, Job{ID: "slow"}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if _, err := q.Schedule(ctx, Job{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for delivered.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := delivered.Load()
	close(release)
	for delivered.Load() < n+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("with the slow job running, %d of the %d others were delivered", got, n)
	}
	if delivered.Load() != n+1 {
		t.Fatalf("delivered %d, want %d", delivered.Load(), n+1)
	}
	if m := maxInFlight.Load(); m > 3 {
		t.Fatalf("%d jobs in flight at once, Concurrency is 3", m)
	}
	if d, _ := q.Depth(context.Background()); d != 0 {
		t.Fatalf("depth %d after all were acknowledged", d)
	}
}

// ScheduleOn schedules in the caller's pipeline with the same rules as
// Schedule: once per id, due now wakes a worker, later waits.
func TestScheduleOnPipeline(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{})
	ctx := context.Background()
	pipe := rdb.Pipeline()
	pipe.Set(ctx, "other-write", "x", 0)
	for _, j := range []Job{{ID: "now", Payload: []byte("p1")}, {ID: "now", Payload: []byte("p2")}, {ID: "later", Due: c.Now().Add(time.Minute)}} {
		if err := q.ScheduleOn(ctx, pipe, j); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.ScheduleOn(ctx, pipe, Job{}); err == nil {
		t.Fatal("a job without an id was accepted")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.LLen(ctx, q.keys[3]).Result(); n != 1 {
		t.Fatalf("wake tokens = %d, want 1 (one due-now job added)", n)
	}
	var got []string
	h := func(_ context.Context, j Job) error { got = append(got, j.ID+"="+string(j.Payload)); return nil }
	if n, err := q.ProcessDue(ctx, h); err != nil || n != 1 || len(got) != 1 || got[0] != "now=p1" {
		t.Fatalf("due now: %d %v %v, want the first scheduling of \"now\" only", n, got, err)
	}
	c.Advance(time.Minute)
	if n, _ := q.ProcessDue(ctx, h); n != 1 || got[1] != "later=" {
		t.Fatalf("after a minute: %v", got)
	}
}

// RunBatch hands claimed jobs to the handler together, settles each job by
// its own error (done, retried with backoff, dead-lettered) and gives each
// job its delivery span's traceparent.
func TestRunBatchSettlesEachJobByItsOwnError(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{MaxAttempts: 3, Batches: 1, PollInterval: 10 * time.Millisecond, Tracer: sdktrace.NewTracerProvider().Tracer("test")})
	ctx, cancel := context.WithCancel(context.Background())
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, id := range []string{"ok-1", "ok-2", "flaky", "bad", "ok-3"} {
		if _, err := q.Schedule(ctx, Job{ID: id, Traceparent: tp, LeadID: "lead-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var batches [][]string
	seen := map[string]Job{}
	done := make(chan error, 1)
	go func() {
		done <- q.RunBatch(ctx, func(_ context.Context, js []Job) []error {
			mu.Lock()
			defer mu.Unlock()
			var ids []string
			errs := make([]error, len(js))
			for i, j := range js {
				ids = append(ids, j.ID)
				seen[j.ID] = j
				switch j.ID {
				case "flaky":
					errs[i] = errors.New("callee busy")
				case "bad":
					errs[i] = Permanent(errors.New("refused"))
				}
			}
			batches = append(batches, ids)
			return errs
		})
	}()
	ok := eventually(20*time.Second, func() bool {
		d, _ := q.Depth(context.Background())
		return d == 1 // only "flaky" waits, on its backoff
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("the batch was not settled")
	}
	if len(batches) != 1 || len(batches[0]) != 5 {
		t.Fatalf("the five due jobs should go in one batch, got %v", batches)
	}
	for id, j := range seen {
		if j.Traceparent == tp || leadtrace.TraceID(j.Traceparent) != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("job %s: traceparent %q should be its delivery span's, in the lead's trace", id, j.Traceparent)
		}
		if j.LeadID != "lead-"+id || j.Attempt != 1 {
			t.Errorf("job %s = %+v", id, j)
		}
	}
	dead, err := q.DeadLetters(context.Background(), 10)
	if err != nil || len(dead) != 1 || dead[0].ID != "bad" || dead[0].LastError != "refused" {
		t.Fatalf("dead letters = %+v, %v; want only bad", dead, err)
	}
	// The retried job comes back after its backoff, alone, as attempt 2.
	c.Advance(time.Minute)
	var again []Job
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		done <- q.RunBatch(ctx2, func(_ context.Context, js []Job) []error {
			mu.Lock()
			again = append(again, js...)
			mu.Unlock()
			return make([]error, len(js)) // all done
		})
	}()
	ok = eventually(20*time.Second, func() bool {
		d, _ := q.Depth(context.Background())
		return d == 0
	})
	cancel2()
	<-done
	if !ok || len(again) != 1 || again[0].ID != "flaky" || again[0].Attempt != 2 {
		t.Fatalf("retry = %+v (settled %v)", again, ok)
	}
}

// Under load RunBatch groups the jobs that became due while its batches
// were busy, never has more than Batches batches in flight, and delivers
// every job once.
func TestRunBatchGroupsJobsDueWhileBusy(t *testing.T) {
	rdb, _ := setup(t)
	q := New(rdb, "batches", Options{Batches: 2, Batch: 16, PollInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	gate := make(chan struct{})
	var inFlight, maxInFlight atomic.Int64
	var mu sync.Mutex
	count := map[string]int{}
	var sizes []int
	done := make(chan error, 1)
	go func() {
		done <- q.RunBatch(ctx, func(ctx context.Context, js []Job) []error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			if js[0].ID == "first" {
				<-gate // hold one batch while the others become due
			}
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(js))
			for _, j := range js {
				count[j.ID]++
			}
			return make([]error, len(js)) // all done
		})
	}()
	if _, err := q.Schedule(ctx, Job{ID: "first"}); err != nil {
		t.Fatal(err)
	}
	eventually(10*time.Second, func() bool { return inFlight.Load() == 1 })
	const n = 40
	for i := range n {
		if _, err := q.Schedule(ctx, Job{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(count) == n
	})
	close(gate)
	ok := eventually(20*time.Second, func() bool {
		d, _ := q.Depth(context.Background())
		return d == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("jobs left unacknowledged")
	}
	for id, k := range count {
		if k != 1 {
			t.Errorf("job %s delivered %d times", id, k)
		}
	}
	if len(count) != n+1 {
		t.Fatalf("delivered %d distinct jobs, want %d", len(count), n+1)
	}
	big := 0
	for _, s := range sizes {
		if s > 16 {
			t.Errorf("batch of %d, Batch is 16", s)
		}
		if s > 1 {
			big++
		}
	}
	if big == 0 {
		t.Errorf("no batch held more than one job: %v", sizes)
	}
	if m := maxInFlight.Load(); m > 2 {
		t.Fatalf("%d batches in flight at once, Batches is 2", m)
	}
}

// Missing names the jobs the queue does not hold: never scheduled or done;
// waiting and dead ones are held.
func TestMissingNamesOnlyJobsTheQueueDoesNotHold(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{MaxAttempts: 1})
	ctx := context.Background()
	for _, id := range []string{"waiting", "done", "dead"} {
		if _, err := q.Schedule(ctx, Job{ID: id, Due: c.Now().Add(map[string]time.Duration{"waiting": time.Hour}[id])}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.ProcessDue(ctx, func(_ context.Context, j Job) error {
		if j.ID == "dead" {
			return Permanent(errors.New("refused"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := q.Missing(ctx, []Job{{ID: "waiting"}, {ID: "done"}, {ID: "dead"}, {ID: "never"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range got {
		ids = append(ids, j.ID)
	}
	if fmt.Sprint(ids) != "[done never]" {
		t.Fatalf("missing %v, want [done never]", ids)
	}
}

// A batch handler that answers for fewer jobs than it got leaves the others
// to be retried: a job is never acknowledged without its own answer.
func TestRunBatchRetriesJobsWithoutAnAnswer(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{})
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := q.Schedule(ctx, Job{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.ProcessDueBatch(ctx, func(_ context.Context, js []Job) []error { return make([]error, 1) }); err != nil || n != 3 {
		t.Fatalf("claimed %d (%v), want 3", n, err)
	}
	if d, _ := q.Depth(ctx); d != 2 {
		t.Fatalf("depth %d after a short answer, want the 2 unanswered jobs waiting", d)
	}
	c.Advance(time.Minute)
	var again []string
	if _, err := q.ProcessDueBatch(ctx, func(_ context.Context, js []Job) []error {
		for _, j := range js {
			again = append(again, j.ID)
		}
		return make([]error, len(js))
	}); err != nil {
		t.Fatal(err)
	}
	if len(again) != 2 {
		t.Fatalf("retried %v, want the 2 unanswered jobs", again)
	}
}
