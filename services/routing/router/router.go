// Package router holds routing's use cases: it computes targets and
// candidates with the domain, lets the store's team script decide
// atomically, then records decisions, publishes events, schedules SLA
// timers and hand-offs, and writes the lead's journey spans.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/coalesce"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/telemetry"
	"github.com/leadflow/leadflow/services/routing/domain"
	"github.com/leadflow/leadflow/services/routing/store"
)

// Options tune the Router.
type Options struct {
	// SweepInterval: how often queued leads are offered to reps whose working
	// hours began or whose out-of-office ended.
	SweepInterval time.Duration
	// InboxBlock: how long one inbox read waits for new items.
	InboxBlock time.Duration
	// ContactTimeout bounds the capture call that fills an inbox item.
	ContactTimeout time.Duration
	// SLAPoll: how often the SLA timer queue looks for due timers.
	SLAPoll time.Duration
	// HandoffAttempts before a status hand-off is dead-lettered.
	HandoffAttempts int
	// HealWindow: the sweep re-schedules (idempotently) the SLA timers of
	// leads assigned this recently (each lead is checked once, by the first
	// sweep after it is a sweep interval old; the first sweep after a start
	// looks this far back); 0 turns healing off.
	HealWindow time.Duration
	// Direct: status hand-offs go to scoring from the replica that wrote
	// them, as born-claimed jobs (off when Direct.Timeout is zero).
	Direct jobs.DirectOptions
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// StatusSetter delivers a prospect status change to scoring.
type StatusSetter interface {
	SetStatus(ctx context.Context, req *scoringv1.SetStatusRequest) error
}

// ContactFetcher reads leads' contacts from capture (best effort).
type ContactFetcher interface {
	// Contacts reads the contacts of 1–100 distinct leads in one call; a
	// lead capture does not know or has erased is left out of the map.
	Contacts(ctx context.Context, leadIDs []string) (map[string]*leadv1.Contact, error)
}

// Queue names of routing's platform/jobs queues.
const (
	SLAQueue     = "routing-sla"
	HandoffQueue = "routing-scoring"
)

// drainBatch is how many queued leads one script call may hand out.
const drainBatch = 16

// Router is routing's use cases: it computes targets and candidates with the
// domain, lets the store's team script decide atomically, and then records
// decisions, publishes events, schedules SLA timers and hand-offs, and
// writes the journey spans.
type Router struct {
	st      *store.Store
	rdb     redis.UniversalClient
	tracer  trace.Tracer
	log     *slog.Logger
	events  *events.Publisher
	now     func() time.Time
	sla     *jobs.Queue
	handoff *jobs.Queue
	scoring StatusSetter
	capture ContactFetcher
	cfg     atomic.Pointer[domain.Config]
	reloadM sync.Mutex
	opts    Options

	routed, breaches metric.Int64Counter
	// healedTo is the end of the last heal pass's window (ms; 0 = none yet).
	healedTo atomic.Int64
	flusher  *coalesce.Group[*effects, struct{}]
	// contactLookups merges the inbox streams' contact lookups (see
	// lookupContacts).
	contactLookups *coalesce.Group[[]string, map[string]*leadv1.Contact]
}

// Deps are the Router's collaborators.
type Deps struct {
	Redis   redis.UniversalClient
	Tracer  trace.Tracer
	Meter   metric.Meter
	Logger  *slog.Logger
	Events  *events.Publisher
	Scoring StatusSetter
	Capture ContactFetcher
}

// routedAttrs are the decision counter's attribute sets (kind, outcome).
var routedAttrs = telemetry.NewAttrs("kind", "outcome")

// New builds a Router.
func New(d Deps, o Options) *Router {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 5 * time.Second
	}
	if o.InboxBlock <= 0 {
		o.InboxBlock = 2 * time.Second
	}
	if o.ContactTimeout <= 0 {
		o.ContactTimeout = time.Second
	}
	r := &Router{
		st: store.New(d.Redis), rdb: d.Redis, tracer: d.Tracer, log: d.Logger, events: d.Events, now: o.Now,
		scoring: d.Scoring, capture: d.Capture, opts: o,
	}
	r.sla = jobs.New(d.Redis, SLAQueue, jobs.Options{Now: o.Now, Meter: d.Meter, Tracer: d.Tracer, Logger: d.Logger, PollInterval: o.SLAPoll})
	r.handoff = jobs.New(d.Redis, HandoffQueue, jobs.Options{Now: o.Now, Meter: d.Meter, Tracer: d.Tracer, Logger: d.Logger, MaxAttempts: o.HandoffAttempts}).EnableDirect(o.Direct)
	r.flusher = coalesce.New(flushBatch, r.flushAll)
	r.contactLookups = coalesce.NewFlights(contactLookupStreams, 2, r.lookupContacts)
	r.routed, _ = d.Meter.Int64Counter("leadflow.routing.decisions", metric.WithDescription("routing decisions by kind and outcome"))
	r.breaches, _ = d.Meter.Int64Counter("leadflow.routing.sla_breaches", metric.WithDescription("SLA breaches by kind and action"))
	_, _ = d.Meter.Int64ObservableGauge("leadflow.routing.queue_depth", metric.WithDescription("leads waiting in team queues"),
		metric.WithInt64Callback(func(ctx context.Context, obs metric.Int64Observer) error {
			c := r.cfg.Load()
			if c == nil {
				return nil
			}
			for _, t := range c.TeamIDs {
				if n, err := r.st.QueueDepth(ctx, t); err == nil {
					obs.Observe(n, metric.WithAttributes(attribute.String("team", t)))
				}
			}
			return nil
		}))
	return r
}

