// Package consumer reads the lifecycle event stream into reporting's
// aggregates through a Redis consumer group: at-least-once delivery,
// idempotent apply by event id, pending entries of a dead consumer claimed
// back with XAUTOCLAIM, poison entries dead-lettered, the stream trimmed by
// retention. It also replays the stream into a fresh generation (Rebuild).
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/reporting/domain"
	"github.com/leadflow/leadflow/services/reporting/store"
)

// Group is the consumer group reporting reads the stream with.
const Group = "reporting"

// Options configure a Consumer; zero values take the defaults.
type Options struct {
	// Name of this consumer in the group; default "<hostname>-<pid>".
	Name string
	// Batch is the most entries read at once; default 1000.
	Batch int64
	// Block is how long a read waits for new entries; default 2s.
	Block time.Duration
	// Linger is how long Run waits after a read that was not full before it
	// reads again, so that entries trickling in are applied together: one
	// read, one apply and one acknowledgement per Linger instead of per
	// entry. The first entry after a quiet spell is still applied at once.
	// 0: read again at once.
	Linger time.Duration
	// ClaimMinIdle is how long an entry must sit pending (unacked by a
	// crashed or stuck consumer) before it is claimed back; default 1m.
	ClaimMinIdle time.Duration
	// ClaimInterval is how often pending entries are checked; default 15s.
	ClaimInterval time.Duration
	// MaxDeliveries: an entry delivered this many times that still fails
	// (or delivered more often, e.g. because it crashed its consumer) goes
	// to the dead-letter stream; default 5.
	MaxDeliveries int64
	// Retention: entries older than this are trimmed (XTRIM MINID ~), never
	// past an entry the group has not acknowledged; 0 keeps everything.
	Retention time.Duration
	// TrimInterval is how often trimming runs; default 1m.
	TrimInterval time.Duration
	// Now is the clock (tests).
	Now func() time.Time
	// Sleep waits for d or ctx's end: the linger (tests control it).
	Sleep  func(ctx context.Context, d time.Duration)
	Meter  metric.Meter
	Logger *slog.Logger
	// Tracer makes one span per applied event in the lead's journey trace
	// (a child of the span that published it); default no-op.
	Tracer trace.Tracer
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = DefaultName()
	}
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.Block <= 0 {
		o.Block = 2 * time.Second
	}
	if o.ClaimMinIdle <= 0 {
		o.ClaimMinIdle = time.Minute
	}
	if o.ClaimInterval <= 0 {
		o.ClaimInterval = 15 * time.Second
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = 5
	}
	if o.TrimInterval <= 0 {
		o.TrimInterval = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Meter == nil {
		o.Meter = noop.NewMeterProvider().Meter("reporting")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tracer == nil {
		o.Tracer = tracenoop.NewTracerProvider().Tracer("reporting")
	}
}

// DefaultName is "<hostname>-<pid>": unique per process, so a restarted
// instance never mistakes a dead one's pending entries for its own.
func DefaultName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "reporting"
	}
	return h + "-" + strconv.Itoa(os.Getpid())
}

// sleep waits for d or ctx's end.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Consumer applies the stream to the aggregates.
type Consumer struct {
	rdb   redis.UniversalClient
	store *store.Store
	opt   Options
	m     *metrics

	mu  sync.Mutex
	gen int64 // cached serving generation; 0 = unknown
}

// New returns a consumer. Call Run, or the single steps (Ensure, ReadOnce,
// ClaimOnce, TrimOnce) in tests.
func New(rdb redis.UniversalClient, st *store.Store, opt Options) (*Consumer, error) {
	opt.defaults()
	c := &Consumer{rdb: rdb, store: st, opt: opt}
	m, err := newMetrics(opt.Meter, c)
	if err != nil {
		return nil, err
	}
	c.m = m
	return c, nil
}

// Name is the consumer's name in the group.
func (c *Consumer) Name() string { return c.opt.Name }

// Ensure creates the consumer group (reading from the stream's first entry)
// and the stream if missing.
func (c *Consumer) Ensure(ctx context.Context) error {
	err := c.rdb.XGroupCreateMkStream(ctx, events.StreamKey, Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group: %w", err)
	}
	return nil
}

