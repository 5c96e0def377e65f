package service

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/coalesce"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/scoring/domain"
	"github.com/leadflow/leadflow/services/scoring/pbconv"
)

// RoutingClient is the part of routing's client scoring uses.
type RoutingClient interface {
	RouteLead(ctx context.Context, in *routingv1.RouteLeadRequest, opts ...grpc.CallOption) (*routingv1.RouteLeadResponse, error)
	RouteLeads(ctx context.Context, in *routingv1.RouteLeadsRequest, opts ...grpc.CallOption) (*routingv1.RouteLeadsResponse, error)
	ReleaseLead(ctx context.Context, in *routingv1.ReleaseLeadRequest, opts ...grpc.CallOption) (*routingv1.ReleaseLeadResponse, error)
}

// PipelineClient is the part of pipeline's client scoring uses.
type PipelineClient interface {
	CreateDealFromLead(ctx context.Context, in *pipelinev1.CreateDealFromLeadRequest, opts ...grpc.CallOption) (*pipelinev1.CreateDealFromLeadResponse, error)
}

// Queue names (keys lf:{jobs:<name>}:*).
const (
	RoutingQueue  = "scoring-routing"
	PipelineQueue = "scoring-pipeline"
)

// flush delivers the record's outbox: events are published (with the ids
// chosen before the write), hand-off jobs are scheduled (idempotent by job
// id); delivered effects are then acknowledged and the lead's flush mark is
// cleared. Flushes running at the same time are coalesced: one pipeline
// publishes and schedules for all of them, one more acknowledges them. Any
// failure leaves the rest for a retry of the call or for the sweeper.
func (s *Scoring) flush(ctx context.Context, rec *domain.Record) error {
	if len(rec.Outbox) == 0 {
		return nil
	}
	p, err := s.plan(ctx, rec)
	if err != nil {
		return err
	}
	_, err = s.flusher.Do(ctx, p)
	return err
}

// flushBatch bounds the leads one coalesced flush serves.
const flushBatch = 128

// flushPlan is what flushing one record sends.
type flushPlan struct {
	rec      *domain.Record
	evs      []*eventsv1.LeadEvent
	sched    []scheduledJob
	acked    []string
	handoffs []string      // kinds, for the metric
	direct   []directRoute // route effects for the deliverer (not acked here)
}

type scheduledJob struct {
	q   *jobs.Queue
	job jobs.Job
}

// plan builds a record's flush; events are prepared with the caller's
// context (its trace and actor), as the flush itself runs for many callers.
func (s *Scoring) plan(ctx context.Context, rec *domain.Record) (*flushPlan, error) {
	p := &flushPlan{rec: rec}
	var profile *leadv1.LeadProfile
	for i := range rec.Outbox {
		e := &rec.Outbox[i]
		if !e.Kind.IsJob() {
			ev := pbconv.Event(rec, e)
			if err := s.events.Prepare(ctx, ev); err != nil {
				return nil, err
			}
			p.evs = append(p.evs, ev)
			p.acked = append(p.acked, ev.GetId())
			continue
		}
		// No "delivered already?" read here: scheduling is idempotent by
		// job id, and a job scheduled again after it was delivered (a retry
		// or the sweeper after a crash) is skipped by its handler, which
		// checks the delivered mark.
		if profile == nil {
			profile = &leadv1.LeadProfile{}
			if err := proto.Unmarshal(rec.ProfileRaw, profile); err != nil {
				return nil, fmt.Errorf("decode stored profile of %s: %w", rec.LeadID, err)
			}
		}
		if e.Kind == domain.EffectRouteLead && s.direct.usable(s.now()) && !superseded(rec, e.Key) {
			p.direct = append(p.direct, directRoute{leadID: rec.LeadID, key: e.Key, traceparent: rec.Traceparent, rev: rec.Rev, req: routeRequest(profile, e)})
			continue
		}
		q, payload, err := s.jobFor(rec, profile, e)
		if err != nil {
			return nil, err
		}
		p.sched = append(p.sched, scheduledJob{q, jobs.Job{ID: e.Key, Payload: payload, Traceparent: rec.Traceparent, LeadID: rec.LeadID}})
		p.acked = append(p.acked, e.Key)
		if e.Kind != domain.EffectRouteLead {
			p.handoffs = append(p.handoffs, strings.TrimPrefix(string(e.Kind), "job."))
		}
	}
	return p, nil
}