// Store exposes the store (tests, benchmarks).
func (r *Router) Store() *store.Store { return r.st }

// SLA is the SLA timer queue.
func (r *Router) SLA() *jobs.Queue { return r.sla }

// Handoff is the queue of status hand-offs to scoring.
func (r *Router) Handoff() *jobs.Queue { return r.handoff }

// Logger is the router's logger (the gRPC face logs internal errors of batch items with it).
func (r *Router) Logger() *slog.Logger { return r.log }

// ProcessSLA runs one pass over due SLA timers (tests with an injected clock).
func (r *Router) ProcessSLA(ctx context.Context) (int, error) {
	return r.sla.ProcessDue(ctx, r.handleSLA)
}

// ProcessHandoffs runs one pass over due hand-offs.
func (r *Router) ProcessHandoffs(ctx context.Context) (int, error) {
	return r.handoff.ProcessDue(ctx, r.handleHandoff)
}

// ---------------------------------------------------------------- config

var errNoConfig = status.Error(codes.FailedPrecondition, "no routing configuration: call ApplyConfig first")

func (r *Router) config(ctx context.Context) (*domain.Config, error) {
	if c := r.cfg.Load(); c != nil {
		return c, nil
	}
	return r.reload(ctx)
}

func (r *Router) reload(ctx context.Context) (*domain.Config, error) {
	r.reloadM.Lock()
	defer r.reloadM.Unlock()
	pc, err := r.st.Config(ctx, 0)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoConfig
	}
	if err != nil {
		return nil, err
	}
	if c := r.cfg.Load(); c != nil && c.Version >= pc.GetVersion() {
		return c, nil
	}
	c, err := domain.Compile(pc)
	if err != nil {
		return nil, fmt.Errorf("stored configuration %d does not compile: %w", pc.GetVersion(), err)
	}
	r.cfg.Store(c)
	return c, nil
}

// ApplyConfig validates and stores a new configuration version.
func (r *Router) ApplyConfig(ctx context.Context, pc *routingv1.RoutingConfig, expected int64) (*routingv1.RoutingConfig, error) {
	c, _, err := r.applyConfig(ctx, pc, expected)
	return c, err
}

// applyConfig also returns how many queued leads were handed out because of
// the change.
func (r *Router) applyConfig(ctx context.Context, pc *routingv1.RoutingConfig, expected int64) (*routingv1.RoutingConfig, int, error) {
	if _, err := domain.Compile(pc); err != nil {
		return nil, 0, validation(err)
	}
	var stored *routingv1.RoutingConfig
	for attempt := 0; ; attempt++ {
		exp := expected
		if exp == 0 {
			cur, err := r.st.CurrentVersion(ctx)
			if err != nil {
				return nil, 0, err
			}
			exp = cur
		}
		_, err := r.st.ApplyConfig(ctx, exp, func(v int64) ([]byte, error) {
			stored = proto.Clone(pc).(*routingv1.RoutingConfig)
			stored.Version = v
			stored.CreatedAt = timestamppb.New(r.now())
			stored.CreatedBy = platform.Caller(ctx)
			return proto.Marshal(stored)
		})
		if errors.Is(err, store.ErrConflict) {
			if expected > 0 {
				return nil, 0, status.Errorf(codes.Aborted, "configuration changed concurrently: expected version %d is no longer current", expected)
			}
			if attempt < 5 {
				continue
			}
			return nil, 0, status.Error(codes.Aborted, "configuration changed concurrently; retry")
		}
		if err != nil {
			return nil, 0, err
		}
		break
	}
	c, err := domain.Compile(stored)
	if err != nil {
		return nil, 0, err
	}
	for _, t := range c.TeamIDs {
		if err := r.st.SetTeamVersion(ctx, t, c.Version); err != nil {
			return nil, 0, err
		}
	}
	r.install(c)
	// More capacity or a rep back: hand out what waits.
	drained := 0
	for _, t := range c.TeamIDs {
		n, err := r.Drain(ctx, t)
		if err != nil {
			r.log.WarnContext(ctx, "drain after config change", "team", t, "error", err)
		}
		drained += n
	}
	return stored, drained, nil
}

