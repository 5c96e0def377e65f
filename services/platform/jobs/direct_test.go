package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// recorder is a batch handler that keeps the jobs it got and answers each
// with answer(job) (nil: done).
type recorder struct {
	mu     sync.Mutex
	got    []Job
	calls  int
	answer func(Job) error
	block  chan struct{} // when set, a call waits for it to close
}

func (r *recorder) handle(_ context.Context, js []Job) []error {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	errs := make([]error, len(js))
	for i, j := range js {
		r.got = append(r.got, j)
		if r.answer != nil {
			errs[i] = r.answer(j)
		}
	}
	return errs
}

// one is the recorder as a Handler (ProcessDue runs jobs at once).
func (r *recorder) one(ctx context.Context, j Job) error {
	return r.handle(ctx, []Job{j})[0]
}

func (r *recorder) jobs() []Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Job(nil), r.got...)
}

// startDirect runs q's deliverer with h until the test ends (or stop is
// called) and waits until jobs are born claimed.
func startDirect(t *testing.T, q *Queue, h BatchHandler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = q.RunDirect(ctx, h); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	if !eventually(5*time.Second, q.DirectUsable) {
		t.Fatal("the deliverer did not start")
	}
	return stop
}

// scheduleDirect writes js on one pipeline as a caller's write would, then
// hands the born-claimed ones to the deliverer; it returns how many were
// born claimed.
func scheduleDirect(t *testing.T, q *Queue, rdb redis.UniversalClient, js ...Job) int {
	t.Helper()
	ctx := context.Background()
	pipe := rdb.TxPipeline()
	var bs []*Born
	for _, j := range js {
		b, err := q.ScheduleDirectOn(ctx, pipe, j)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range bs {
		if b != nil {
			n++
		}
	}
	q.Hand(ctx, bs...)
	return n
}

func TestDirectJobIsDeliveredOnceWithoutAClaim(t *testing.T) {
	rdb, c := setup(t)
	rec := tracetest.NewSpanRecorder()
	q := newQueue(t, rdb, c, Options{Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")}).
		EnableDirect(DirectOptions{Timeout: time.Second})
	ctx := context.Background()
	if _, err := q.Schedule(ctx, Job{ID: "old"}); err != nil { // a job scheduled before, for the workers
		t.Fatal(err)
	}
	h := &recorder{}
	stop := startDirect(t, q, h.handle)
	before, err := redisx.CommandCalls(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if n := scheduleDirect(t, q, rdb, Job{ID: "a", Payload: []byte("p"), Traceparent: tp, LeadID: "lead-a"}, Job{ID: "old", Payload: []byte("again")}); n != 2 {
		t.Fatalf("born claimed: %d, want 2 (the id that exists is skipped by Hand, not by ScheduleDirectOn)", n)
	}
	if !eventually(5*time.Second, func() bool { d, _ := q.Depth(ctx); return d == 1 }) {
		t.Fatal("the direct job was not delivered and acknowledged")
	}
	stop()
	got := h.jobs()
	if len(got) != 1 || got[0].ID != "a" || string(got[0].Payload) != "p" || got[0].Attempt != 1 || got[0].LeadID != "lead-a" {
		t.Fatalf("delivered %+v; want job a alone, attempt 1 (the job id that existed stays the workers')", got)
	}
	after, err := redisx.CommandCalls(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if n := after["zrangebyscore"] - before["zrangebyscore"]; n != 0 {
		t.Errorf("claims during direct delivery: %d, want 0", n)
	}
	var direct bool
	for _, s := range rec.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == "leadflow.jobs.direct" && a.Value.AsBool() && s.Name() == "jobs test" && s.SpanContext().TraceID().String() == "0af7651916cd43dd8448eb211c80319c" {
				direct = true
			}
		}
	}
	if !direct {
		t.Error("no delivery span marked leadflow.jobs.direct in the lead's trace")
	}
	// Nothing is left for the workers but the older job, not even after
	// the born job's lease.
	c.Advance(time.Minute)
	var later []string
	if _, err := q.ProcessDue(ctx, func(_ context.Context, j Job) error { later = append(later, j.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(later) != 1 || later[0] != "old" {
		t.Fatalf("the workers got %v; want only old", later)
	}
}

func TestDirectJobOfAProcessThatDiedGoesToTheWorkersAfterItsLease(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{}).EnableDirect(DirectOptions{Timeout: time.Second, Lease: 10 * time.Second})
	ctx := context.Background()
	stop := startDirect(t, q, (&recorder{}).handle)
	// Written born claimed, but the process dies before Hand.
	pipe := rdb.TxPipeline()
	b, err := q.ScheduleDirectOn(ctx, pipe, Job{ID: "a"})
	if err != nil || b == nil {
		t.Fatalf("born %v, %v", b, err)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	var got []Job
	h := func(_ context.Context, j Job) error { got = append(got, j); return nil }
	c.Advance(9 * time.Second)
	if n, err := q.ProcessDue(ctx, h); err != nil || n != 0 {
		t.Fatalf("claimed %d (%v) inside the lease; want 0", n, err)
	}
	c.Advance(2 * time.Second)
	if n, err := q.ProcessDue(ctx, h); err != nil || n != 1 {
		t.Fatalf("claimed %d (%v) after the lease; want 1", n, err)
	}
	if got[0].ID != "a" || got[0].Attempt != 2 {
		t.Fatalf("got %+v; want a, attempt 2 (the lost direct delivery was the first)", got[0])
	}
	if d, _ := q.Depth(ctx); d != 0 {
		t.Fatalf("depth %d after delivery", d)
	}
}

func TestDirectFailureGoesToTheWorkersAndPausesDirectDelivery(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{}).EnableDirect(DirectOptions{Timeout: time.Second, Pause: 10 * time.Second})
	ctx := context.Background()
	h := &recorder{answer: func(j Job) error {
		if j.ID == "malformed" {
			return Permanent(errors.New("refused"))
		}
		return errors.New("callee down")
	}}
	startDirect(t, q, h.handle)

	// A malformed job is dead-lettered and does not pause direct delivery.
	scheduleDirect(t, q, rdb, Job{ID: "malformed"})
	if !eventually(5*time.Second, func() bool { d, _ := q.DeadLetters(ctx, 10); return len(d) == 1 }) {
		t.Fatal("the malformed job was not dead-lettered")
	}
	if !q.DirectUsable() {
		t.Fatal("a malformed job paused direct delivery")
	}

	scheduleDirect(t, q, rdb, Job{ID: "a"})
	if !eventually(5*time.Second, func() bool { return !q.DirectUsable() }) {
		t.Fatal("a failed delivery did not pause direct delivery")
	}
	// Paused: a job is scheduled for the workers, due now.
	if n := scheduleDirect(t, q, rdb, Job{ID: "b"}); n != 0 {
		t.Fatalf("%d jobs born claimed during the pause", n)
	}
	var got []Job
	worker := func(_ context.Context, j Job) error { got = append(got, j); return nil }
	if n, err := q.ProcessDue(ctx, worker); err != nil || n != 1 || got[0].ID != "b" || got[0].Attempt != 1 {
		t.Fatalf("workers during the pause: %d %v %+v; want b, attempt 1", n, err, got)
	}
	// The failed job comes back to the workers after its backoff as attempt 2.
	c.Advance(5 * time.Second)
	got = nil
	if n, err := q.ProcessDue(ctx, worker); err != nil || n != 1 || got[0].ID != "a" || got[0].Attempt != 2 || got[0].LastError != "callee down" {
		t.Fatalf("workers after the backoff: %d %v %+v; want a, attempt 2, last error", n, err, got)
	}
	c.Advance(6 * time.Second)
	if !q.DirectUsable() {
		t.Fatal("direct delivery did not resume after the pause")
	}
	if len(h.jobs()) != 2 {
		t.Fatalf("the deliverer got %d jobs; want malformed and a", len(h.jobs()))
	}
}

func TestDirectJobsTheDelivererCannotTakeAreReleasedToTheWorkers(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{}).EnableDirect(DirectOptions{Timeout: time.Second})
	ctx := context.Background()
	h := &recorder{block: make(chan struct{})}
	stop := startDirect(t, q, h.handle)

	// "first" holds a flight; the others wait in memory. "late" is born
	// claimed but handed over only after the deliverer stopped.
	scheduleDirect(t, q, rdb, Job{ID: "first"})
	if !eventually(5*time.Second, func() bool { q.direct.mu.Lock(); defer q.direct.mu.Unlock(); return len(q.direct.pending) == 0 }) {
		t.Fatal("the first job was not taken")
	}
	for i := range q.direct.Flights - 1 { // the other flights take these and block
		scheduleDirect(t, q, rdb, Job{ID: fmt.Sprint("busy-", i)})
		if !eventually(5*time.Second, func() bool { q.direct.mu.Lock(); defer q.direct.mu.Unlock(); return len(q.direct.pending) == 0 }) {
			t.Fatal("a flight did not take its job")
		}
	}
	pipe := rdb.TxPipeline()
	late, err := q.ScheduleDirectOn(ctx, pipe, Job{ID: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	waiting := []string{"w1", "w2", "w3"}
	for _, id := range waiting {
		scheduleDirect(t, q, rdb, Job{ID: id})
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	if !eventually(5*time.Second, func() bool { return !q.DirectUsable() }) {
		t.Fatal("the deliverer did not stop taking jobs")
	}
	close(h.block) // the batches in flight end and are settled
	<-stopped
	q.Hand(ctx, late)

	w := &recorder{}
	if _, err := q.ProcessDue(ctx, w.one); err != nil {
		t.Fatal(err)
	}
	got := w.jobs()
	ids := map[string]int{}
	for _, j := range got {
		ids[j.ID] = j.Attempt
	}
	for _, id := range append(waiting, "late") {
		if ids[id] != 1 {
			t.Errorf("job %s: workers got attempt %d at once; want 1 (released, due now)", id, ids[id])
		}
	}
	if len(got) != len(waiting)+1 {
		t.Errorf("the workers got %d jobs; want %d (the ones in flight were delivered)", len(got), len(waiting)+1)
	}
	if d, _ := q.Depth(ctx); d != 0 {
		t.Errorf("depth %d; want 0", d)
	}
}

// Direct delivery off: ScheduleDirectOn is ScheduleOn.
func TestDirectOffSchedulesForTheWorkers(t *testing.T) {
	rdb, c := setup(t)
	q := newQueue(t, rdb, c, Options{}).EnableDirect(DirectOptions{})
	if err := q.RunDirect(context.Background(), (&recorder{}).handle); err != nil {
		t.Fatal(err)
	}
	if n := scheduleDirect(t, q, rdb, Job{ID: "a"}); n != 0 || q.DirectUsable() {
		t.Fatalf("born claimed %d with direct delivery off", n)
	}
	if n, err := q.ProcessDue(context.Background(), func(context.Context, Job) error { return nil }); n != 1 || err != nil {
		t.Fatalf("workers claimed %d, %v", n, err)
	}
}

// PerJob answers each job of a batch with its own handler's error, in
// order, and runs each in its job's trace context.
func TestPerJobAnswersEachJobInItsTrace(t *testing.T) {
	const tp = "00-7bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	bad := errors.New("b failed")
	var mu sync.Mutex
	traces := map[string]string{}
	h := PerJob(func(ctx context.Context, j Job) error {
		mu.Lock()
		traces[j.ID] = leadtrace.Traceparent(ctx)
		mu.Unlock()
		if j.ID == "b" {
			return bad
		}
		return nil
	})
	errs := h(context.Background(), []Job{{ID: "a", Traceparent: tp}, {ID: "b"}, {ID: "c", Traceparent: tp}})
	if len(errs) != 3 || errs[0] != nil || !errors.Is(errs[1], bad) || errs[2] != nil {
		t.Fatalf("errors %v, want [nil, b failed, nil]", errs)
	}
	if traces["a"] != tp || traces["c"] != tp || traces["b"] != "" {
		t.Fatalf("handler contexts' traceparents: %v", traces)
	}
}
