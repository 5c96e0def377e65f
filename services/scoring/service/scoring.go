// Package service holds the scoring use cases: each RPC's
// work as one lead-journey span around one store transaction, followed by
// the delivery of the change's effects (events, hand-off jobs) from the
// record's outbox.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/coalesce"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/telemetry"
	"github.com/leadflow/leadflow/services/scoring/domain"
	"github.com/leadflow/leadflow/services/scoring/pbconv"
)

// EventSink publishes lifecycle events. Prepare fills in an event's id,
// time, trace and actor from ctx (the caller's); PublishAll appends events
// in order, with the commands also queues (hand-off jobs), in one round
// trip; it sends events as they are, so each must be prepared first. Events
// carry their ids, so a repeat is de-duplicated by consumers.
type EventSink interface {
	Prepare(ctx context.Context, ev *eventsv1.LeadEvent) error
	PublishAll(ctx context.Context, evs []*eventsv1.LeadEvent, also func(redis.Pipeliner) error) error
}

// Scoring holds the use cases.
type Scoring struct {
	store    domain.Store
	tracer   trace.Tracer
	logger   *slog.Logger
	events   EventSink
	routingQ *jobs.Queue
	dealQ    *jobs.Queue
	routing  RoutingClient
	pipeline PipelineClient
	now      func() time.Time

	scored, handoffs metric.Int64Counter
	flusher          *coalesce.Group[*flushPlan, struct{}]
	direct           *directRouter // nil: route hand-offs go through the job queue

	sweepMu  sync.Mutex
	lastSeen map[string]int64 // lead → marked revision at the previous sweep
}

// Deps are what Scoring needs.
type Deps struct {
	Store    domain.Store
	Tracer   trace.Tracer
	Meter    metric.Meter
	Logger   *slog.Logger
	Events   EventSink
	RoutingQ *jobs.Queue
	DealQ    *jobs.Queue
	Routing  RoutingClient
	Pipeline PipelineClient
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// DirectRoute turns on and tunes the direct route hand-off.
	DirectRoute DirectRouteOptions
}