func (r *Router) install(c *domain.Config) {
	for {
		old := r.cfg.Load()
		if old != nil && old.Version >= c.Version {
			return
		}
		if r.cfg.CompareAndSwap(old, c) {
			return
		}
	}
}

func validation(err error) error {
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		fv := make([]platform.FieldViolation, 0, len(ve.Violations))
		for _, v := range ve.Violations {
			fv = append(fv, platform.FieldViolation{Field: "config." + v.Field, Description: v.Description})
		}
		return platform.InvalidArgument("invalid routing configuration", fv...)
	}
	return err
}

// GetConfig returns a configuration version (0 = current).
func (r *Router) GetConfig(ctx context.Context, version int64) (*routingv1.RoutingConfig, error) {
	c, err := r.st.Config(ctx, version)
	if errors.Is(err, store.ErrNotFound) {
		if version == 0 {
			return nil, status.Error(codes.NotFound, "no routing configuration yet")
		}
		return nil, status.Errorf(codes.NotFound, "configuration version %d not found", version)
	}
	return c, err
}

// ListConfigVersions lists versions newest first, below before.
func (r *Router) ListConfigVersions(ctx context.Context, before int64, limit int) ([]*routingv1.ConfigVersion, error) {
	vs, err := r.st.Versions(ctx, before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*routingv1.ConfigVersion, 0, len(vs))
	for _, v := range vs {
		c, err := r.st.Config(ctx, v)
		if err != nil {
			return nil, err
		}
		out = append(out, &routingv1.ConfigVersion{Version: v, CreatedAt: c.GetCreatedAt(), CreatedBy: c.GetCreatedBy(), Comment: c.GetComment()})
	}
	return out, nil
}

// SetRepAvailability stores a new configuration version with one rep's
// availability changed and hands out queued leads when the rep is back.
func (r *Router) SetRepAvailability(ctx context.Context, repID string, a routingv1.Availability, until *timestamppb.Timestamp) (int64, *routingv1.Rep, int, error) {
	for attempt := 0; attempt < 8; attempt++ {
		cur, err := r.st.Config(ctx, 0)
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, 0, errNoConfig
		}
		if err != nil {
			return 0, nil, 0, err
		}
		next := proto.Clone(cur).(*routingv1.RoutingConfig)
		var rep *routingv1.Rep
		for _, t := range next.GetTeams() {
			for _, rp := range t.GetReps() {
				if rp.GetId() == repID {
					rep = rp
				}
			}
		}
		if rep == nil {
			return 0, nil, 0, status.Errorf(codes.NotFound, "rep %q is not in the routing configuration", repID)
		}
		rep.Availability = a
		rep.OutOfOfficeUntil = nil
		if a == routingv1.Availability_AVAILABILITY_OUT_OF_OFFICE {
			if until == nil {
				return 0, nil, 0, platform.InvalidArgument("out_of_office_until is required for OUT_OF_OFFICE",
					platform.FieldViolation{Field: "out_of_office_until", Description: "required when availability is OUT_OF_OFFICE"})
			}
			rep.OutOfOfficeUntil = until
		}
		next.Comment = fmt.Sprintf("availability of %s set to %s", repID, a)
		stored, n, err := r.applyConfig(ctx, next, cur.GetVersion())
		if status.Code(err) == codes.Aborted {
			continue
		}
		if err != nil {
			return 0, nil, 0, err
		}
		return stored.GetVersion(), rep, n, nil
	}
	return 0, nil, 0, status.Error(codes.Aborted, "configuration kept changing; retry")
}

