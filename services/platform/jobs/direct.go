package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/telemetry"
)

// Direct delivery: a job scheduled by the process that will deliver it is
// written "born claimed" by that process (attempt 1, a claim token, and due
// only when its lease is over), and handed in memory to the process's
// deliverer, which runs the queue's batch handler on it at once and settles
// it with the token, as a worker settles a job it claimed. This saves the
// claim, the wake-up and a queue hop per job, and nothing is lost:
//
//   - the job is in Redis, written with the caller's other writes, before
//     the caller answers; if the process dies before delivering it, its
//     lease runs out and a worker of any process takes it, as it would a
//     job whose worker died;
//   - a failed delivery is retried by the workers with the queue's backoff
//     and dead letters, and pauses direct delivery for a while (a breaker),
//     so jobs then go to the workers at once;
//   - what the deliverer cannot take (stopped, or its queue full) is
//     released: due now, for the workers.

// DirectOptions tune direct delivery; zero values take the defaults.
type DirectOptions struct {
	// Timeout bounds one delivery (the handler's call); zero turns direct
	// delivery off.
	Timeout time.Duration
	// Pause is how long jobs go to the workers after a delivery failed
	// (default 10s).
	Pause time.Duration
	// Lease is how long a born-claimed job waits for the deliverer before
	// the workers may take it (default 5s). It must exceed Timeout.
	Lease time.Duration
	// Flights is how many batches the deliverer has in flight (default 4).
	Flights int
}

// directQueueMax bounds the jobs waiting for the deliverer; beyond it they
// are released to the workers (back-pressure without blocking callers).
const directQueueMax = 4096

// settleTimeout bounds the round trips that settle a direct batch or
// release jobs, which run even while the deliverer is being stopped.
const settleTimeout = 5 * time.Second

// direct is a queue's deliverer state.
type direct struct {
	DirectOptions
	mu      sync.Mutex
	pending []bornJob
	running bool
	wake    chan struct{}
	// pausedUntil (unix ns of the queue's clock) sends jobs to the workers
	// after a failed delivery.
	pausedUntil atomic.Int64
	outcomes    metric.Int64Counter
}

// paused reports whether a failed delivery sends jobs to the workers at now.
func (d *direct) paused(now time.Time) bool { return now.UnixNano() < d.pausedUntil.Load() }

// bornJob is a born-claimed job waiting for the deliverer.
type bornJob struct {
	claimed
	born time.Time
}

// Born is a job scheduled born claimed on a pipeline; Hand takes it once
// the pipeline has run.
type Born struct {
	job claimed
	cmd *redis.Cmd
}

// CheckDirect checks direct-delivery settings a service reads from the
// variables prefix_TIMEOUT and prefix_PAUSE; errors name the variable.
func CheckDirect(prefix string, o DirectOptions) error {
	var errs []error
	if o.Timeout < 0 || o.Timeout > time.Minute {
		errs = append(errs, fmt.Errorf("%s_TIMEOUT: must be between 0 (off) and 1m", prefix))
	}
	if o.Timeout > 0 && o.Pause <= 0 {
		errs = append(errs, fmt.Errorf("%s_PAUSE: must be positive", prefix))
	}
	return errors.Join(errs...)
}

// PerJob makes a one-job handler a BatchHandler for RunDirect: the jobs of
// a batch run at once, each in its own delivery span's context, as Run
// would run them.
func PerJob(h Handler) BatchHandler {
	return func(ctx context.Context, js []Job) []error {
		errs := make([]error, len(js))
		var wg sync.WaitGroup
		for i, j := range js {
			wg.Go(func() { errs[i] = safeRun(leadtrace.ContextWith(ctx, j.Traceparent), h, j) })
		}
		wg.Wait()
		return errs
	}
}