// Run consumes until ctx is done: first its own pending entries (again after
// every error), then new entries, claiming back stale pending entries and
// trimming on schedule.
// Redis failures are logged and retried with backoff; Run returns only when
// ctx is done.
func (c *Consumer) Run(ctx context.Context) error {
	log := c.opt.Logger.With("consumer", c.opt.Name)
	backoff := func(attempt int) time.Duration {
		d := 100 * time.Millisecond << min(attempt, 6)
		return min(d, 5*time.Second)
	}
	var lastClaim, lastTrim time.Time
	failures := 0
	ownDone, ensured := false, false
	for ctx.Err() == nil {
		err := func() error {
			if !ensured {
				if err := c.Ensure(ctx); err != nil {
					return err
				}
				ensured = true
			}
			if !ownDone {
				if _, err := c.readOwnPending(ctx); err != nil {
					return err
				}
				ownDone = true
			}
			now := c.opt.Now()
			// A failed claim or trim waits for its next interval: new
			// entries keep flowing meanwhile.
			if now.Sub(lastClaim) >= c.opt.ClaimInterval {
				lastClaim = now
				if _, err := c.ClaimOnce(ctx); err != nil {
					return err
				}
			}
			if c.opt.Retention > 0 && now.Sub(lastTrim) >= c.opt.TrimInterval {
				lastTrim = now
				if _, err := c.TrimOnce(ctx); err != nil {
					return err
				}
			}
			n, err := c.ReadOnce(ctx, c.opt.Block)
			if err == nil && n > 0 && int64(n) < c.opt.Batch && c.opt.Linger > 0 {
				c.opt.Sleep(ctx, c.opt.Linger)
			}
			return err
		}()
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			break
		}
		failures++
		// Entries delivered to this consumer may be pending without having
		// been applied (a lost reply, a failed apply): go through them again
		// after the backoff instead of waiting for a claim.
		ownDone = false
		if redis.HasErrorPrefix(err, "NOGROUP") {
			ensured = false // the stream or group was deleted: create it again
		}
		log.WarnContext(ctx, "event stream consumer", "error", err.Error(), "attempt", failures)
		sleep(ctx, backoff(failures))
	}
	return nil
}

// ReadOnce reads and processes at most one batch of new entries, waiting up
// to block for them (block < 0: do not wait). It returns how many entries it
// read.
func (c *Consumer) ReadOnce(ctx context.Context, block time.Duration) (int, error) {
	if block == 0 {
		block = -1 // go-redis: Block 0 would wait forever
	}
	args := &redis.XReadGroupArgs{Group: Group, Consumer: c.opt.Name, Streams: []string{events.StreamKey, ">"}, Count: c.opt.Batch}
	if block > 0 {
		args.Block = block
	} else {
		args.Block = -1
	}
	res, err := c.rdb.XReadGroup(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range res {
		n += len(s.Messages)
		if err := c.process(ctx, s.Messages, nil); err != nil {
			return n, err
		}
	}
	return n, nil
}

// readOwnPending re-processes entries delivered to this consumer name but
// never acknowledged (a restart with a fixed name).
func (c *Consumer) readOwnPending(ctx context.Context) (int, error) {
	total := 0
	start := "0"
	for {
		res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: Group, Consumer: c.opt.Name,
			Streams: []string{events.StreamKey, start}, Count: c.opt.Batch, Block: -1}).Result()
		if errors.Is(err, redis.Nil) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			return total, nil
		}
		msgs := res[0].Messages
		counts, err := c.deliveries(ctx, msgs)
		if err != nil {
			return total, err
		}
		if err := c.process(ctx, msgs, counts); err != nil {
			return total, err
		}
		total += len(msgs)
		start = msgs[len(msgs)-1].ID
	}
}

// ClaimOnce walks the whole pending list once with XAUTOCLAIM, taking over
// entries idle for at least ClaimMinIdle (their consumer died or hangs) and
// processing them. It returns how many it claimed.
func (c *Consumer) ClaimOnce(ctx context.Context) (int, error) {
	total := 0
	start := "0-0"
	for {
		msgs, next, err := c.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: events.StreamKey, Group: Group,
			MinIdle: c.opt.ClaimMinIdle, Start: start, Count: c.opt.Batch, Consumer: c.opt.Name}).Result()
		if err != nil {
			return total, err
		}
		// Entries deleted from the stream while pending come back with no
		// values: nothing left to apply; acknowledge them.
		live := msgs[:0]
		var gone []string
		for _, m := range msgs {
			if m.Values == nil {
				gone = append(gone, m.ID)
				continue
			}
			live = append(live, m)
		}
		if len(gone) > 0 {
			if err := c.rdb.XAck(ctx, events.StreamKey, Group, gone...).Err(); err != nil {
				return total, err
			}
		}
		if len(live) > 0 {
			c.m.claimed.Add(ctx, int64(len(live)))
			counts, err := c.deliveries(ctx, live)
			if err != nil {
				return total, err
			}
			if err := c.process(ctx, live, counts); err != nil {
				return total, err
			}
			total += len(live)
		}
		if next == "0-0" || next == "" {
			return total, nil
		}
		start = next
	}
}