// ---------------------------------------------------------------- helpers

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

func newIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = newID()
	}
	return out
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func tsms(v int64) *timestamppb.Timestamp {
	if v <= 0 {
		return nil
	}
	return timestamppb.New(time.UnixMilli(v))
}

func cands(static []domain.StaticCandidate) []store.Cand {
	out := make([]store.Cand, 0, len(static))
	for _, s := range static {
		if s.Eligible {
			out = append(out, store.Cand{ID: s.Rep.ID, W: s.Rep.Weight, Cap: s.Rep.Capacity})
		}
	}
	return out
}

// explainCandidates lists every rep of the team, eligible or why not, with
// the loads seen before the decision.
func explainCandidates(static []domain.StaticCandidate, loads map[string]int, excl, breached []string) []*routingv1.Candidate {
	ex := map[string]bool{}
	for _, e := range excl {
		ex[e] = true
	}
	br := map[string]bool{}
	for _, e := range breached {
		br[e] = true
	}
	out := make([]*routingv1.Candidate, 0, len(static))
	for _, s := range static {
		c := &routingv1.Candidate{RepId: s.Rep.ID, Capacity: int32(s.Rep.Capacity), Weight: int32(s.Rep.Weight), OpenLeads: int32(loads[s.Rep.ID])}
		if !s.Eligible {
			c.Reasons = append(c.Reasons, s.Reason)
		}
		if loads[s.Rep.ID] >= s.Rep.Capacity {
			c.Reasons = append(c.Reasons, routingv1.IneligibleReason_INELIGIBLE_REASON_OVER_CAPACITY)
		}
		switch {
		case br[s.Rep.ID]:
			c.Reasons = append(c.Reasons, routingv1.IneligibleReason_INELIGIBLE_REASON_BREACHED_BEFORE)
		case ex[s.Rep.ID]:
			c.Reasons = append(c.Reasons, routingv1.IneligibleReason_INELIGIBLE_REASON_REJECTED_BEFORE)
		}
		c.Eligible = len(c.Reasons) == 0
		out = append(out, c)
	}
	return out
}

// effects are what a decision leaves behind besides the script's state:
// decisions, events, SLA timers, hand-offs.
type effects struct {
	decisions []*routingv1.RoutingDecision
	events    []*eventsv1.LeadEvent
	timers    []jobs.Job
	handoffs  []jobs.Job
	cancel    []string
}

func (r *Router) event(ctx context.Context, e *effects, ev *eventsv1.LeadEvent) {
	if err := r.events.Prepare(ctx, ev); err != nil {
		r.log.WarnContext(ctx, "prepare event", "error", err)
		return
	}
	if ev.OccurredAt == nil {
		ev.OccurredAt = timestamppb.New(r.now())
	}
	e.events = append(e.events, ev)
}

// flush writes decisions and events, and schedules the timers and
// hand-offs (each idempotent by id), in one round trip shared with the
// flushes running at the same time (coalesced: under load one pipeline
// serves many decisions), then cancels stale timers.
func (r *Router) flush(ctx context.Context, e *effects) error {
	// Each part is idempotent, so when the round trip fails the caller's
	// retry (or existing() on the next RouteLead) writes it again.
	if len(e.decisions)+len(e.events)+len(e.handoffs)+len(e.timers) > 0 {
		if _, err := r.flusher.Do(ctx, e); err != nil {
			return err
		}
	}
	for _, id := range e.cancel {
		if _, err := r.sla.Cancel(ctx, id); err != nil {
			r.log.WarnContext(ctx, "cancel SLA timer", "job", id, "error", err)
		}
	}
	return nil
}

// flushBatch bounds the effects one coalesced flush writes.
const flushBatch = 128

// flushAll writes the effects of many flushes in one pipeline.
func (r *Router) flushAll(ctx context.Context, es []*effects) []coalesce.Result[struct{}] {
	out := make([]coalesce.Result[struct{}], len(es))
	err := r.queueEffects(ctx, es)
	for i := range out {
		out[i].Err = err
	}
	return out
}