// NewScoring builds the use cases.
func NewScoring(d Deps) *Scoring {
	s := &Scoring{
		store: d.Store, tracer: d.Tracer, logger: d.Logger, events: d.Events,
		routingQ: d.RoutingQ, dealQ: d.DealQ, routing: d.Routing, pipeline: d.Pipeline, now: d.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.flusher = coalesce.New(flushBatch, s.flushAll)
	s.direct = newDirectRouter(d.DirectRoute, d.Meter)
	if d.Meter != nil {
		s.scored, _ = d.Meter.Int64Counter("leadflow.scoring.leads_scored", metric.WithDescription("Scores computed and stored"))
		s.handoffs, _ = d.Meter.Int64Counter("leadflow.scoring.handoffs", metric.WithDescription("Hand-offs scheduled, by kind"))
	}
	return s
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// ValidationError converts a domain validation error to InvalidArgument.
func validation(err error) error {
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		v := make([]platform.FieldViolation, len(ve.Violations))
		for i, f := range ve.Violations {
			v[i] = platform.FieldViolation{Field: f.Field, Description: f.Description}
		}
		return platform.InvalidArgument(ve.Message, v...)
	}
	return err
}

// step starts the lead-journey span of one change.
func (s *Scoring) step(ctx context.Context, traceparent, name, leadID string) (context.Context, trace.Span) {
	return leadtrace.Start(ctx, s.tracer, traceparent, name, leadID)
}

func end(span trace.Span, outcome string, err error) {
	if err != nil {
		leadtrace.Fail(span, err)
	} else {
		leadtrace.SetOutcome(span, outcome)
	}
	span.End()
}

// UpsertResult is the result of UpsertLead.
type UpsertResult struct {
	Record  *domain.Record
	Created bool
	Handoff bool
}

// UpsertLead creates or updates a lead's record from capture's profile,
// applies pending signals, rescores and schedules the MQL hand-off.
func (s *Scoring) UpsertLead(ctx context.Context, profile *leadv1.LeadProfile) (res UpsertResult, err error) {
	id := profile.GetLeadId()
	ctx, span := s.step(ctx, profile.GetTraceparent(), "scoring.UpsertLead", id)
	outcome := "unchanged"
	defer func() { end(span, outcome, err) }()

	now := s.now()
	m, err := s.store.ActiveModel(ctx, now)
	if err != nil {
		return res, err
	}
	// The revision is left out of the raw profile: a new revision with the
	// same content is no change to score, and routing does not need it.
	rev := profile.GetRevision()
	profile.Revision = 0
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(profile)
	profile.Revision = rev
	if err != nil {
		return res, err
	}
	p := pbconv.Profile(profile)
	actor := platform.Caller(ctx)
	var rec *domain.Record
	var out domain.Outcome
	stale := false
	_, err = s.store.UpdateLead(ctx, id, func(cur *domain.Record, pending []domain.Signal) (*domain.LeadWrite, error) {
		res.Created = cur == nil
		out, stale = domain.Outcome{}, false
		if cur == nil {
			cur = domain.NewRecord(id, now)
		}
		rec = cur
		if rev > 0 && rev < cur.ProfileRevision {
			// Overtaken by a newer profile of the lead (hand-offs may
			// arrive out of order): nothing to do, and OK.
			stale = true
			return nil, nil
		}
		out = cur.Ingest(&m, &p, raw, pending, time.Time{}, domain.CauseUpsert, "", actor, now)
		if !out.Changed && len(pending) == 0 {
			return nil, nil
		}
		cur.ProfileRevision = max(cur.ProfileRevision, rev)
		cur.AssignKeys(newID)
		return &domain.LeadWrite{Record: cur, History: out.History, ClearPending: len(pending) > 0, Flush: len(cur.Outbox) > 0}, nil
	})
	if err != nil {
		return res, err
	}
	res.Record, res.Handoff = rec, out.Handoff
	switch {
	case stale:
		outcome = "stale"
	case res.Created:
		outcome = "created"
	case out.Changed:
		outcome = "updated"
	}
	if out.Handoff {
		outcome += ",mql"
	}
	s.count(ctx, out)
	span.SetAttributes(attribute.Int("leadflow.scoring.total", int(rec.Score.Total)))
	return res, s.flush(ctx, rec)
}

// kindAttrs and outcomeAttrs are the hand-off metrics' attribute sets.
var kindAttrs, outcomeAttrs = telemetry.NewAttrs("kind"), telemetry.NewAttrs("outcome")

func (s *Scoring) count(ctx context.Context, out domain.Outcome) {
	if s.scored != nil && out.Scored {
		s.scored.Add(ctx, 1)
	}
	if s.handoffs != nil && out.Handoff {
		s.handoffs.Add(ctx, 1, kindAttrs.Of("route_lead"))
	}
}

// EngagementResult is the result of RecordEngagement.
type EngagementResult struct {
	Record    *domain.Record // nil when pending
	Duplicate bool
	Pending   bool
	Handoff   bool
}

// RecordEngagement applies a signal (idempotent by id). A signal of a lead
// not seen yet is kept and applied by UpsertLead.
func (s *Scoring) RecordEngagement(ctx context.Context, sig *leadv1.EngagementSignal) (res EngagementResult, err error) {
	id := sig.GetLeadId()
	if id == "" {
		return res, platform.InvalidArgument("scoring needs the lead of a signal", platform.FieldViolation{Field: "signal.lead_id", Description: "required: capture stitches visitor signals to their lead before handing them on"})
	}
	tp := ""
	if r, gerr := s.store.GetLead(ctx, id); gerr == nil {
		tp = r.Traceparent
	} else if !errors.Is(gerr, domain.ErrNotFound) {
		return res, gerr
	}
	ctx, span := s.step(ctx, tp, "scoring.RecordEngagement", id)
	outcome := "applied"
	defer func() { end(span, outcome, err) }()

	now := s.now()
	m, err := s.store.ActiveModel(ctx, now)
	if err != nil {
		return res, err
	}
	d := pbconv.Signal(sig)
	actor := platform.Caller(ctx)
	var out domain.Outcome
	_, err = s.store.UpdateLead(ctx, id, func(cur *domain.Record, pending []domain.Signal) (*domain.LeadWrite, error) {
		res = EngagementResult{}
		if cur == nil {
			res.Pending = true
			if slices.ContainsFunc(pending, func(p domain.Signal) bool { return p.ID == d.ID }) {
				res.Duplicate = true
				return nil, nil
			}
			return &domain.LeadWrite{AddPending: &d}, nil
		}
		res.Record = cur
		if slices.ContainsFunc(cur.Signals, func(p domain.Signal) bool { return p.ID == d.ID }) {
			res.Duplicate = true
			return nil, nil
		}
		out = cur.Ingest(&m, nil, nil, []domain.Signal{d}, time.Time{}, domain.CauseEngagement, d.ID, actor, now)
		cur.AssignKeys(newID)
		return &domain.LeadWrite{Record: cur, History: out.History, Flush: len(cur.Outbox) > 0}, nil
	})
	if err != nil {
		return res, err
	}
	res.Handoff = out.Handoff
	switch {
	case res.Duplicate:
		outcome = "duplicate"
	case res.Pending:
		outcome = "pending"
	case out.Handoff:
		outcome = "applied,mql"
	}
	s.count(ctx, out)
	if res.Record == nil {
		return res, nil
	}
	return res, s.flush(ctx, res.Record)
}

// lead reads a record for a change: its traceparent starts the span.
func (s *Scoring) lead(ctx context.Context, id string) (*domain.Record, error) {
	return s.store.GetLead(ctx, id)
}

// SetStatus moves the prospect status (idempotent by request id).
func (s *Scoring) SetStatus(ctx context.Context, c domain.StatusChange, leadID string) (rec *domain.Record, changed bool, err error) {
	r, err := s.lead(ctx, leadID)
	if err != nil {
		return nil, false, err
	}
	ctx, span := s.step(ctx, r.Traceparent, "scoring.SetStatus", leadID)
	span.SetAttributes(attribute.String("leadflow.scoring.to", c.To.String()))
	outcome := "unchanged"
	defer func() { end(span, outcome, err) }()
	c.Actor = platform.Caller(ctx)
	now := s.now()
	_, err = s.store.UpdateLead(ctx, leadID, func(cur *domain.Record, _ []domain.Signal) (*domain.LeadWrite, error) {
		if cur == nil {
			return nil, domain.ErrNotFound
		}
		rec = cur
		ch, err := cur.SetStatus(c, now)
		changed = ch
		if err != nil || !ch {
			return nil, err
		}
		cur.AssignKeys(newID)
		return &domain.LeadWrite{Record: cur, Flush: true}, nil
	})
	if err != nil {
		if errors.Is(err, domain.ErrIllegalTransition) {
			outcome = "refused"
		}
		return nil, false, validation(err)
	}
	if changed {
		outcome = strings.ToLower(c.To.String())
	}
	return rec, changed, s.flush(ctx, rec)
}

// ScoreLead rescores a stored lead as of asOf (zero = now).
func (s *Scoring) ScoreLead(ctx context.Context, leadID string, asOf time.Time) (rec *domain.Record, handoff bool, err error) {
	r, err := s.lead(ctx, leadID)
	if err != nil {
		return nil, false, err
	}
	ctx, span := s.step(ctx, r.Traceparent, "scoring.ScoreLead", leadID)
	outcome := "unchanged"
	defer func() { end(span, outcome, err) }()
	now := s.now()
	if asOf.IsZero() {
		asOf = now
	}
	m, err := s.store.ActiveModel(ctx, now)
	if err != nil {
		return nil, false, err
	}
	actor := platform.Caller(ctx)
	var out domain.Outcome
	_, err = s.store.UpdateLead(ctx, leadID, func(cur *domain.Record, _ []domain.Signal) (*domain.LeadWrite, error) {
		if cur == nil {
			return nil, domain.ErrNotFound
		}
		rec = cur
		out = cur.Ingest(&m, nil, nil, nil, asOf, domain.CauseRescore, "", actor, now)
		if !out.Changed {
			return nil, nil
		}
		cur.AssignKeys(newID)
		return &domain.LeadWrite{Record: cur, History: out.History, Flush: len(cur.Outbox) > 0}, nil
	})
	if err != nil {
		return nil, false, err
	}
	if out.Scored {
		outcome = "rescored"
	}
	s.count(ctx, out)
	return rec, out.Handoff, s.flush(ctx, rec)
}

// GetLead returns a record.
func (s *Scoring) GetLead(ctx context.Context, leadID string) (*domain.Record, error) {
	return s.store.GetLead(ctx, leadID)
}

// DryRunScore scores a snapshot against a model version (0 = active) and
// stores nothing. asOf zero means the latest of captured_at and the signals.
func (s *Scoring) DryRunScore(ctx context.Context, profile *leadv1.LeadProfile, sigs []*leadv1.EngagementSignal, version int32, asOf time.Time) (domain.Score, error) {
	var m domain.Model
	var err error
	if version == 0 {
		m, err = s.store.ActiveModel(ctx, s.now())
	} else {
		m, err = s.store.GetModel(ctx, version)
	}
	if err != nil {
		return domain.Score{}, err
	}
	p := pbconv.Profile(profile)
	ds := make([]domain.Signal, len(sigs))
	for i, sg := range sigs {
		ds[i] = pbconv.Signal(sg)
	}
	if asOf.IsZero() {
		r := domain.Record{Profile: p, Signals: ds}
		asOf = r.AsOf()
	}
	return m.Score(&p, ds, asOf), nil
}

// UpdateBant replaces a lead's BANT.
func (s *Scoring) UpdateBant(ctx context.Context, leadID string, b domain.Bant) (out domain.Bant, err error) {
	r, err := s.lead(ctx, leadID)
	if err != nil {
		return out, err
	}
	ctx, span := s.step(ctx, r.Traceparent, "scoring.UpdateBant", leadID)
	outcome := "unchanged"
	defer func() { end(span, outcome, err) }()
	actor := platform.Caller(ctx)
	now := s.now()
	_, err = s.store.UpdateLead(ctx, leadID, func(cur *domain.Record, _ []domain.Signal) (*domain.LeadWrite, error) {
		if cur == nil {
			return nil, domain.ErrNotFound
		}
		changed, err := cur.SetBant(b, actor, now)
		out = cur.Bant
		if err != nil || !changed {
			return nil, err
		}
		outcome = fmt.Sprintf("bant_met=%d", cur.Bant.Met())
		return &domain.LeadWrite{Record: cur}, nil
	})
	return out, validation(err)
}

// CreateModel validates and stores a new model version.
func (s *Scoring) CreateModel(ctx context.Context, m domain.Model, activate bool) (domain.Model, error) {
	if v := m.Validate(); len(v) > 0 {
		return domain.Model{}, validation(&domain.ValidationError{Message: "invalid scoring model", Violations: v})
	}
	m.CreatedBy = platform.Caller(ctx)
	return s.store.CreateModel(ctx, m, activate, s.now())
}

// Store exposes the store for read-only RPCs.
func (s *Scoring) Store() domain.Store { return s.store }

// Now is the service clock.
func (s *Scoring) Now() time.Time { return s.now() }

// Queues returns the routing and pipeline hand-off queues (tests drive them
// with ProcessDue).
func (s *Scoring) Queues() (routing, pipeline *jobs.Queue) { return s.routingQ, s.dealQ }