// deliveries returns the delivery count of each pending entry.
func (c *Consumer) deliveries(ctx context.Context, msgs []redis.XMessage) (map[string]int64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	pend, err := c.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: events.StreamKey, Group: Group,
		Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(len(msgs)) * 2, Consumer: c.opt.Name}).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(pend))
	for _, p := range pend {
		out[p.ID] = p.RetryCount
	}
	return out, nil
}

type pendingApply struct {
	msg redis.XMessage
	ev  *eventsv1.LeadEvent
	se  store.Event
}

// process decodes and applies msgs, acknowledges what was applied (or was a
// duplicate), dead-letters poison entries, and leaves failures pending for a
// later claim. deliveries (nil for first deliveries) holds delivery counts.
func (c *Consumer) process(ctx context.Context, msgs []redis.XMessage, deliveries map[string]int64) error {
	var batch []pendingApply
	for _, m := range msgs {
		n := deliveries[m.ID]
		if n > c.opt.MaxDeliveries {
			if err := c.deadLetter(ctx, m, fmt.Sprintf("deliveries: %d, more than %d", n, c.opt.MaxDeliveries), n); err != nil {
				return err
			}
			continue
		}
		ev, err := events.Decode(m.Values)
		if err != nil {
			if err := c.deadLetter(ctx, m, "decode: "+err.Error(), n); err != nil {
				return err
			}
			continue
		}
		ops, err := domain.Ops(ev)
		if err != nil {
			if err := c.deadLetter(ctx, m, err.Error(), n); err != nil {
				return err
			}
			continue
		}
		batch = append(batch, pendingApply{msg: m, ev: ev, se: store.Event{
			ID: ev.GetId(), LeadID: ev.GetLeadId(), Raw: rawOf(m.Values), StreamID: m.ID, Ops: ops}})
	}
	steps := c.startSteps(ctx, batch)
	results, err := c.apply(ctx, batch)
	if err != nil {
		for _, st := range steps {
			leadtrace.Fail(st.span, err)
			st.span.End()
		}
		return err
	}
	for _, st := range steps {
		st.end(results)
	}
	var ack []string
	var firstErr error
	for i, r := range results {
		p := batch[i]
		switch {
		case r.Err != nil:
			c.m.processed.Add(ctx, 1, outcomeAttrs.Of("failed"))
			if n := deliveries[p.msg.ID]; n >= c.opt.MaxDeliveries {
				if err := c.deadLetter(ctx, p.msg, fmt.Sprintf("deliveries: %d, last error: %v", n, r.Err), n); err != nil {
					return err
				}
			} else if firstErr == nil {
				firstErr = fmt.Errorf("apply event %s: %w", p.ev.GetId(), r.Err)
			}
		case r.Status == store.Duplicate:
			c.m.processed.Add(ctx, 1, outcomeAttrs.Of("duplicate"))
			ack = append(ack, p.msg.ID)
		default:
			c.m.processed.Add(ctx, 1, outcomeAttrs.Of("applied"))
			c.m.headline(ctx, p.ev, r.FirstGroups)
			ack = append(ack, p.msg.ID)
		}
	}
	if len(ack) > 0 {
		if err := c.rdb.XAck(ctx, events.StreamKey, Group, ack...).Err(); err != nil {
			return err
		}
	}
	return firstErr
}

// AttrEvents lists the kinds of the events a reporting.apply span covers.
const AttrEvents = "leadflow.reporting.events"

// applyStep is the reporting.apply span of the events of a batch that one
// step of a lead's journey published (the same traceparent: e.g. scoring's
// lead_scored and mql_reached, routing's lead_routed and lead_assigned).
type applyStep struct {
	span  trace.Span
	items []int // indexes into the batch
}

// startSteps starts one journey step per publishing step in the batch:
// reporting saw its events. One span per step instead of one per event
// keeps the lead's trace as informative at a quarter fewer spans.
func (c *Consumer) startSteps(ctx context.Context, batch []pendingApply) []*applyStep {
	var steps []*applyStep
	byParent := map[string]*applyStep{}
	for i, p := range batch {
		key := p.ev.GetLeadId() + " " + p.ev.GetTraceparent()
		st := byParent[key]
		if st == nil || p.ev.GetTraceparent() == "" {
			st = &applyStep{}
			steps = append(steps, st)
			byParent[key] = st
		}
		st.items = append(st.items, i)
	}
	for _, st := range steps {
		p := batch[st.items[0]]
		kinds := make([]string, len(st.items))
		for j, i := range st.items {
			kinds[j] = domain.Kind(batch[i].ev)
		}
		_, st.span = leadtrace.Start(ctx, c.opt.Tracer, p.ev.GetTraceparent(), "reporting.apply", p.ev.GetLeadId())
		st.span.SetAttributes(attribute.StringSlice(AttrEvents, kinds))
	}
	return steps
}