func (r *Router) queueEffects(ctx context.Context, es []*effects) error {
	pipe := r.rdb.Pipeline()
	var borns []*jobs.Born
	for _, e := range es {
		if err := store.SaveDecisions(ctx, pipe, e.decisions...); err != nil {
			return err
		}
		for _, ev := range e.events {
			if err := events.AddToPipe(pipe, ctx, ev); err != nil {
				return err
			}
		}
		for _, j := range e.handoffs {
			b, err := r.handoff.ScheduleDirectOn(ctx, pipe, j)
			if err != nil {
				return err
			}
			borns = append(borns, b)
		}
		for _, j := range e.timers {
			if err := r.sla.ScheduleOn(ctx, pipe, j); err != nil {
				return err
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	r.handoff.Hand(ctx, borns...)
	return nil
}

type slaPayload struct {
	Team string `json:"team"`
	Lead string `json:"lead"`
	Seq  int64  `json:"seq"`
	Kind string `json:"kind"`
	Pol  string `json:"pol"`
	// Next is the assignment's other timer kind, due at NextDue (unix ms):
	// handleSLA schedules it when this one fires and the assignment stands.
	Next    string `json:"next,omitempty"`
	NextDue int64  `json:"next_due,omitempty"`
}

func slaJobID(team, lead string, seq int64, kind string) string {
	return fmt.Sprintf("sla:%s:%s:%d:%s", team, lead, seq, kind)
}

// timers schedules the SLA timers of an assignment as one job, for the
// kind due first, which schedules the other when it fires (handleSLA): one
// timer written per assignment instead of two.
func (r *Router) timers(e *effects, team string, a *store.Assigned) {
	type due struct {
		kind string
		at   int64
	}
	var ds []due
	if a.FTD > 0 {
		ds = append(ds, due{"first_touch", a.FTD})
	}
	if a.TDue > 0 {
		ds = append(ds, due{"touches", a.TDue})
	}
	if len(ds) == 0 {
		return
	}
	if len(ds) == 2 && ds[1].at < ds[0].at {
		ds[0], ds[1] = ds[1], ds[0]
	}
	p := slaPayload{Team: team, Lead: a.Lead, Seq: a.Seq, Kind: ds[0].kind, Pol: a.Pol}
	if len(ds) == 2 {
		p.Next, p.NextDue = ds[1].kind, ds[1].at
	}
	e.timers = append(e.timers, slaJob(p, a.TP, ds[0].at))
}

// openDeadlines is rec's assignment with the SLA deadlines still open and
// due after the instant after (unix ms): the first touch until it happened,
// the touches until enough were recorded.
func openDeadlines(rec *store.Record, after int64) store.Assigned {
	a := store.Assigned{Lead: rec.Lead, Seq: rec.Seq, Pol: rec.Pol, TP: rec.TP}
	if rec.FTA == 0 && rec.FTD > after {
		a.FTD = rec.FTD
	}
	if rec.TouchesReq > 0 && rec.Touches < rec.TouchesReq && rec.TDue > after {
		a.TDue = rec.TDue
	}
	return a
}

// slaJob is the timer job of p, due at due (unix ms).
func slaJob(p slaPayload, tp string, due int64) jobs.Job {
	b, _ := json.Marshal(p)
	return jobs.Job{ID: slaJobID(p.Team, p.Lead, p.Seq, p.Kind), Payload: b, Traceparent: tp, LeadID: p.Lead, Due: time.UnixMilli(due)}
}

func (r *Router) cancelTimers(e *effects, team, lead string, seq int64) {
	if seq <= 0 {
		return
	}
	e.cancel = append(e.cancel, slaJobID(team, lead, seq, "first_touch"), slaJobID(team, lead, seq, "touches"))
}

// handedOut records leads the script handed out of the queue.
func (r *Router) handedOut(ctx context.Context, e *effects, c *domain.Config, team string, static []domain.StaticCandidate, drained []store.Assigned, now time.Time) {
	for i := range drained {
		a := &drained[i]
		sctx, span := leadtrace.Start(ctx, r.tracer, a.TP, "routing.assign", a.Lead)
		leadtrace.SetOutcome(span, "assigned_from_queue")
		span.SetAttributes(attribute.String("leadflow.routing.team", team), attribute.String("leadflow.routing.rep", a.Rep))
		d := &routingv1.RoutingDecision{
			Id: a.Dec, LeadId: a.Lead, Kind: routingv1.DecisionKind_DECISION_KIND_QUEUE_HANDOUT, Outcome: routingv1.DecisionOutcome_DECISION_OUTCOME_ASSIGNED,
			TeamId: team, RepId: a.Rep, Explanation: []string{"handed out of the team queue: a rep had free capacity"},
			Candidates: explainCandidates(static, a.Loads, a.Excl, a.Brx), ConfigVersion: c.Version, DecidedAt: timestamppb.New(now),
			FirstTouchDue: tsms(a.FTD), SlaPolicyId: a.Pol, TraceId: leadtrace.TraceID(a.TP),
		}
		e.decisions = append(e.decisions, d)
		r.event(sctx, e, &eventsv1.LeadEvent{LeadId: a.Lead, OrganisationId: a.Org, Payload: &eventsv1.LeadEvent_LeadAssigned{LeadAssigned: &eventsv1.LeadAssigned{
			TeamId: team, RepId: a.Rep, DecisionId: a.Dec, FirstTouchDue: tsms(a.FTD), FromQueue: true}}})
		r.timers(e, team, a)
		r.routed.Add(sctx, 1, routedAttrs.Of("queue_handout", "assigned"))
		span.End()
	}
}

// Drain hands queued leads of a team to reps with free capacity now.
func (r *Router) Drain(ctx context.Context, team string) (int, error) {
	total := 0
	for range 64 {
		c, err := r.config(ctx)
		if err != nil {
			return total, err
		}
		if _, ok := c.Teams[team]; !ok {
			return total, nil
		}
		now := r.now()
		static := c.Candidates(team, now)
		res, err := r.st.Run(ctx, store.Op{Op: "drain", Team: team, Now: ms(now), Ver: c.Version, Cands: cands(static), Decs: newIDs(drainBatch)}, nil, nil)
		if err != nil {
			return total, err
		}
		if res.St == "STALE" {
			if _, err := r.reload(ctx); err != nil {
				return total, err
			}
			continue
		}
		if len(res.Drained) == 0 {
			return total, nil
		}
		e := &effects{}
		r.handedOut(ctx, e, c, team, static, res.Drained, now)
		if err := r.flush(ctx, e); err != nil {
			return total, err
		}
		total += len(res.Drained)
		if len(res.Drained) < drainBatch {
			return total, nil
		}
	}
	return total, nil
}

// leadHome finds the team and record of a lead.
func (r *Router) leadHome(ctx context.Context, lead string) (*store.Record, error) {
	team, err := r.st.LeadTeam(ctx, lead)
	if err != nil {
		return nil, err
	}
	if team == "" {
		return nil, status.Errorf(codes.NotFound, "lead %s was never routed", lead)
	}
	rec, err := r.st.Lead(ctx, team, lead)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "lead %s has no routing record", lead)
	}
	return rec, err
}

func stateOf(s string) routingv1.AssignmentState {
	switch s {
	case "queued":
		return routingv1.AssignmentState_ASSIGNMENT_STATE_QUEUED
	case "assigned":
		return routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED
	case "accepted":
		return routingv1.AssignmentState_ASSIGNMENT_STATE_ACCEPTED
	case "parked":
		return routingv1.AssignmentState_ASSIGNMENT_STATE_PARKED
	case "released", "moved":
		return routingv1.AssignmentState_ASSIGNMENT_STATE_RELEASED
	case "given_back":
		return routingv1.AssignmentState_ASSIGNMENT_STATE_GIVEN_BACK
	}
	return routingv1.AssignmentState_ASSIGNMENT_STATE_UNSPECIFIED
}

// Assignment converts a record.
func Assignment(rec *store.Record) *routingv1.Assignment {
	ex := append([]string(nil), rec.Excluded...)
	sort.Strings(ex)
	return &routingv1.Assignment{
		LeadId: rec.Lead, TeamId: rec.Team, RepId: rec.Rep, State: stateOf(rec.State), DecisionId: rec.Dec,
		AssignedAt: tsms(rec.AssignedAt), AcceptedAt: tsms(rec.AcceptedAt), FirstTouchDue: tsms(rec.FTD), FirstTouchAt: tsms(rec.FTA),
		Touches: int32(rec.Touches), TouchesRequired: int32(rec.TouchesReq), TouchesDue: tsms(rec.TDue), SlaReassignments: int32(rec.SlaReassigns),
		RejectedBy: ex, TraceId: leadtrace.TraceID(rec.TP), ScoreTotal: int32(rec.Score), Heat: leadv1.Heat(rec.Heat), Sequence: rec.Seq,
	}
}

func active(st string) bool {
	return st == "queued" || st == "assigned" || st == "accepted" || st == "parked"
}
