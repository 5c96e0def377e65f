// Package jobs is a durable, delayed job queue in Redis: the hand-offs
// between services ("record the hand-off durably before answering OK, then
// deliver with retries"), SLA timers and renewal reminders.
//
// A job is scheduled once per id (scheduling again keeps the existing job),
// becomes due at its time, is claimed by one worker under a lease (a worker
// that dies simply lets the lease run out and another worker retries), and is
// acknowledged, retried with exponential backoff, or moved to the dead
// letters after MaxAttempts. Every key of a queue shares the hash tag
// {jobs:<name>}, so each step is one Lua script, also on Redis Cluster.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// Options tune a queue; zero values take the defaults.
type Options struct {
	// MaxAttempts before a job goes to the dead letters (default 10).
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the exponential retry delay (default 500ms, 1m).
	BaseBackoff, MaxBackoff time.Duration
	// Lease is how long a claimed job belongs to its worker; the handler's
	// context ends then, and an unacknowledged job is retried (default 30s).
	Lease time.Duration
	// PollInterval is how often Run looks for due jobs when idle (default 100ms).
	PollInterval time.Duration
	// Batch is how many due jobs one claim takes at most (default 64).
	Batch int
	// Concurrency is how many jobs run at once (default 64).
	Concurrency int
	// Batches is how many batches RunBatch has in flight at once (default
	// 2). Fewer batches in flight make bigger batches under load: jobs due
	// while all are busy go together in the next one.
	Batches int
	// Now is the clock (tests inject one).
	Now    func() time.Time
	Meter  metric.Meter
	Tracer trace.Tracer
	Logger *slog.Logger
}

// Job is one unit of work.
type Job struct {
	// ID makes scheduling idempotent: a job with the same id is kept as it is.
	ID string
	// Payload is opaque to the queue (usually an encoded protobuf request).
	Payload []byte
	// Traceparent of the lead's journey, so delivery spans join its trace.
	Traceparent string
	// LeadID, when set, is put on the delivery span.
	LeadID string
	// Due is when the job should run; zero means now.
	Due time.Time
	// Attempt is 1 on the first delivery (set by the queue).
	Attempt int
	// LastError is the error of the previous attempt (dead letters show it).
	LastError string
	// DeadAt is when the job was dead-lettered (dead letters only).
	DeadAt time.Time
	// Local travels with a direct job in memory only, never stored: what
	// its handler would otherwise read back (see ScheduleDirectOn). Nil for
	// every job claimed from Redis.
	Local any
}

// Handler does a job. nil acknowledges it; an error retries it later;
// Permanent(err) sends it to the dead letters at once.
type Handler func(ctx context.Context, j Job) error

// BatchHandler does a batch of jobs, e.g. in one call to the service they
// hand off to. It returns one error per job, in order, each meaning what a
// Handler's error means; a job it gives no answer for (a short slice) is
// retried, never taken as done. Each job's Traceparent is its delivery
// span's, so the handler's spans join the lead's trace under it.
type BatchHandler func(ctx context.Context, js []Job) []error

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks an error that retrying cannot fix (the job goes to the dead letters).
func Permanent(err error) error { return permanentError{err} }

// Queue is one named queue.
type Queue struct {
	rdb  redis.UniversalClient
	name string
	o    Options
	keys []string // due, data, dead, wake
	// direct is the deliverer of born-claimed jobs (EnableDirect); nil when off.
	direct *direct

	delivered, retried, dead metric.Int64Counter
	queueAttr                metric.MeasurementOption // queue=name, built once
}

