package service

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/scoring/domain"
)

// Direct route hand-off: after a flush, a lead's RouteLead request goes
// straight to routing from a background deliverer instead of through the
// routing job queue, which saves the job's schedule, claim and ack and a
// queue hop. The job stays the fallback, so nothing is lost:
//
//   - the route effect stays in the lead's outbox, and its flush mark stays
//     set, until routing has answered (or the job is scheduled), so a crash
//     in between leaves the lead to the sweeper;
//   - a failed or timed-out call, or a lead routing refused, schedules the
//     job as before (retries, backoff, dead letters);
//   - after a failed call, hand-offs go through the job queue for a pause
//     (a breaker), so a blackholed routing costs the calls in flight one
//     timeout, not one timeout per batch;
//   - callers never wait for routing: the deliverer runs on its own, and a
//     full queue or a stopped deliverer sends hand-offs to the job queue.

// DirectRouteOptions tune the direct route hand-off.
type DirectRouteOptions struct {
	// Timeout bounds one RouteLeads call; zero turns the direct hand-off
	// off (every route hand-off goes through the job queue).
	Timeout time.Duration
	// Pause is how long hand-offs go through the job queue after a call
	// failed.
	Pause time.Duration
}

// directQueueMax bounds the hand-offs waiting for the deliverer; beyond it
// the flush schedules jobs (back-pressure without blocking callers).
const directQueueMax = 4096

// settleTimeout bounds the round trips that settle a batch, which run even
// when the deliverer is being stopped.
const settleTimeout = 5 * time.Second

// directRoute is one route hand-off waiting for the deliverer.
type directRoute struct {
	leadID, key, traceparent string
	rev                      int64 // revision of the flush that queued it
	req                      *routingv1.RouteLeadRequest
}

// directRouter is the deliverer's queue and breaker.
type directRouter struct {
	DirectRouteOptions
	mu     sync.Mutex
	queue  []directRoute
	closed bool
	wake   chan struct{}
	// pausedUntil (unix ns of the service clock) sends hand-offs to the job
	// queue after a failed call.
	pausedUntil atomic.Int64
	outcomes    metric.Int64Counter
}

func newDirectRouter(o DirectRouteOptions, m metric.Meter) *directRouter {
	if o.Timeout <= 0 {
		return nil
	}
	d := &directRouter{DirectRouteOptions: o, wake: make(chan struct{}, directFlights)}
	if m != nil {
		d.outcomes, _ = m.Int64Counter("leadflow.scoring.direct_route_handoffs",
			metric.WithDescription("Route hand-offs sent straight to routing, by outcome: delivered, or deferred to the job queue"))
	}
	return d
}

// usable reports whether a flush at now should hand route effects to the
// deliverer (on, and not paused by a failure).
func (d *directRouter) usable(now time.Time) bool {
	return d != nil && now.UnixNano() >= d.pausedUntil.Load()
}

// add queues rs for the deliverer; it returns the ones it could not take
// (deliverer stopped, or queue full).
func (d *directRouter) add(rs []directRoute) []directRoute {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return rs
	}
	n := min(len(rs), directQueueMax-len(d.queue))
	d.queue = append(d.queue, rs[:n]...)
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return rs[n:]
}

// take removes up to n queued hand-offs.
func (d *directRouter) take(n int) []directRoute {
	d.mu.Lock()
	defer d.mu.Unlock()
	n = min(n, len(d.queue))
	out := append([]directRoute(nil), d.queue[:n]...)
	d.queue = append(d.queue[:0], d.queue[n:]...)
	return out
}

// close stops the queue and returns what it held.
func (d *directRouter) close() []directRoute {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	out := d.queue
	d.queue = nil
	return out
}

func (d *directRouter) count(ctx context.Context, outcome string, n int) {
	if d.outcomes != nil && n > 0 {
		d.outcomes.Add(ctx, int64(n), outcomeAttrs.Of(outcome))
	}
}

// queueDirect hands the flushed plans' route effects to the deliverer; what
// it cannot take is scheduled as jobs now.
func (s *Scoring) queueDirect(ctx context.Context, rs []directRoute) error {
	if len(rs) == 0 {
		return nil
	}
	left := s.direct.add(rs)
	if len(left) == 0 {
		return nil
	}
	s.direct.count(ctx, "deferred", len(left))
	return s.deferToJobs(ctx, left)
}

// directFlights is how many RouteLeads calls the deliverer has in flight:
// at moderate load a hand-off goes at once instead of waiting for the call
// before it, and under load the calls still carry many leads each.
const directFlights = 4

// RunDirectRoutes is the deliverer: it sends queued route hand-offs until
// ctx is done, then schedules what is still queued as jobs.
func (s *Scoring) RunDirectRoutes(ctx context.Context) error {
	if s.direct == nil {
		return nil
	}
	var wg sync.WaitGroup
	for range directFlights {
		wg.Go(func() {
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-s.direct.wake:
					s.DeliverDirectRoutes(ctx)
				}
			}
		})
	}
	wg.Wait()
	if left := s.direct.close(); len(left) > 0 {
		s.deferDetached(ctx, left)
	}
	return nil
}