// flushAll sends the plans of many records: events and hand-offs in one
// round trip, then the acknowledgements in one more.
func (s *Scoring) flushAll(ctx context.Context, ps []*flushPlan) []coalesce.Result[struct{}] {
	out := make([]coalesce.Result[struct{}], len(ps))
	fail := func(err error) []coalesce.Result[struct{}] {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	var evs []*eventsv1.LeadEvent
	for _, p := range ps {
		evs = append(evs, p.evs...)
	}
	// Both are safe to repeat (events carry their ids, jobs are scheduled
	// once per id), so when part of it fails, nothing is acknowledged and a
	// retry sends it all again.
	borns := map[*jobs.Queue][]*jobs.Born{}
	err := s.events.PublishAll(ctx, evs, func(pipe redis.Pipeliner) error {
		for _, p := range ps {
			for _, j := range p.sched {
				b, err := j.q.ScheduleDirectOn(ctx, pipe, j.job)
				if err != nil {
					return err
				}
				borns[j.q] = append(borns[j.q], b)
			}
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	for q, bs := range borns {
		q.Hand(ctx, bs...)
	}
	acks := make([]domain.Ack, 0, len(ps))
	var direct []directRoute
	for _, p := range ps {
		if s.handoffs != nil {
			for _, kind := range p.handoffs {
				s.handoffs.Add(ctx, 1, kindAttrs.Of(kind))
			}
		}
		// With everything delivered, the flush mark of this revision goes
		// with the ack (a later write marked a later revision, which stays).
		// A route effect left to the deliverer keeps it until it settles.
		a := domain.Ack{LeadID: p.rec.LeadID, Keys: p.acked, Rev: p.rec.Rev}
		if len(p.direct) > 0 {
			a.Rev = 0
			direct = append(direct, p.direct...)
		}
		if len(a.Keys) > 0 || a.Rev > 0 {
			acks = append(acks, a)
		}
	}
	if err := s.store.AckEffects(ctx, acks...); err != nil {
		return fail(err)
	}
	if err := s.queueDirect(ctx, direct); err != nil {
		return fail(err)
	}
	return out
}

// routeRequest is the RouteLead request of a route effect.
func routeRequest(profile *leadv1.LeadProfile, e *domain.Effect) *routingv1.RouteLeadRequest {
	return &routingv1.RouteLeadRequest{Profile: profile, Score: pbconv.Score(e.Score), Reasons: e.Reasons, RequestId: e.RequestID}
}

// jobFor builds the hand-off request of an effect.
func (s *Scoring) jobFor(rec *domain.Record, profile *leadv1.LeadProfile, e *domain.Effect) (*jobs.Queue, []byte, error) {
	var msg proto.Message
	q := s.routingQ
	switch e.Kind {
	case domain.EffectRouteLead:
		msg = routeRequest(profile, e)
	case domain.EffectReleaseLead:
		msg = &routingv1.ReleaseLeadRequest{LeadId: rec.LeadID, Reason: e.Reason}
	case domain.EffectCreateDeal:
		q = s.dealQ
		msg = &pipelinev1.CreateDealFromLeadRequest{
			LeadId: rec.LeadID, OrganisationId: rec.OrganisationID, OwnerRepId: e.Owner,
			Traceparent: rec.Traceparent, Name: dealName(profile), Amount: pbconv.Money(e.Amount),
		}
	default:
		return nil, nil, fmt.Errorf("unknown hand-off %q", e.Kind)
	}
	b, err := proto.Marshal(msg)
	return q, b, err
}

func dealName(p *leadv1.LeadProfile) string {
	if n := strings.TrimSpace(p.GetOrganisation().GetName()); n != "" {
		return n
	}
	return "" // pipeline names it "Deal <lead id>"
}

// classify maps a peer's answer to the job outcome: done, retry later, or
// dead-letter now (a request the peer will never accept).
func classify(err error) error {
	switch status.Code(err) {
	case codes.OK, codes.AlreadyExists:
		return nil
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.Unimplemented, codes.OutOfRange:
		return jobs.Permanent(err)
	}
	return err
}

// DeliverRouting is the handler of the routing queue (RouteLead, ReleaseLead).
func (s *Scoring) DeliverRouting(ctx context.Context, j jobs.Job) (err error) {
	kind, _, _ := strings.Cut(j.ID, ":")
	ctx, span := s.step(ctx, j.Traceparent, "scoring.deliver."+kind, j.LeadID)
	outcome := "delivered"
	defer func() { end(span, outcome, err) }()
	switch kind {
	case "route":
		req := &routingv1.RouteLeadRequest{}
		if err := proto.Unmarshal(j.Payload, req); err != nil {
			return jobs.Permanent(err)
		}
		rec, delivered, err := s.store.LeadDelivered(ctx, j.LeadID, j.ID)
		if err != nil || delivered {
			outcome = "already_delivered"
			return err
		}
		if superseded(rec, j.ID) {
			outcome = "superseded"
			return nil
		}
		if _, err := s.routing.RouteLead(ctx, req); err != nil {
			return classify(err)
		}
	case "release":
		if ok, err := s.store.Delivered(ctx, j.LeadID, j.ID); err != nil || ok {
			outcome = "already_delivered"
			return err
		}
		req := &routingv1.ReleaseLeadRequest{}
		if err := proto.Unmarshal(j.Payload, req); err != nil {
			return jobs.Permanent(err)
		}
		if _, err := s.routing.ReleaseLead(ctx, req); err != nil {
			return classify(err)
		}
	default:
		return jobs.Permanent(fmt.Errorf("unknown routing job %q", j.ID))
	}
	return s.store.MarkDelivered(ctx, domain.Handoff{LeadID: j.LeadID, Key: j.ID})
}

// superseded reports whether the route hand-off jobID was overtaken by
// events (the lead marked BAD_FIT, recycled, or a newer MQL episode): it is
// then not delivered.
func superseded(rec *domain.Record, jobID string) bool {
	episode, _ := strconv.Atoi(jobID[strings.LastIndexByte(jobID, ':')+1:])
	return !rec.Handed || int(rec.MQLEpisodes) != episode || (rec.Status != domain.StatusPotential && rec.Status != domain.StatusNurturing && rec.Status != domain.StatusWorking)
}

// DeliverRoutingBatch is the routing queue's batch handler: the route
// hand-offs of a claim are checked in one round trip (record and delivered
// mark of each), sent in one RouteLeads call and marked delivered in one
// round trip; each job is settled by its own lead's answer, as
// DeliverRouting settles it. Releases go one by one through DeliverRouting.
// A job that is not sent (delivered already, or superseded) gets its own
// short span with that outcome; a sent one is its delivery span.
func (s *Scoring) DeliverRoutingBatch(ctx context.Context, js []jobs.Job) []error {
	errs := make([]error, len(js))
	var wg sync.WaitGroup
	var route []int
	var reqs []*routingv1.RouteLeadRequest
	var hs []domain.Handoff
	for i, j := range js {
		kind, _, _ := strings.Cut(j.ID, ":")
		req := &routingv1.RouteLeadRequest{}
		if kind != "route" || proto.Unmarshal(j.Payload, req) != nil {
			wg.Go(func() { errs[i] = s.DeliverRouting(ctx, j) })
			continue
		}
		req.Traceparent = j.Traceparent
		route, reqs, hs = append(route, i), append(reqs, req), append(hs, domain.Handoff{LeadID: j.LeadID, Key: j.ID})
	}
	if len(route) > 0 {
		s.routeBatch(ctx, js, route, reqs, hs, errs)
	}
	wg.Wait()
	return errs
}

// routeLeadsMax is RouteLeads' limit of leads per call.
const routeLeadsMax = 100

// routeBatch delivers the route jobs js[idx[n]] (requests reqs[n]).
func (s *Scoring) routeBatch(ctx context.Context, js []jobs.Job, idx []int, reqs []*routingv1.RouteLeadRequest, hs []domain.Handoff, errs []error) {
	recs, delivered, rerrs, err := s.store.LeadsDelivered(ctx, hs)
	if err != nil {
		for _, i := range idx {
			errs[i] = err
		}
		return
	}
	var send []int // positions in idx
	for n, i := range idx {
		outcome := ""
		switch {
		case rerrs[n] != nil:
			errs[i] = rerrs[n]
			outcome = "failed"
		case delivered[n]:
			outcome = "already_delivered"
		case superseded(recs[n], js[i].ID):
			outcome = "superseded"
		default:
			send = append(send, n)
			continue
		}
		_, span := s.step(ctx, js[i].Traceparent, "scoring.deliver.route", js[i].LeadID)
		end(span, outcome, errs[i])
	}
	for len(send) > 0 {
		chunk := send[:min(len(send), routeLeadsMax)]
		send = send[len(chunk):]
		req := &routingv1.RouteLeadsRequest{Leads: make([]*routingv1.RouteLeadRequest, len(chunk))}
		for k, n := range chunk {
			req.Leads[k] = reqs[n]
		}
		resp, err := s.routing.RouteLeads(ctx, req)
		if platform.SendAlone(err) {
			// Only a malformed request is then dead-lettered, and a routing
			// that predates RouteLeads still gets every lead.
			var wg sync.WaitGroup
			for _, n := range chunk {
				wg.Go(func() { errs[idx[n]] = s.DeliverRouting(ctx, js[idx[n]]) })
			}
			wg.Wait()
			continue
		}
		var itemErrs []error
		if err == nil {
			itemErrs = platform.ItemErrors(len(chunk), resp.GetResults())
		}
		var done []domain.Handoff
		var doneIdx []int
		for k, n := range chunk {
			e := err
			if e == nil {
				e = itemErrs[k]
			}
			if e = classify(e); e != nil {
				errs[idx[n]] = e
				continue
			}
			done, doneIdx = append(done, hs[n]), append(doneIdx, idx[n])
		}
		// Marked after routing answered: a crash in between sends the lead
		// again, and RouteLead answers the existing decision.
		if err := s.store.MarkDelivered(ctx, done...); err != nil {
			for _, i := range doneIdx {
				errs[i] = err
			}
		}
	}
}

// DeliverPipeline is the handler of the pipeline queue (CreateDealFromLead).
func (s *Scoring) DeliverPipeline(ctx context.Context, j jobs.Job) (err error) {
	ctx, span := s.step(ctx, j.Traceparent, "scoring.deliver.deal", j.LeadID)
	outcome := "delivered"
	defer func() { end(span, outcome, err) }()
	if ok, err := s.store.Delivered(ctx, j.LeadID, j.ID); err != nil || ok {
		outcome = "already_delivered"
		return err
	}
	req := &pipelinev1.CreateDealFromLeadRequest{}
	if err := proto.Unmarshal(j.Payload, req); err != nil {
		return jobs.Permanent(err)
	}
	if _, err := s.pipeline.CreateDealFromLead(ctx, req); err != nil {
		return classify(err)
	}
	return s.store.MarkDelivered(ctx, domain.Handoff{LeadID: j.LeadID, Key: j.ID})
}

// Sweep delivers the outboxes of leads whose call died between the write
// and the delivery (and repairs their list entries). A lead is swept only
// when the previous Sweep saw it marked at the same revision, so calls still
// delivering their own effects are left alone for one interval. It returns
// how many leads it swept.
func (s *Scoring) Sweep(ctx context.Context) (int, error) {
	marked, err := s.store.FlushPending(ctx, 200)
	if err != nil {
		return 0, err
	}
	s.sweepMu.Lock()
	prev := s.lastSeen
	seen := make(map[string]int64, len(marked))
	for _, m := range marked {
		seen[m.LeadID] = m.Rev
	}
	s.lastSeen = seen
	s.sweepMu.Unlock()
	var errs []error
	n := 0
	for _, m := range marked {
		if rev, ok := prev[m.LeadID]; !ok || rev != m.Rev {
			continue
		}
		n++
		id := m.LeadID
		if err := s.store.Reindex(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		rec, err := s.store.GetLead(ctx, id)
		if errors.Is(err, domain.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(rec.Outbox) == 0 {
			// A mark above the record's revision is left by a write that
			// lost its optimistic race and then had nothing to write.
			errs = append(errs, s.store.FlushDone(ctx, id, max(rec.Rev, m.Rev)))
			continue
		}
		sctx, span := s.step(ctx, rec.Traceparent, "scoring.sweep", id)
		err = s.flush(sctx, rec)
		end(span, "flushed", err)
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// RunSweeper runs Sweep every interval until ctx is done.
func (s *Scoring) RunSweeper(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "outbox sweep", "error", err.Error())
		}
	}
}