// EnableDirect turns on direct delivery for q with o (off when o.Timeout is
// zero); RunDirect runs the deliverer. It returns q.
func (q *Queue) EnableDirect(o DirectOptions) *Queue {
	if o.Timeout <= 0 {
		q.direct = nil
		return q
	}
	if o.Pause <= 0 {
		o.Pause = 10 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 5 * time.Second
	}
	// A job waits at most half its lease in memory, then a delivery takes
	// up to Timeout: both must end before a worker may take it.
	o.Lease = max(o.Lease, 2*o.Timeout+o.Timeout/2)
	if o.Flights <= 0 {
		o.Flights = 4
	}
	d := &direct{DirectOptions: o, wake: make(chan struct{}, o.Flights)}
	d.outcomes, _ = q.o.Meter.Int64Counter("leadflow.jobs.direct",
		metric.WithDescription("jobs handed to the scheduling process's own deliverer, by outcome: delivered, or deferred to the workers"))
	q.direct = d
	return q
}

// DirectUsable reports whether a job scheduled now would be born claimed:
// direct delivery is on, its deliverer runs and it is not paused.
func (q *Queue) DirectUsable() bool {
	d := q.direct
	if d == nil || d.paused(q.o.Now()) {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running
}

var directAttrs = telemetry.NewAttrs("queue", "outcome")

func (q *Queue) countDirect(ctx context.Context, outcome string, n int) {
	if n > 0 {
		q.direct.outcomes.Add(ctx, int64(n), directAttrs.Of(q.name, outcome))
	}
}

// ScheduleDirectOn is ScheduleOn for a job this process would deliver
// itself: when DirectUsable, the job is written born claimed and the Born
// returned is to be given to Hand after pipe has run; otherwise the job is
// scheduled as ScheduleOn does and the Born is nil.
func (q *Queue) ScheduleDirectOn(ctx context.Context, pipe redis.Pipeliner, j Job) (*Born, error) {
	if !q.DirectUsable() {
		return nil, q.ScheduleOn(ctx, pipe, j)
	}
	c := claimed{Job: j, token: "d" + newToken(), direct: true}
	args, due, err := q.scheduleArgs(j, c.token)
	if err != nil {
		return nil, err
	}
	c.Due, c.Attempt = due, 1
	// EVAL, not EVALSHA: see ScheduleOn.
	return &Born{job: c, cmd: scheduleScript.Eval(ctx, pipe, q.keys, args...)}, nil
}

// Hand gives the deliverer the jobs of bs that were written born claimed
// (a nil Born, or a job whose id existed already, is skipped). Call it after
// the pipeline of ScheduleDirectOn ran without error. A job the deliverer
// cannot take is released to the workers.
func (q *Queue) Hand(ctx context.Context, bs ...*Born) {
	if q == nil || q.direct == nil || len(bs) == 0 {
		return
	}
	d := q.direct
	var take []bornJob
	for _, b := range bs {
		if b != nil && b.cmd.Err() == nil && b.cmd.Val() == int64(1) {
			take = append(take, bornJob{claimed: b.job, born: q.o.Now()})
		}
	}
	if len(take) == 0 {
		return
	}
	d.mu.Lock()
	n := 0
	if d.running {
		n = min(len(take), directQueueMax-len(d.pending))
		d.pending = append(d.pending, take[:n]...)
	}
	d.mu.Unlock()
	if n > 0 {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	if left := take[n:]; len(left) > 0 {
		q.countDirect(ctx, "deferred", len(left))
		q.release(ctx, left)
	}
}

// releaseScript makes born-claimed jobs (id, token pairs) due now for the
// workers, undoing the attempt their birth counted, and wakes a worker.
var releaseScript = redis.NewScript(`
for i = 1, #ARGV - 1, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id .. ':c') == ARGV[i + 1] then
    redis.call('HSET', KEYS[2], id .. ':c', '')
    redis.call('HINCRBY', KEYS[2], id .. ':a', -1)
    redis.call('ZADD', KEYS[1], ARGV[#ARGV], id)
  end
end
if redis.call('LLEN', KEYS[4]) < 8 then redis.call('RPUSH', KEYS[4], 1) end
return 0`)

// release hands born-claimed jobs to the workers in one round trip. On
// failure they are the workers' anyway once their lease is over.
func (q *Queue) release(ctx context.Context, bs []bornJob) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	args := make([]any, 0, 2*len(bs)+1)
	for _, b := range bs {
		args = append(args, b.ID, b.token)
	}
	args = append(args, q.o.Now().UnixMilli())
	if err := releaseScript.Run(sctx, q.rdb, q.keys, args...).Err(); err != nil {
		q.o.Logger.WarnContext(ctx, "releasing direct jobs failed; the workers take them after their lease", "queue", q.name, "jobs", len(bs), "error", err.Error())
	}
}

// take removes up to n jobs for delivery. The ones that waited for more
// than half their lease are dropped from memory (counted in stale): a
// worker could take them before a delivery ended, so the workers take them
// once the lease is over.
func (d *direct) take(n int, now time.Time) (out []claimed, stale int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := 0
	for ; i < len(d.pending) && len(out) < n; i++ {
		if now.Sub(d.pending[i].born) < d.Lease/2 {
			out = append(out, d.pending[i].claimed)
		} else {
			stale++
		}
	}
	d.pending = append(d.pending[:0], d.pending[i:]...)
	return out, stale
}

// RunDirect is the deliverer of direct jobs: it delivers what Hand gives it
// through h, a batch (at most Options.Batch jobs) per call, with up to
// Flights batches in flight, until ctx is done. Then it lets the batches in
// flight end, and releases what is still waiting to the workers. It returns
// at once when direct delivery is off.
func (q *Queue) RunDirect(ctx context.Context, h BatchHandler) error {
	d := q.direct
	if d == nil {
		return nil
	}
	d.mu.Lock()
	d.running = true
	d.mu.Unlock()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		// From the stop on, new jobs are scheduled for the workers.
		select {
		case <-ctx.Done():
			d.mu.Lock()
			d.running = false
			d.mu.Unlock()
		case <-stopped:
		}
	}()
	var wg sync.WaitGroup
	for range d.Flights {
		wg.Go(func() {
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-d.wake:
					q.DeliverDirect(ctx, h)
				}
			}
		})
	}
	wg.Wait()
	d.mu.Lock()
	d.running = false
	left := d.pending
	d.pending = nil
	d.mu.Unlock()
	if len(left) > 0 {
		q.countDirect(ctx, "deferred", len(left))
		q.release(ctx, left)
	}
	return nil
}