// deferDetached is deferToJobs even when ctx is cancelled (shutdown). On
// failure the hand-offs keep their outbox entries and flush marks, so a
// sweeper delivers them.
func (s *Scoring) deferDetached(ctx context.Context, rs []directRoute) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := s.deferToJobs(sctx, rs); err != nil {
		s.logger.WarnContext(sctx, "direct route hand-offs left to the sweeper", "count", len(rs), "error", err.Error())
	}
}

// DeliverDirectRoutes sends the queued route hand-offs, a RouteLeads call
// per batch, until none is queued, and returns how many it settled (tests
// call it in place of the deliverer).
func (s *Scoring) DeliverDirectRoutes(ctx context.Context) int {
	if s.direct == nil {
		return 0
	}
	n := 0
	for {
		batch := s.direct.take(routeLeadsMax)
		if len(batch) == 0 {
			return n
		}
		n += len(batch)
		if !s.direct.usable(s.now()) {
			// Queued before a call failed: they go to the job queue
			// without a call of their own.
			s.direct.count(ctx, "deferred", len(batch))
			s.deferDetached(ctx, batch)
			continue
		}
		s.deliverDirect(ctx, batch)
	}
}

// deliverDirect sends one batch and settles each hand-off: delivered ones
// are acknowledged and marked delivered in one round trip; the others are
// scheduled as jobs first, then acknowledged.
func (s *Scoring) deliverDirect(ctx context.Context, batch []directRoute) {
	batch = uniqueRoutes(batch)
	req := &routingv1.RouteLeadsRequest{Leads: make([]*routingv1.RouteLeadRequest, len(batch))}
	spans := make([]trace.Span, len(batch))
	for i, r := range batch {
		var sctx context.Context
		sctx, spans[i] = s.step(ctx, r.traceparent, "scoring.deliver.route", r.leadID)
		// Routing's spans of this lead nest under the delivery span.
		r.req.Traceparent = leadtrace.Traceparent(sctx)
		req.Leads[i] = r.req
	}
	cctx, cancel := context.WithTimeout(ctx, s.direct.Timeout)
	resp, err := s.routing.RouteLeads(cctx, req)
	cancel()
	errs := make([]error, len(batch))
	if err != nil {
		// A malformed lead refuses the whole call: the jobs then send each
		// lead alone, and routing is not at fault, so no pause.
		if status.Code(err) != codes.InvalidArgument {
			s.direct.pausedUntil.Store(s.now().Add(s.direct.Pause).UnixNano())
		}
		s.logger.WarnContext(ctx, "direct route hand-off failed; the job queue delivers it",
			"leads", len(batch), "pause", s.direct.Pause.String(), "error", err.Error())
		for i := range errs {
			errs[i] = err
		}
	} else {
		for i, e := range platform.ItemErrors(len(batch), resp.GetResults()) {
			errs[i] = classify(e)
		}
	}
	var done, deferred []directRoute
	for i, r := range batch {
		if errs[i] == nil {
			done = append(done, r)
		} else {
			deferred = append(deferred, r)
		}
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer scancel()
	var settleErr error
	if len(deferred) > 0 {
		settleErr = s.deferToJobs(sctx, deferred)
	}
	if len(done) > 0 {
		acks := make([]domain.Ack, len(done))
		for i, r := range done {
			acks[i] = domain.Ack{LeadID: r.leadID, Keys: []string{r.key}, Rev: r.rev, Delivered: true}
		}
		settleErr = errors.Join(settleErr, s.store.AckEffects(sctx, acks...))
	}
	if settleErr != nil {
		// Their outboxes and flush marks are kept: the sweeper sends them
		// again (routing answers a repeat with its decision).
		s.logger.WarnContext(ctx, "settling direct route hand-offs", "leads", len(batch), "error", settleErr.Error())
	}
	s.direct.count(ctx, "delivered", len(done))
	s.direct.count(ctx, "deferred", len(deferred))
	for i, span := range spans {
		outcome := "delivered"
		if errs[i] != nil {
			// Not a failure of the journey: the job delivers it.
			outcome = "deferred_to_job"
			span.RecordError(errs[i])
		}
		end(span, outcome, settleErr)
	}
}

// uniqueRoutes drops repeats of a hand-off (a retried call and the sweeper
// can queue one twice).
func uniqueRoutes(rs []directRoute) []directRoute {
	seen := make(map[string]bool, len(rs))
	out := rs[:0]
	for _, r := range rs {
		if !seen[r.key] {
			seen[r.key] = true
			out = append(out, r)
		}
	}
	return out
}

// deferToJobs schedules hand-offs as routing jobs (one round trip), then
// acknowledges them (one more): the job queue delivers them from there.
func (s *Scoring) deferToJobs(ctx context.Context, rs []directRoute) error {
	js := make([]jobs.Job, len(rs))
	for i, r := range rs {
		r.req.Traceparent = "" // the job's delivery span sets it
		b, err := proto.Marshal(r.req)
		if err != nil {
			return err
		}
		js[i] = jobs.Job{ID: r.key, Payload: b, Traceparent: r.traceparent, LeadID: r.leadID}
	}
	err := s.events.PublishAll(ctx, nil, func(pipe redis.Pipeliner) error {
		for _, j := range js {
			if err := s.routingQ.ScheduleOn(ctx, pipe, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	acks := make([]domain.Ack, len(rs))
	for i, r := range rs {
		acks[i] = domain.Ack{LeadID: r.leadID, Keys: []string{r.key}, Rev: r.rev}
	}
	return s.store.AckEffects(ctx, acks...)
}