// New returns the queue name on rdb.
func New(rdb redis.UniversalClient, name string, o Options) *Queue {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Batches <= 0 {
		o.Batches = 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Meter == nil {
		o.Meter = metricnoop.NewMeterProvider().Meter("jobs")
	}
	if o.Tracer == nil {
		o.Tracer = tracenoop.NewTracerProvider().Tracer("jobs")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	tag := "lf:{jobs:" + name + "}:"
	q := &Queue{rdb: rdb, name: name, o: o, keys: []string{tag + "due", tag + "data", tag + "dead", tag + "wake"}}
	q.queueAttr = metric.WithAttributes(attribute.String("queue", name))
	q.delivered, _ = o.Meter.Int64Counter("leadflow.jobs.delivered", metric.WithDescription("jobs done"))
	q.retried, _ = o.Meter.Int64Counter("leadflow.jobs.retries", metric.WithDescription("failed attempts that will be retried (hand-off retries)"))
	q.dead, _ = o.Meter.Int64Counter("leadflow.jobs.dead_letters", metric.WithDescription("jobs moved to the dead letters"))
	_, _ = o.Meter.Int64ObservableGauge("leadflow.jobs.depth", metric.WithDescription("jobs waiting or in flight"),
		metric.WithInt64Callback(func(ctx context.Context, obs metric.Int64Observer) error {
			n, err := q.Depth(ctx)
			if err == nil {
				obs.Observe(n, q.queueAttr)
			}
			return nil
		}))
	return q
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// A job due now also pushes a token on the wake list, so an idle worker
// blocked on it (Run) starts at once instead of at its next poll. The list
// holds at most 8 tokens (busy workers leave them there), checked with LLEN
// rather than trimmed after every push. With a claim token (ARGV[7]) the job
// is born claimed instead (see ScheduleDirectOn): attempt 1, in the due set
// at the end of its lease (ARGV[8]), and no worker is woken.
var scheduleScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]..':d') == 1 then return 0 end
local born = ARGV[7] ~= nil
redis.call('HSET', KEYS[2], ARGV[1]..':p', ARGV[3], ARGV[1]..':t', ARGV[4], ARGV[1]..':l', ARGV[5], ARGV[1]..':a', born and 1 or 0, ARGV[1]..':d', ARGV[2])
if born then
  redis.call('HSET', KEYS[2], ARGV[1]..':c', ARGV[7])
  redis.call('ZADD', KEYS[1], ARGV[8], ARGV[1])
  return 1
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if tonumber(ARGV[2]) <= tonumber(ARGV[6]) and redis.call('LLEN', KEYS[4]) < 8 then
  redis.call('RPUSH', KEYS[4], 1)
end
return 1`)

// scheduleArgs are scheduleScript's arguments for j (due now when j.Due is
// zero), and the time it is due. With token, the job is born claimed by it
// until now + the direct lease.
func (q *Queue) scheduleArgs(j Job, token string) ([]any, time.Time, error) {
	if j.ID == "" {
		return nil, time.Time{}, errors.New("jobs: empty job id")
	}
	now := q.o.Now()
	due := j.Due
	if due.IsZero() {
		due = now
	}
	args := []any{j.ID, due.UnixMilli(), j.Payload, j.Traceparent, j.LeadID, now.UnixMilli()}
	if token != "" {
		args = append(args, token, now.Add(q.direct.Lease).UnixMilli())
	}
	return args, due, nil
}

// Schedule adds j unless a job with its id exists (waiting, in flight or
// dead); it reports whether it added it.
func (q *Queue) Schedule(ctx context.Context, j Job) (bool, error) {
	args, _, err := q.scheduleArgs(j, "")
	if err != nil {
		return false, err
	}
	n, err := scheduleScript.Run(ctx, q.rdb, q.keys, args...).Int()
	return n == 1, err
}

// ScheduleOn queues the scheduling of j on pipe, so a caller can schedule
// in the same round trip as its other writes (Cluster splits a pipeline by
// node). The command's result is 1 when the job was added, 0 when one with
// its id exists; pipe's Exec reports errors.
func (q *Queue) ScheduleOn(ctx context.Context, pipe redis.Pipeliner, j Job) error {
	args, _, err := q.scheduleArgs(j, "")
	if err != nil {
		return err
	}
	// EVAL, not EVALSHA: a pipeline cannot fall back when the script cache
	// is empty (a restarted Redis).
	scheduleScript.Eval(ctx, pipe, q.keys, args...)
	return nil
}

// Missing returns the jobs of js that the queue does not hold (waiting, in
// flight or dead), in one round trip: what a repair pass must schedule
// again, without an EVAL per job that exists.
func (q *Queue) Missing(ctx context.Context, js []Job) ([]Job, error) {
	if len(js) == 0 {
		return nil, nil
	}
	fields := make([]string, len(js))
	for i, j := range js {
		fields[i] = j.ID + ":d"
	}
	vals, err := q.rdb.HMGet(ctx, q.keys[1], fields...).Result()
	if err != nil {
		return nil, err
	}
	var out []Job
	for i, v := range vals {
		if v == nil {
			out = append(out, js[i])
		}
	}
	return out, nil
}

var rescheduleScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1]..':d', ARGV[2])
return 1`)