// DeliverDirect delivers the waiting direct jobs through h until none is
// waiting or ctx is done, and returns how many it delivered or deferred
// (tests call it in place of RunDirect's flights). During a pause they are
// released to the workers without a call. A batch it has begun is delivered
// and settled even when ctx ends meanwhile (bounded by Timeout).
func (q *Queue) DeliverDirect(ctx context.Context, h BatchHandler) int {
	d := q.direct
	if d == nil {
		return 0
	}
	bctx := context.WithoutCancel(ctx)
	n := 0
	for ctx.Err() == nil {
		now := q.o.Now()
		cs, stale := d.take(q.o.Batch, now)
		q.countDirect(ctx, "deferred", stale)
		n += stale
		if len(cs) == 0 {
			return n
		}
		n += len(cs)
		if d.paused(now) {
			bs := make([]bornJob, len(cs))
			for i, c := range cs {
				bs[i] = bornJob{claimed: c}
			}
			q.countDirect(ctx, "deferred", len(cs))
			q.release(ctx, bs)
			continue
		}
		errs, err := q.runBatchFor(bctx, h, cs, d.Timeout)
		failed := 0
		for _, e := range errs {
			var perm permanentError
			if e != nil && !errors.As(e, &perm) {
				failed++
			}
		}
		if failed > 0 {
			// The callee failed (not a malformed job): the workers deliver
			// with backoff meanwhile, so a dead callee costs one timeout.
			d.pausedUntil.Store(q.o.Now().Add(d.Pause).UnixNano())
			q.o.Logger.WarnContext(ctx, "direct delivery failed; the workers retry it", "queue", q.name, "jobs", failed, "pause", d.Pause.String())
		}
		if err != nil {
			q.o.Logger.WarnContext(ctx, "direct jobs not settled; retried after their lease", "queue", q.name, "error", err.Error())
		}
		q.countDirect(ctx, "delivered", len(cs)-failed)
		q.countDirect(ctx, "deferred", failed)
	}
	return n
}