// end ends the step's span with its events' outcome: failed when one
// failed, applied when one was applied, else duplicate.
func (st *applyStep) end(results []store.Result) {
	outcome := "duplicate"
	for _, i := range st.items {
		if r := results[i]; r.Err != nil {
			leadtrace.Fail(st.span, r.Err)
			st.span.End()
			return
		} else if r.Status != store.Duplicate {
			outcome = "applied"
		}
	}
	leadtrace.SetOutcome(st.span, outcome)
	st.span.End()
}

// apply applies a batch to the serving generation, following a swap.
func (c *Consumer) apply(ctx context.Context, batch []pendingApply) ([]store.Result, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	evs := make([]store.Event, len(batch))
	for i := range batch {
		evs[i] = batch[i].se
	}
	out := make([]store.Result, len(batch))
	todo := make([]int, len(batch))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; attempt < 3 && len(todo) > 0; attempt++ {
		gen, err := c.generation(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		sub := make([]store.Event, len(todo))
		for j, i := range todo {
			sub[j] = evs[i]
		}
		res, err := c.store.Apply(ctx, gen, true, sub)
		if err != nil {
			return nil, err
		}
		var stale []int
		for j, i := range todo {
			out[i] = res[j]
			if errors.Is(res[j].Err, store.ErrStaleGeneration) {
				stale = append(stale, i)
			}
		}
		todo = stale
	}
	return out, nil
}

func (c *Consumer) generation(ctx context.Context, reload bool) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != 0 && !reload {
		return c.gen, nil
	}
	g, err := c.store.Generation(ctx)
	if err != nil {
		return 0, err
	}
	c.gen = g
	return g, nil
}

// deadLetter moves an entry to the dead-letter stream and acknowledges it,
// in one MULTI (both keys share the {events} slot).
func (c *Consumer) deadLetter(ctx context.Context, m redis.XMessage, reason string, deliveries int64) error {
	vals := []any{"stream_id", m.ID, "reason", reason, "deliveries", deliveries, "consumer", c.opt.Name,
		"at", c.opt.Now().UnixMilli()}
	if raw := rawOf(m.Values); raw != nil {
		vals = append(vals, events.Field, raw)
	}
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: events.DeadLetterKey, Values: vals})
		p.XAck(ctx, events.StreamKey, Group, m.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", m.ID, err)
	}
	c.m.processed.Add(ctx, 1, outcomeAttrs.Of("dead_letter"))
	c.opt.Logger.WarnContext(ctx, "event dead-lettered", "stream_id", m.ID, "reason", reason, "deliveries", deliveries)
	return nil
}

func rawOf(values map[string]any) []byte {
	switch v := values[events.Field].(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	}
	return nil
}

// TrimOnce trims entries older than the retention, never past the oldest
// entry the group has not acknowledged or not yet read. It returns the
// MINID used ("" when nothing may be trimmed).
func (c *Consumer) TrimOnce(ctx context.Context) (string, error) {
	if c.opt.Retention <= 0 {
		return "", nil
	}
	cut := c.opt.Now().Add(-c.opt.Retention).UnixMilli()
	groups, err := c.rdb.XInfoGroups(ctx, events.StreamKey).Result()
	if err != nil {
		return "", err
	}
	var g *redis.XInfoGroup
	for i := range groups {
		if groups[i].Name == Group {
			g = &groups[i]
		}
	}
	if g == nil {
		return "", nil // the group must read the stream first
	}
	minID := fmt.Sprintf("%d-0", cut)
	if last := g.LastDeliveredID; store.LessStreamID(last, minID) {
		// Not yet read past the cut: keep everything after the last read one.
		minID = last
	}
	if g.Pending > 0 {
		p, err := c.rdb.XPending(ctx, events.StreamKey, Group).Result()
		if err != nil {
			return "", err
		}
		if store.LessStreamID(p.Lower, minID) {
			minID = p.Lower
		}
	}
	if minID == "0-0" || minID == "" {
		return "", nil
	}
	n, err := c.rdb.XTrimMinIDApprox(ctx, events.StreamKey, minID, 0).Result()
	if err != nil {
		return "", err
	}
	c.m.trimmed.Add(ctx, n)
	return minID, nil
}