// Reschedule moves a waiting job to a new time; false when there is none.
func (q *Queue) Reschedule(ctx context.Context, id string, due time.Time) (bool, error) {
	n, err := rescheduleScript.Run(ctx, q.rdb, q.keys, id, due.UnixMilli()).Int()
	return n == 1, err
}

var cancelScript = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1]..':p', ARGV[1]..':t', ARGV[1]..':l', ARGV[1]..':a', ARGV[1]..':d', ARGV[1]..':c', ARGV[1]..':e')
return 1`)

// Cancel removes a waiting (or in-flight) job; false when there is none.
// An in-flight job's worker then finds its claim gone and changes nothing.
func (q *Queue) Cancel(ctx context.Context, id string) (bool, error) {
	n, err := cancelScript.Run(ctx, q.rdb, q.keys, id).Int()
	return n == 1, err
}

var claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i, id in ipairs(ids) do
  local tok = ARGV[4] .. ':' .. i
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
  local a = redis.call('HINCRBY', KEYS[2], id .. ':a', 1)
  redis.call('HSET', KEYS[2], id .. ':c', tok)
  local f = redis.call('HMGET', KEYS[2], id .. ':p', id .. ':t', id .. ':l', id .. ':d', id .. ':e')
  out[#out + 1] = {id, f[1] or '', f[2] or '', f[3] or '', f[4] or '0', tostring(a), tok, f[5] or ''}
end
return out`)

// ackScript acknowledges jobs given as id, token pairs: a job whose claim
// is still the token's is removed. It returns 1 or 0 per pair.
var ackScript = redis.NewScript(`
local out = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id .. ':c') == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id..':p', id..':t', id..':l', id..':a', id..':d', id..':c', id..':e')
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out`)

var retryScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1] .. ':c') ~= ARGV[2] then return 0 end
local a = tonumber(redis.call('HGET', KEYS[2], ARGV[1] .. ':a') or '0')
redis.call('HSET', KEYS[2], ARGV[1] .. ':e', ARGV[5], ARGV[1] .. ':c', '')
if ARGV[7] == '1' or a >= tonumber(ARGV[4]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
  return 2
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1`)

type claimed struct {
	Job
	token string
	// direct: born claimed and delivered by the process that scheduled it.
	direct bool
}

// newToken is a random claim token.
func newToken() string {
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	return hex.EncodeToString(tok[:])
}

func (q *Queue) claim(ctx context.Context, n int) ([]claimed, error) {
	now := q.o.Now()
	res, err := claimScript.Run(ctx, q.rdb, q.keys, now.UnixMilli(), q.o.Lease.Milliseconds(), n, newToken()).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]claimed, 0, len(res))
	for _, r := range res {
		f, ok := r.([]any)
		if !ok || len(f) != 8 {
			return nil, fmt.Errorf("jobs: unexpected claim reply %v", r)
		}
		s := func(i int) string { v, _ := f[i].(string); return v }
		dueMs, _ := strconv.ParseInt(s(4), 10, 64)
		attempt, _ := strconv.Atoi(s(5))
		out = append(out, claimed{Job: Job{ID: s(0), Payload: []byte(s(1)), Traceparent: s(2), LeadID: s(3), Due: time.UnixMilli(dueMs), Attempt: attempt, LastError: s(7)}, token: s(6)})
	}
	return out, nil
}

func (q *Queue) backoff(attempt int) time.Duration {
	d := q.o.BaseBackoff
	for i := 1; i < attempt && d < q.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, q.o.MaxBackoff)
	// ±20% jitter so retries of many jobs do not arrive together.
	return d - d/5 + time.Duration(mrand.Int64N(int64(d/5)*2+1))
}

// ProcessDue claims the jobs due now (at most Batch), runs h on each (up to
// Concurrency at once) and acknowledges, retries or dead-letters each. It
// returns how many jobs it claimed.
func (q *Queue) ProcessDue(ctx context.Context, h Handler) (int, error) {
	jobs, err := q.claim(ctx, q.o.Batch)
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	sem := make(chan struct{}, q.o.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, c := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := q.run(ctx, h, c); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(jobs), errors.Join(errs...)
}

// ProcessDueBatch claims the jobs due now (at most Batch) and delivers them
// through one call of h, as RunBatch does; it returns how many it claimed.
func (q *Queue) ProcessDueBatch(ctx context.Context, h BatchHandler) (int, error) {
	cs, err := q.claim(ctx, q.o.Batch)
	if err != nil || len(cs) == 0 {
		return 0, err
	}
	return len(cs), q.runBatch(ctx, h, cs)
}

func (q *Queue) run(ctx context.Context, h Handler, c claimed) error {
	d := q.start(ctx, c)
	defer d.span.End()
	hctx, cancel := context.WithTimeout(d.ctx, q.o.Lease)
	herr := safeRun(hctx, h, c.Job)
	cancel()
	if herr == nil {
		return q.ack(ctx, []delivery{d})
	}
	return q.fail(ctx, d, herr)
}

// delivery is a claimed job with its delivery span.
type delivery struct {
	claimed
	ctx  context.Context
	span trace.Span
}

// start opens the delivery span of a claimed job in the lead's trace.
func (q *Queue) start(ctx context.Context, c claimed) delivery {
	jctx := leadtrace.ContextWith(ctx, c.Traceparent)
	attrs := []attribute.KeyValue{attribute.String("leadflow.jobs.queue", q.name), attribute.Int("leadflow.jobs.attempt", c.Attempt)}
	if c.LeadID != "" {
		attrs = append(attrs, attribute.String(leadtrace.AttrLeadID, c.LeadID))
	}
	if c.direct {
		attrs = append(attrs, attribute.Bool("leadflow.jobs.direct", true))
	}
	jctx, span := q.o.Tracer.Start(jctx, "jobs "+q.name, trace.WithAttributes(attrs...))
	return delivery{claimed: c, ctx: jctx, span: span}
}

// ack acknowledges done deliveries in one round trip.
func (q *Queue) ack(ctx context.Context, ds []delivery) error {
	args := make([]any, 0, 2*len(ds))
	for _, d := range ds {
		args = append(args, d.ID, d.token)
	}
	if _, err := ackScript.Run(ctx, q.rdb, q.keys, args...).Int64Slice(); err != nil {
		return err
	}
	q.delivered.Add(ctx, int64(len(ds)), q.queueAttr)
	for _, d := range ds {
		leadtrace.SetOutcome(d.span, "delivered")
	}
	return nil
}

// fail retries a failed delivery with backoff, or dead-letters it.
func (q *Queue) fail(ctx context.Context, d delivery, herr error) error {
	var perm permanentError
	forceDead := "0"
	if errors.As(herr, &perm) {
		forceDead = "1"
	}
	now := q.o.Now()
	next := now.Add(q.backoff(d.Attempt))
	n, err := retryScript.Run(ctx, q.rdb, q.keys, d.ID, d.token, next.UnixMilli(), q.o.MaxAttempts, truncate(herr.Error(), 500), now.UnixMilli(), forceDead).Int()
	if err != nil {
		return err
	}
	span := d.span
	span.RecordError(herr)
	switch n {
	case 2:
		span.SetStatus(codes.Error, "dead letter")
		leadtrace.SetOutcome(span, "dead_letter")
		q.dead.Add(ctx, 1, q.queueAttr)
		q.o.Logger.ErrorContext(d.ctx, "job dead-lettered", "queue", q.name, "job", d.ID, "attempt", d.Attempt, "error", herr.Error())
	case 1:
		leadtrace.SetOutcome(span, "retry")
		q.retried.Add(ctx, 1, q.queueAttr)
		q.o.Logger.WarnContext(d.ctx, "job failed; will retry", "queue", q.name, "job", d.ID, "attempt", d.Attempt, "retry_at", next, "error", herr.Error())
	}
	return nil
}

// runBatch delivers claimed jobs through one call of h, then acknowledges
// the done ones in one round trip and retries or dead-letters the others.
func (q *Queue) runBatch(ctx context.Context, h BatchHandler, cs []claimed) error {
	_, err := q.runBatchFor(ctx, h, cs, q.o.Lease)
	return err
}

// runBatchFor is runBatch with the handler's call bounded by timeout; it
// returns each job's handler error and the error of settling them.
func (q *Queue) runBatchFor(ctx context.Context, h BatchHandler, cs []claimed, timeout time.Duration) ([]error, error) {
	ds := make([]delivery, len(cs))
	js := make([]Job, len(cs))
	for i, c := range cs {
		ds[i] = q.start(ctx, c)
		defer ds[i].span.End()
		js[i] = c.Job
		js[i].Traceparent = leadtrace.Traceparent(ds[i].ctx)
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	errs := safeRunBatch(hctx, h, js)
	cancel()
	herrs := make([]error, len(ds))
	var done []delivery
	var failed []error
	for i, d := range ds {
		herr := errNoAnswer
		if i < len(errs) {
			herr = errs[i]
		}
		herrs[i] = herr
		if herr != nil {
			if err := q.fail(ctx, d, herr); err != nil {
				failed = append(failed, err)
			}
			continue
		}
		done = append(done, d)
	}
	if len(done) > 0 {
		if err := q.ack(ctx, done); err != nil {
			failed = append(failed, err)
		}
	}
	return herrs, errors.Join(failed...)
}

// errNoAnswer fails a job its batch handler gave no answer for.
var errNoAnswer = errors.New("jobs: the batch handler gave no answer for this job")

func safeRunBatch(ctx context.Context, h BatchHandler, js []Job) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = make([]error, len(js))
			for i := range errs {
				errs[i] = Permanent(fmt.Errorf("handler panicked: %v", r))
			}
		}
	}()
	return h(ctx, js)
}

func safeRun(ctx context.Context, h Handler, j Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("handler panicked: %v", r))
		}
	}()
	return h(ctx, j)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Run processes due jobs until ctx is done, with up to Concurrency jobs in
// flight. It claims only as many jobs as it has free slots, and claims again
// as soon as one frees, so one slow delivery holds one slot, not a whole
// batch, and no claimed job waits on its lease for a slot. When nothing is
// due it waits on the wake list for at most PollInterval, so a job scheduled
// due now starts at once and delayed jobs (timers, retries) are found by the
// poll. At ctx's end it waits for the jobs in flight (their context is
// cancelled; an unacknowledged job is retried after its lease).
func (q *Queue) Run(ctx context.Context, h Handler) error {
	return q.loop(ctx, q.o.Concurrency, func(free int) int { return min(free, q.o.Batch) }, func(cs []claimed, spawn func(func() error)) {
		for _, c := range cs {
			spawn(func() error { return q.run(ctx, h, c) })
		}
	})
}

// RunBatch is Run for a handler that takes many jobs at once: each claim
// (at most Batch jobs) goes to h as one batch, with up to Batches batches in
// flight, and the done jobs of a batch are acknowledged in one round trip.
// Under load the jobs that became due while the batches were busy go
// together; when idle, a job due now still starts at once, alone.
func (q *Queue) RunBatch(ctx context.Context, h BatchHandler) error {
	return q.loop(ctx, q.o.Batches, func(int) int { return q.o.Batch }, func(cs []claimed, spawn func(func() error)) {
		spawn(func() error { return q.runBatch(ctx, h, cs) })
	})
}

// loop claims due jobs while it has free slots (claimSize of the free
// slots at a time) and hands each claim to dispatch, whose spawned
// deliveries each hold one slot until they end.
func (q *Queue) loop(ctx context.Context, slotCount int, claimSize func(free int) int, dispatch func(cs []claimed, spawn func(func() error))) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, slotCount)
	freed := make(chan struct{}, 1)
	spawn := func(deliver func() error) {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := deliver(); err != nil && ctx.Err() == nil {
				q.o.Logger.WarnContext(ctx, "jobs not settled; retried after their lease", "queue", q.name, "error", err.Error())
			}
			<-slots
			select {
			case freed <- struct{}{}:
			default:
			}
		}()
	}
	var wait time.Duration
	for {
		if ctx.Err() != nil {
			return nil
		}
		free := cap(slots) - len(slots)
		if free == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-freed:
			}
			continue
		}
		if wait > 0 {
			q.waitForWork(ctx, wait)
		}
		size := claimSize(free)
		claimed, err := q.claim(ctx, size)
		if err != nil && ctx.Err() == nil {
			q.o.Logger.WarnContext(ctx, "job queue pass failed", "queue", q.name, "error", err.Error())
		}
		if len(claimed) > 0 {
			dispatch(claimed, spawn)
		}
		wait = q.o.PollInterval
		if len(claimed) == size && err == nil {
			// A full claim may have left due jobs behind: look again at once.
			// A partial one took all that were due, and a job scheduled since
			// pushed a wake token, so the wait returns at once for it; an
			// immediate claim would come back empty (one round trip per job
			// when jobs trickle in). Failed jobs are rescheduled with backoff,
			// so an unreachable callee cannot make this spin.
			wait = 0
		}
	}
}

// waitForWork blocks on the wake list (BLPOP with a fractional timeout, sent
// raw because go-redis rounds BLPop's timeout up to whole seconds), or, when
// Redis does not answer, sleeps, so an outage is not a busy loop.
func (q *Queue) waitForWork(ctx context.Context, wait time.Duration) {
	// At most a second per block: well inside the client's read timeout.
	wait = min(wait, time.Second)
	err := q.rdb.Do(ctx, "blpop", q.keys[3], strconv.FormatFloat(wait.Seconds(), 'f', 3, 64)).Err()
	if err == nil || errors.Is(err, redis.Nil) || ctx.Err() != nil {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
}

// Depth is how many jobs wait or are in flight.
func (q *Queue) Depth(ctx context.Context) (int64, error) {
	return q.rdb.ZCard(ctx, q.keys[0]).Result()
}

// DeadLetters lists up to limit dead jobs, oldest first.
func (q *Queue) DeadLetters(ctx context.Context, limit int64) ([]Job, error) {
	jobs, _, err := q.DeadPage(ctx, 0, limit)
	return jobs, err
}

// DeadPage lists up to limit dead jobs from offset, oldest first, and how
// many there are in all.
func (q *Queue) DeadPage(ctx context.Context, offset, limit int64) ([]Job, int64, error) {
	var zs *redis.ZSliceCmd
	var total *redis.IntCmd
	if _, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		zs = p.ZRangeWithScores(ctx, q.keys[2], offset, offset+limit-1)
		total = p.ZCard(ctx, q.keys[2])
		return nil
	}); err != nil {
		return nil, 0, err
	}
	dead := zs.Val()
	if len(dead) == 0 {
		return nil, total.Val(), nil
	}
	pipe := q.rdb.Pipeline()
	fields := make([]*redis.SliceCmd, len(dead))
	for i, z := range dead {
		id, _ := z.Member.(string)
		fields[i] = pipe.HMGet(ctx, q.keys[1], id+":p", id+":t", id+":l", id+":a", id+":e")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, err
	}
	out := make([]Job, 0, len(dead))
	for i, z := range dead {
		id, _ := z.Member.(string)
		f := fields[i].Val()
		s := func(i int) string { v, _ := f[i].(string); return v }
		attempt, _ := strconv.Atoi(s(3))
		out = append(out, Job{ID: id, Payload: []byte(s(0)), Traceparent: s(1), LeadID: s(2), Attempt: attempt, LastError: s(4), DeadAt: time.UnixMilli(int64(z.Score))})
	}
	return out, total.Val(), nil
}

// Stats are a queue's counts.
type Stats struct {
	// Depth: waiting (due now or later) or in flight. Due: due now and not
	// claimed. Dead: dead letters.
	Depth, Due, Dead int64
}

// Stats counts the queue's jobs in one round trip. A claimed job's score is
// the end of its lease, so Due counts only unclaimed work (and jobs whose
// worker died, once their lease is over).
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var depth, due, dead *redis.IntCmd
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		depth = p.ZCard(ctx, q.keys[0])
		due = p.ZCount(ctx, q.keys[0], "-inf", strconv.FormatInt(q.o.Now().UnixMilli(), 10))
		dead = p.ZCard(ctx, q.keys[2])
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	return Stats{Depth: depth.Val(), Due: due.Val(), Dead: dead.Val()}, nil
}

var redriveScript = redis.NewScript(`
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1]..':a', 0, ARGV[1]..':d', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1`)

// Redrive puts a dead job back in the queue, due now, with its attempts reset.
func (q *Queue) Redrive(ctx context.Context, id string) (bool, error) {
	n, err := redriveScript.Run(ctx, q.rdb, q.keys, id, q.o.Now().UnixMilli()).Int()
	return n == 1, err
}
