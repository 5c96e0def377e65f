package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/routing/domain"
	"github.com/leadflow/leadflow/services/routing/store"
)

// ---------------------------------------------------------------- route

// RouteLead routes an MQL. The bool is true when the lead was already
// routed (the existing decision is returned, nothing changes).
func (r *Router) RouteLead(ctx context.Context, req *routingv1.RouteLeadRequest) (*routingv1.RoutingDecision, bool, error) {
	p, sc := req.GetProfile(), req.GetScore()
	lead := p.GetLeadId()
	ctx, span := leadtrace.Start(ctx, r.tracer, p.GetTraceparent(), "routing.route", lead)
	defer span.End()
	c, err := r.config(ctx)
	if err != nil {
		leadtrace.Fail(span, err)
		return nil, false, err
	}
	now := r.now()
	tgt := c.Target(p, sc, now)
	home, err := r.st.ClaimLeadTeam(ctx, lead, tgt.TeamID)
	if err != nil {
		return nil, false, err
	}
	if home != tgt.TeamID {
		rec, err := r.st.Lead(ctx, home, lead)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
		if rec != nil && (active(rec.State) || (req.GetRequestId() != "" && rec.Req == req.GetRequestId())) {
			leadtrace.SetOutcome(span, "existing")
			d, err := r.existing(ctx, rec)
			return d, true, err
		}
		if err := r.st.SetLeadTeam(ctx, lead, tgt.TeamID); err != nil {
			return nil, false, err
		}
	}
	pb, _ := proto.Marshal(p)
	sb, _ := proto.Marshal(sc)
	reasons, _ := json.Marshal(req.GetReasons())
	for attempt := 0; attempt < 6; attempt++ {
		static := c.Candidates(tgt.TeamID, now)
		op := store.Op{
			Op: "route", Team: tgt.TeamID, Lead: lead, Now: ms(now), Ver: c.Version, Cands: cands(static), Dec: newID(),
			Pref: tgt.Rep, Strict: tgt.Strict, Req: req.GetRequestId(), TP: p.GetTraceparent(), Heat: int(sc.GetHeat()),
			Score: int(sc.GetTotal()), Reasons: string(reasons), Org: p.GetOrganisation().GetId(),
		}
		if pol := c.Policy(tgt.TeamID, sc.GetHeat()); pol != nil {
			op.Pol = pol.GetId()
			op.FTW = pol.GetFirstTouchWithin().AsDuration().Milliseconds()
			if pol.GetTouchesRequired() > 0 {
				op.TW = pol.GetTouchesWithin().AsDuration().Milliseconds()
				op.TReq = int(pol.GetTouchesRequired())
			}
		}
		res, err := r.st.Run(ctx, op, pb, sb)
		if err != nil {
			leadtrace.Fail(span, err)
			return nil, false, err
		}
		switch res.St {
		case "STALE":
			if c, err = r.reload(ctx); err != nil {
				return nil, false, err
			}
			tgt = c.Target(p, sc, now)
		case "NOPREF":
			owner := tgt.Rep
			tgt = c.RuleTarget(p, sc)
			tgt.Explanation = append([]string{fmt.Sprintf("organisation owner %s has no free capacity; routed by rules", owner)}, tgt.Explanation...)
		case "EXISTING":
			leadtrace.SetOutcome(span, "existing")
			rec, err := r.st.Lead(ctx, tgt.TeamID, lead)
			if err != nil {
				return nil, false, err
			}
			d, err := r.existing(ctx, rec)
			return d, true, err
		case "ASSIGNED", "QUEUED":
			d, err := r.routed1(ctx, c, tgt, static, res, op, req, now)
			return d, false, err
		default:
			return nil, false, fmt.Errorf("route script answered %q", res.St)
		}
		if tgt.TeamID != home {
			if err := r.st.SetLeadTeam(ctx, lead, tgt.TeamID); err != nil {
				return nil, false, err
			}
			home = tgt.TeamID
		}
	}
	return nil, false, status.Error(codes.Aborted, "routing configuration kept changing; retry")
}

func (r *Router) routed1(ctx context.Context, c *domain.Config, tgt domain.Target, static []domain.StaticCandidate, res *store.Result, op store.Op, req *routingv1.RouteLeadRequest, now time.Time) (*routingv1.RoutingDecision, error) {
	p := req.GetProfile()
	loads := res.Loads
	if res.St == "ASSIGNED" && loads != nil {
		loads = copyLoads(loads)
		loads[res.Rep]--
	}
	d := &routingv1.RoutingDecision{
		Id: op.Dec, LeadId: op.Lead, Kind: routingv1.DecisionKind_DECISION_KIND_ROUTE, TeamId: tgt.TeamID, RepId: res.Rep,
		RuleId: tgt.RuleID, Explanation: tgt.Explanation, ByOwnership: tgt.ByOwnership && res.Rep == tgt.Rep,
		Candidates: explainCandidates(static, loads, nil, nil), ConfigVersion: c.Version, DecidedAt: timestamppb.New(now),
		FirstTouchDue: tsms(res.FTD), SlaPolicyId: op.Pol, Reasons: req.GetReasons(), RequestId: req.GetRequestId(),
		TraceId: leadtrace.TraceID(p.GetTraceparent()),
	}
	e := &effects{}
	org := p.GetOrganisation().GetId()
	r.event(ctx, e, &eventsv1.LeadEvent{LeadId: op.Lead, OrganisationId: org, Payload: &eventsv1.LeadEvent_LeadRouted{LeadRouted: &eventsv1.LeadRouted{
		DecisionId: d.Id, TeamId: d.TeamId, RepId: d.RepId, RuleId: d.RuleId, ByOwnership: d.ByOwnership, ConfigVersion: c.Version}}})
	if res.St == "ASSIGNED" {
		d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_ASSIGNED
		r.event(ctx, e, &eventsv1.LeadEvent{LeadId: op.Lead, OrganisationId: org, Payload: &eventsv1.LeadEvent_LeadAssigned{LeadAssigned: &eventsv1.LeadAssigned{
			TeamId: d.TeamId, RepId: d.RepId, DecisionId: d.Id, FirstTouchDue: d.FirstTouchDue}}})
		a := res.Assigned
		r.timers(e, tgt.TeamID, &a)
	} else {
		d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_QUEUED
		d.Explanation = append(d.Explanation, "no eligible rep with free capacity: queued")
		r.event(ctx, e, &eventsv1.LeadEvent{LeadId: op.Lead, OrganisationId: org, Payload: &eventsv1.LeadEvent_LeadQueued{LeadQueued: &eventsv1.LeadQueued{
			TeamId: d.TeamId, DecisionId: d.Id}}})
	}
	e.decisions = append(e.decisions, d)
	span := trace.SpanFromContext(ctx)
	leadtrace.SetOutcome(span, strings.ToLower(strings.TrimPrefix(d.Outcome.String(), "DECISION_OUTCOME_")))
	span.SetAttributes(attribute.String("leadflow.routing.team", d.TeamId), attribute.String("leadflow.routing.rep", d.RepId),
		attribute.String("leadflow.routing.rule", d.RuleId), attribute.String("leadflow.routing.decision", d.Id))
	r.routed.Add(ctx, 1, routedAttrs.Of("route", d.Outcome.String()))
	return d, r.flush(ctx, e)
}

func copyLoads(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// existing returns the decision of a lead that is already routed, and heals
// what a crash between the script and the follow-up writes may have left
// out (the decision, the SLA timers): both writes are idempotent.
func (r *Router) existing(ctx context.Context, rec *store.Record) (*routingv1.RoutingDecision, error) {
	d, err := r.st.Decision(ctx, rec.Dec)
	e := &effects{}
	if errors.Is(err, store.ErrNotFound) {
		d = &routingv1.RoutingDecision{Id: rec.Dec, LeadId: rec.Lead, Kind: routingv1.DecisionKind_DECISION_KIND_ROUTE, TeamId: rec.Team, RepId: rec.Rep,
			Explanation: []string{"recovered from the lead's routing record"}, DecidedAt: timestamppb.New(time.UnixMilli(max(rec.AssignedAt, rec.QueuedAt))),
			FirstTouchDue: tsms(rec.FTD), SlaPolicyId: rec.Pol, RequestId: rec.Req, TraceId: leadtrace.TraceID(rec.TP)}
		if rec.State == "queued" {
			d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_QUEUED
		} else {
			d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_ASSIGNED
		}
		e.decisions = append(e.decisions, d)
	} else if err != nil {
		return nil, err
	}
	if rec.State == "assigned" || rec.State == "accepted" {
		a := openDeadlines(rec, 0)
		r.timers(e, rec.Team, &a)
	}
	return d, r.flush(ctx, e)
}

// DryRunRoute answers where the lead would go now, changing nothing.
func (r *Router) DryRunRoute(ctx context.Context, p *leadv1.LeadProfile, sc *leadv1.Score) (*routingv1.RoutingDecision, error) {
	c, err := r.config(ctx)
	if err != nil {
		return nil, err
	}
	now := r.now()
	tgt := c.Target(p, sc, now)
	for range 2 {
		static := c.Candidates(tgt.TeamID, now)
		loads, err := r.st.Loads(ctx, tgt.TeamID)
		if err != nil {
			return nil, err
		}
		cw, err := r.st.Client().HGetAll(ctx, store.TeamPrefix(tgt.TeamID)+"swrr").Result()
		if err != nil {
			return nil, err
		}
		d := &routingv1.RoutingDecision{
			LeadId: p.GetLeadId(), Kind: routingv1.DecisionKind_DECISION_KIND_DRY_RUN, TeamId: tgt.TeamID, RuleId: tgt.RuleID,
			Explanation: tgt.Explanation, Candidates: explainCandidates(static, loads, nil, nil), ConfigVersion: c.Version,
			DecidedAt: timestamppb.New(now), TraceId: leadtrace.TraceID(p.GetTraceparent()),
		}
		if pol := c.Policy(tgt.TeamID, sc.GetHeat()); pol != nil {
			d.SlaPolicyId = pol.GetId()
			if pol.GetFirstTouchWithin() != nil {
				d.FirstTouchDue = timestamppb.New(now.Add(pol.GetFirstTouchWithin().AsDuration()))
			}
		}
		var slots []domain.Slot
		for _, s := range static {
			if s.Eligible {
				slots = append(slots, domain.Slot{ID: s.Rep.ID, Weight: s.Rep.Weight, Capacity: s.Rep.Capacity, Load: loads[s.Rep.ID]})
			}
		}
		if tgt.Rep != "" {
			for _, s := range slots {
				if s.ID == tgt.Rep && s.Load < s.Capacity {
					d.RepId, d.ByOwnership = s.ID, tgt.ByOwnership
				}
			}
			if d.RepId == "" && tgt.Strict {
				owner := tgt.Rep
				tgt = c.RuleTarget(p, sc)
				tgt.Explanation = append([]string{fmt.Sprintf("organisation owner %s has no free capacity; routed by rules", owner)}, tgt.Explanation...)
				continue
			}
		}
		if d.RepId == "" {
			cur := map[string]int{}
			for k, v := range cw {
				var n int
				_, _ = fmt.Sscan(v, &n)
				cur[k] = n
			}
			if i, _ := domain.Pick(slots, cur); i >= 0 {
				d.RepId = slots[i].ID
			}
		}
		if d.RepId != "" {
			d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_ASSIGNED
		} else {
			d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_QUEUED
			d.FirstTouchDue = nil
			d.Explanation = append(d.Explanation, "no eligible rep with free capacity: would be queued")
		}
		return d, nil
	}
	return nil, status.Error(codes.Aborted, "retry")
}

// ---------------------------------------------------------------- release, give back

// ReleaseLead takes a lead out of routing (scoring: NURTURING or BAD_FIT).
func (r *Router) ReleaseLead(ctx context.Context, lead, reason string) (bool, string, error) {
	team, err := r.st.LeadTeam(ctx, lead)
	if err != nil || team == "" {
		return false, "", err
	}
	return r.release(ctx, team, lead, store.Op{Op: "release", Mode: "release", NewSt: "released", Reason: reason})
}

func (r *Router) release(ctx context.Context, team, lead string, op store.Op) (bool, string, error) {
	c, err := r.config(ctx)
	if err != nil {
		return false, "", err
	}
	for range 3 {
		now := r.now()
		static := c.Candidates(team, now)
		op.Team, op.Lead, op.Now, op.Ver, op.Cands, op.Decs = team, lead, ms(now), c.Version, cands(static), newIDs(drainBatch)
		res, err := r.st.Run(ctx, op, nil, nil)
		if err != nil {
			return false, "", err
		}
		switch res.St {
		case "STALE":
			if c, err = r.reload(ctx); err != nil {
				return false, "", err
			}
			continue
		case "NOTFOUND", "ALREADY":
			return false, "", nil
		case "RELEASED":
			sctx, span := leadtrace.Start(ctx, r.tracer, res.TP, "routing.release", lead)
			leadtrace.SetOutcome(span, "released")
			span.SetAttributes(attribute.String("leadflow.routing.reason", op.Reason), attribute.String("leadflow.routing.rep", res.Rep))
			e := &effects{}
			r.cancelTimers(e, team, lead, res.Seq)
			r.handedOut(sctx, e, c, team, static, res.Drained, now)
			err := r.flush(sctx, e)
			span.End()
			return true, res.Rep, err
		default:
			return false, "", fmt.Errorf("release script answered %q", res.St)
		}
	}
	return false, "", status.Error(codes.Aborted, "retry")
}

func holderError(res *store.Result, rep string) error {
	if res.State == "" {
		return status.Error(codes.NotFound, "lead has no routing record")
	}
	if res.Rep != rep {
		return status.Errorf(codes.FailedPrecondition, "lead is not held by rep %s (state %s)", rep, res.State)
	}
	return status.Errorf(codes.FailedPrecondition, "lead is in state %s", res.State)
}

// GiveBack: the holder hands the lead back (RECYCLE, JUNK, UNREACHABLE).
func (r *Router) GiveBack(ctx context.Context, lead, rep string, outcome routingv1.GiveBackOutcome, reason string) (*routingv1.Assignment, error) {
	rec, err := r.leadHome(ctx, lead)
	if err != nil {
		return nil, err
	}
	ctx, span := leadtrace.Start(ctx, r.tracer, rec.TP, "routing.give_back", lead)
	defer span.End()
	c, err := r.config(ctx)
	if err != nil {
		return nil, err
	}
	var res *store.Result
	var static []domain.StaticCandidate
	var now time.Time
	for range 3 {
		now = r.now()
		static = c.Candidates(rec.Team, now)
		res, err = r.st.Run(ctx, store.Op{Op: "release", Mode: "giveback", NewSt: "given_back", Rep: rep, Reason: reason, Team: rec.Team, Lead: lead,
			Now: ms(now), Ver: c.Version, Cands: cands(static), Decs: newIDs(drainBatch)}, nil, nil)
		if err != nil {
			return nil, err
		}
		if res.St != "STALE" {
			break
		}
		if c, err = r.reload(ctx); err != nil {
			return nil, err
		}
	}
	e := &effects{}
	switch res.St {
	case "RELEASED":
		r.cancelTimers(e, rec.Team, lead, res.Seq)
		r.handedOut(ctx, e, c, rec.Team, static, res.Drained, now)
		r.event(ctx, e, &eventsv1.LeadEvent{LeadId: lead, OrganisationId: rec.Org, Payload: &eventsv1.LeadEvent_LeadRecycled{LeadRecycled: &eventsv1.LeadRecycled{
			TeamId: rec.Team, RepId: rep, Outcome: giveBackName(outcome), Reason: reason}}})
	case "ALREADY":
	default:
		return nil, holderError(res, rep)
	}
	st, why := leadv1.ProspectStatus_PROSPECT_STATUS_NURTURING, "recycled by rep"
	switch outcome {
	case routingv1.GiveBackOutcome_GIVE_BACK_OUTCOME_JUNK:
		st, why = leadv1.ProspectStatus_PROSPECT_STATUS_BAD_FIT, "junk"
	case routingv1.GiveBackOutcome_GIVE_BACK_OUTCOME_UNREACHABLE:
		why = "unreachable"
	}
	if reason != "" && outcome != routingv1.GiveBackOutcome_GIVE_BACK_OUTCOME_UNREACHABLE {
		why += ": " + reason
	}
	hid, err := r.statusHandoff(ctx, e, rec.Team, lead, res.Seq, st, why, "", rec.TP, "giveback", res.St == "ALREADY")
	if err != nil {
		return nil, err
	}
	leadtrace.SetOutcome(span, giveBackName(outcome))
	if err := r.flush(ctx, e); err != nil {
		return nil, err
	}
	r.handoffDone(ctx, rec.Team, lead, hid)
	rec, err = r.st.Lead(ctx, rec.Team, lead)
	if err != nil {
		return nil, err
	}
	return Assignment(rec), nil
}

func giveBackName(o routingv1.GiveBackOutcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "GIVE_BACK_OUTCOME_"))
}

// statusHandoff schedules the durable SetStatus call to scoring.
// On a retried request (already) it schedules only when the first attempt
// did not get to mark the hand-off as scheduled, so a delivered hand-off is
// not delivered again. The returned id is marked by handoffDone.
func (r *Router) statusHandoff(ctx context.Context, e *effects, team, lead string, seq int64, st leadv1.ProspectStatus, reason, owner, tp, what string, already bool) (string, error) {
	id := fmt.Sprintf("status:%s:%d:%s", lead, seq, what)
	if already {
		done, err := r.st.HandoffMarked(ctx, team, lead, id)
		if err != nil || done {
			return "", err
		}
	}
	b, _ := proto.Marshal(&scoringv1.SetStatusRequest{LeadId: lead, Status: st, Reason: reason, OwnerRepId: owner, RequestId: "routing:" + id})
	e.handoffs = append(e.handoffs, jobs.Job{ID: id, Payload: b, Traceparent: tp, LeadID: lead})
	return id, nil
}

func (r *Router) handoffDone(ctx context.Context, team, lead, id string) {
	if id == "" {
		return
	}
	if err := r.st.MarkHandoff(ctx, team, lead, id); err != nil {
		r.log.WarnContext(ctx, "mark hand-off", "error", err)
	}
}

// ---------------------------------------------------------------- accept, touch

// AcceptLead: the holder accepts the lead; scoring is told WORKING.
func (r *Router) AcceptLead(ctx context.Context, lead, rep string) (*routingv1.Assignment, error) {
	rec, err := r.leadHome(ctx, lead)
	if err != nil {
		return nil, err
	}
	ctx, span := leadtrace.Start(ctx, r.tracer, rec.TP, "routing.accept", lead)
	defer span.End()
	res, err := r.st.Run(ctx, store.Op{Op: "accept", Team: rec.Team, Lead: lead, Rep: rep, Now: ms(r.now())}, nil, nil)
	if err != nil {
		return nil, err
	}
	e := &effects{}
	switch res.St {
	case "OK":
		r.event(ctx, e, &eventsv1.LeadEvent{LeadId: lead, OrganisationId: rec.Org, Payload: &eventsv1.LeadEvent_LeadAccepted{LeadAccepted: &eventsv1.LeadAccepted{TeamId: rec.Team, RepId: rep}}})
		leadtrace.SetOutcome(span, "accepted")
	case "ALREADY":
		leadtrace.SetOutcome(span, "already_accepted")
	default:
		err := holderError(res, rep)
		leadtrace.Fail(span, err)
		return nil, err
	}
	hid, err := r.statusHandoff(ctx, e, rec.Team, lead, res.Seq, leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, "rep accepted", rep, rec.TP, "working", res.St == "ALREADY")
	if err != nil {
		return nil, err
	}
	if err := r.flush(ctx, e); err != nil {
		return nil, err
	}
	r.handoffDone(ctx, rec.Team, lead, hid)
	rec, err = r.st.Lead(ctx, rec.Team, lead)
	if err != nil {
		return nil, err
	}
	return Assignment(rec), nil
}

// RecordTouch records a touch by the holder.
func (r *Router) RecordTouch(ctx context.Context, lead, rep string, typ routingv1.TouchType, touchID string) (*routingv1.Assignment, bool, bool, bool, error) {
	rec, err := r.leadHome(ctx, lead)
	if err != nil {
		return nil, false, false, false, err
	}
	ctx, span := leadtrace.Start(ctx, r.tracer, rec.TP, "routing.touch", lead)
	defer span.End()
	res, err := r.st.Run(ctx, store.Op{Op: "touch", Team: rec.Team, Lead: lead, Rep: rep, TID: touchID, Now: ms(r.now())}, nil, nil)
	if err != nil {
		return nil, false, false, false, err
	}
	e := &effects{}
	dup := false
	switch res.St {
	case "OK":
		tt := strings.ToLower(strings.TrimPrefix(typ.String(), "TOUCH_TYPE_"))
		r.event(ctx, e, &eventsv1.LeadEvent{LeadId: lead, OrganisationId: rec.Org, Payload: &eventsv1.LeadEvent_LeadTouched{LeadTouched: &eventsv1.LeadTouched{
			TeamId: rec.Team, RepId: rep, TouchType: tt, FirstTouch: res.First, WithinSla: res.Within}}})
		if res.First {
			e.cancel = append(e.cancel, slaJobID(rec.Team, lead, res.Seq, "first_touch"))
			// The touches timer may wait behind the first-touch one (see
			// timers): it is scheduled now, once by its id.
			if res.TReq > 0 && res.Tch < res.TReq {
				r.timers(e, rec.Team, &store.Assigned{Lead: lead, Seq: res.Seq, TDue: res.TDue, Pol: rec.Pol, TP: rec.TP})
			}
		}
		if res.TReq > 0 && res.Tch >= res.TReq {
			e.cancel = append(e.cancel, slaJobID(rec.Team, lead, res.Seq, "touches"))
		}
		leadtrace.SetOutcome(span, "touched")
	case "DUP":
		dup = true
		leadtrace.SetOutcome(span, "duplicate")
	default:
		err := holderError(res, rep)
		leadtrace.Fail(span, err)
		return nil, false, false, false, err
	}
	if err := r.flush(ctx, e); err != nil {
		return nil, false, false, false, err
	}
	rec, err = r.st.Lead(ctx, rec.Team, lead)
	if err != nil {
		return nil, false, false, false, err
	}
	return Assignment(rec), res.First, res.Within, dup, nil
}

// ---------------------------------------------------------------- moves

// moved records the outcome of a "move" script call (reject, SLA breach,
// manual reassign) and returns its decision.
func (r *Router) moved(ctx context.Context, e *effects, c *domain.Config, team string, static []domain.StaticCandidate, res *store.Result, op store.Op,
	kind routingv1.DecisionKind, why []string, reason string, now time.Time, org string) *routingv1.RoutingDecision {
	d := &routingv1.RoutingDecision{
		Id: op.Dec, LeadId: op.Lead, Kind: kind, TeamId: team, RepId: res.Rep, Explanation: why,
		Candidates: explainCandidates(static, res.Before, res.Excl, res.Brx), ConfigVersion: c.Version, DecidedAt: timestamppb.New(now),
		FirstTouchDue: tsms(res.FTD), SlaPolicyId: res.Pol, TraceId: leadtrace.TraceID(res.TP),
	}
	r.cancelTimers(e, team, op.Lead, res.PrevSeq)
	switch res.St {
	case "ASSIGNED":
		d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_ASSIGNED
		a := res.Assigned
		r.timers(e, team, &a)
	case "QUEUED":
		d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_QUEUED
		d.Explanation = append(d.Explanation, "no other eligible rep with free capacity: queued")
	case "PARKED":
		d.Outcome = routingv1.DecisionOutcome_DECISION_OUTCOME_PARKED
	}
	if res.From != "" || res.St != "PARKED" {
		r.event(ctx, e, &eventsv1.LeadEvent{LeadId: op.Lead, OrganisationId: org, Payload: &eventsv1.LeadEvent_LeadReassigned{LeadReassigned: &eventsv1.LeadReassigned{
			TeamId: team, FromRepId: res.From, ToRepId: res.Rep, Reason: reason}}})
	}
	switch res.St {
	case "ASSIGNED":
		r.event(ctx, e, &eventsv1.LeadEvent{LeadId: op.Lead, OrganisationId: org, Payload: &eventsv1.LeadEvent_LeadAssigned{LeadAssigned: &eventsv1.LeadAssigned{
			TeamId: team, RepId: res.Rep, DecisionId: d.Id, FirstTouchDue: d.FirstTouchDue}}})
	case "QUEUED":
		r.event(ctx, e, &eventsv1.LeadEvent{LeadId: op.Lead, OrganisationId: org, Payload: &eventsv1.LeadEvent_LeadQueued{LeadQueued: &eventsv1.LeadQueued{TeamId: team, DecisionId: d.Id}}})
	}
	e.decisions = append(e.decisions, d)
	r.handedOut(ctx, e, c, team, static, res.Drained, now)
	r.routed.Add(ctx, 1, routedAttrs.Of(kind.String(), d.Outcome.String()))
	return d
}

// runMove runs a "move" op, reloading the configuration when stale.
func (r *Router) runMove(ctx context.Context, op store.Op) (*domain.Config, []domain.StaticCandidate, *store.Result, time.Time, error) {
	c, err := r.config(ctx)
	if err != nil {
		return nil, nil, nil, time.Time{}, err
	}
	for range 3 {
		now := r.now()
		static := c.Candidates(op.Team, now)
		op.Now, op.Ver, op.Cands, op.Dec, op.Decs = ms(now), c.Version, cands(static), newID(), newIDs(drainBatch)
		res, err := r.st.Run(ctx, op, nil, nil)
		if err != nil {
			return nil, nil, nil, now, err
		}
		if res.St != "STALE" {
			return c, static, res, now, nil
		}
		if c, err = r.reload(ctx); err != nil {
			return nil, nil, nil, now, err
		}
	}
	return nil, nil, nil, time.Time{}, status.Error(codes.Aborted, "routing configuration kept changing; retry")
}

// RejectLead: the holder rejects the lead; it is rerouted inside the team and
// never comes back to this rep.
func (r *Router) RejectLead(ctx context.Context, lead, rep, reason string) (*routingv1.RoutingDecision, error) {
	rec, err := r.leadHome(ctx, lead)
	if err != nil {
		return nil, err
	}
	ctx, span := leadtrace.Start(ctx, r.tracer, rec.TP, "routing.reject", lead)
	defer span.End()
	op := store.Op{Op: "move", Mode: "reject", Team: rec.Team, Lead: lead, Rep: rep, Reason: reason}
	c, static, res, now, err := r.runMove(ctx, op)
	if err != nil {
		return nil, err
	}
	if res.St != "ASSIGNED" && res.St != "QUEUED" {
		err := holderError(res, rep)
		leadtrace.Fail(span, err)
		return nil, err
	}
	op.Dec = res.Dec
	if op.Dec == "" {
		op.Dec = newID()
	}
	e := &effects{}
	r.event(ctx, e, &eventsv1.LeadEvent{LeadId: lead, OrganisationId: rec.Org, Payload: &eventsv1.LeadEvent_LeadRejected{LeadRejected: &eventsv1.LeadRejected{TeamId: rec.Team, RepId: rep, Reason: reason}}})
	d := r.moved(ctx, e, c, rec.Team, static, res, op, routingv1.DecisionKind_DECISION_KIND_REJECT_REROUTE,
		[]string{fmt.Sprintf("rejected by %s: %s; rerouted inside team %s, never back to a rep who rejected it", rep, reason, rec.Team)}, "rejected", now, rec.Org)
	leadtrace.SetOutcome(span, "rejected_"+strings.ToLower(res.St))
	return d, r.flush(ctx, e)
}

// Reassign moves a lead to another rep (or the next by rotation).
func (r *Router) Reassign(ctx context.Context, lead, to, reason string, force bool) (*routingv1.RoutingDecision, error) {
	rec, err := r.leadHome(ctx, lead)
	if err != nil {
		return nil, err
	}
	ctx, span := leadtrace.Start(ctx, r.tracer, rec.TP, "routing.reassign", lead)
	defer span.End()
	c, err := r.config(ctx)
	if err != nil {
		return nil, err
	}
	if !active(rec.State) {
		return nil, status.Errorf(codes.FailedPrecondition, "lead is %s; only queued, assigned, accepted or parked leads can be reassigned", rec.State)
	}
	team := rec.Team
	if to != "" {
		rp, ok := c.Reps[to]
		if !ok {
			return nil, status.Errorf(codes.NotFound, "rep %q is not in the routing configuration", to)
		}
		if rp.TeamID != rec.Team {
			d, err := r.reassignAcross(ctx, c, rec, rp, reason, force)
			if err != nil {
				leadtrace.Fail(span, err)
			} else {
				leadtrace.SetOutcome(span, "reassigned")
			}
			return d, err
		}
	}
	why := "manual reassignment"
	if reason != "" {
		why += ": " + reason
	}
	op := store.Op{Op: "move", Mode: "manual", Team: team, Lead: lead, To: to, Force: force, Reason: reason}
	c, static, res, now, err := r.runMove(ctx, op)
	if err != nil {
		return nil, err
	}
	switch res.St {
	case "ASSIGNED", "QUEUED":
	case "ALREADY":
		return r.st.Decision(ctx, res.Dec)
	case "NOTELIGIBLE":
		return nil, status.Errorf(codes.FailedPrecondition, "rep %s cannot take the lead now (away, out of office, outside working hours or over capacity); use force to override", to)
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "lead is %s", res.State)
	}
	op.Dec = res.Dec
	if op.Dec == "" {
		op.Dec = newID()
	}
	e := &effects{}
	d := r.moved(ctx, e, c, team, static, res, op, routingv1.DecisionKind_DECISION_KIND_MANUAL_REASSIGN, []string{why}, "manual", now, rec.Org)
	leadtrace.SetOutcome(span, "reassigned_"+strings.ToLower(res.St))
	return d, r.flush(ctx, e)
}

// reassignAcross moves a lead to a rep of another team: route it there
// first (so a refusal changes nothing), then take it out of the old team.
func (r *Router) reassignAcross(ctx context.Context, c *domain.Config, rec *store.Record, rep *domain.Rep, reason string, force bool) (*routingv1.RoutingDecision, error) {
	now := r.now()
	static := c.Candidates(rep.TeamID, now)
	sc := &leadv1.Score{}
	_ = proto.Unmarshal(rec.ScoreBytes, sc)
	reasons, _ := json.Marshal(rec.Reasons)
	op := store.Op{Op: "route", Team: rep.TeamID, Lead: rec.Lead, Now: ms(now), Ver: c.Version, Cands: cands(static), Dec: newID(),
		Pref: rep.ID, Strict: true, Force: force, TP: rec.TP, Heat: rec.Heat, Score: rec.Score, Reasons: string(reasons), Org: rec.Org}
	if pol := c.Policy(rep.TeamID, sc.GetHeat()); pol != nil {
		op.Pol = pol.GetId()
		op.FTW = pol.GetFirstTouchWithin().AsDuration().Milliseconds()
		if pol.GetTouchesRequired() > 0 {
			op.TW, op.TReq = pol.GetTouchesWithin().AsDuration().Milliseconds(), int(pol.GetTouchesRequired())
		}
	}
	res, err := r.st.Run(ctx, op, rec.Profile, rec.ScoreBytes)
	if err != nil {
		return nil, err
	}
	switch res.St {
	case "ASSIGNED":
	case "NOPREF":
		return nil, status.Errorf(codes.FailedPrecondition, "rep %s cannot take the lead now; use force to override", rep.ID)
	case "STALE":
		return nil, status.Error(codes.Aborted, "routing configuration changed; retry")
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "lead is already %s in team %s", res.State, rep.TeamID)
	}
	if _, _, err := r.release(ctx, rec.Team, rec.Lead, store.Op{Op: "release", Mode: "moveout", NewSt: "moved", Reason: "reassigned to team " + rep.TeamID}); err != nil {
		return nil, err
	}
	if err := r.st.SetLeadTeam(ctx, rec.Lead, rep.TeamID); err != nil {
		return nil, err
	}
	loads := copyLoads(res.Loads)
	loads[res.Rep]--
	d := &routingv1.RoutingDecision{
		Id: op.Dec, LeadId: rec.Lead, Kind: routingv1.DecisionKind_DECISION_KIND_MANUAL_REASSIGN, Outcome: routingv1.DecisionOutcome_DECISION_OUTCOME_ASSIGNED,
		TeamId: rep.TeamID, RepId: res.Rep, Explanation: []string{fmt.Sprintf("manual reassignment from team %s: %s", rec.Team, reason)},
		Candidates: explainCandidates(static, loads, nil, nil), ConfigVersion: c.Version, DecidedAt: timestamppb.New(now),
		FirstTouchDue: tsms(res.FTD), SlaPolicyId: op.Pol, Reasons: rec.Reasons, TraceId: leadtrace.TraceID(rec.TP),
	}
	e := &effects{decisions: []*routingv1.RoutingDecision{d}}
	a := res.Assigned
	r.timers(e, rep.TeamID, &a)
	r.event(ctx, e, &eventsv1.LeadEvent{LeadId: rec.Lead, OrganisationId: rec.Org, Payload: &eventsv1.LeadEvent_LeadReassigned{LeadReassigned: &eventsv1.LeadReassigned{
		TeamId: rep.TeamID, FromRepId: rec.Rep, ToRepId: res.Rep, Reason: "manual"}}})
	r.event(ctx, e, &eventsv1.LeadEvent{LeadId: rec.Lead, OrganisationId: rec.Org, Payload: &eventsv1.LeadEvent_LeadAssigned{LeadAssigned: &eventsv1.LeadAssigned{
		TeamId: rep.TeamID, RepId: res.Rep, DecisionId: d.Id, FirstTouchDue: d.FirstTouchDue}}})
	return d, r.flush(ctx, e)
}

// ---------------------------------------------------------------- SLA

func (r *Router) handleSLA(ctx context.Context, j jobs.Job) error {
	var p slaPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return jobs.Permanent(fmt.Errorf("decode SLA timer: %w", err))
	}
	c, err := r.config(ctx)
	if err != nil {
		return err
	}
	if _, ok := c.Teams[p.Team]; !ok {
		return nil // the team is gone; nothing to enforce
	}
	pol := c.PolicyByID(p.Pol)
	if pol == nil {
		return nil // the policy was removed since the assignment
	}
	action, actionName := "reassign", "reassign"
	switch pol.GetAction() {
	case routingv1.BreachAction_BREACH_ACTION_NOTIFY_TEAM_LEAD:
		action, actionName = "notify", "notify_team_lead"
	case routingv1.BreachAction_BREACH_ACTION_PARK:
		action, actionName = "park", "park"
	}
	ctx, span := leadtrace.Start(ctx, r.tracer, j.Traceparent, "routing.sla_breach", p.Lead)
	defer span.End()
	op := store.Op{Op: "move", Mode: "breach", Team: p.Team, Lead: p.Lead, Seq: p.Seq, Kind: p.Kind, Action: action, ParkAft: int(pol.GetParkAfterReassignments())}
	c, static, res, now, err := r.runMove(ctx, op)
	if err != nil {
		return err
	}
	e := &effects{}
	if p.Next != "" && (res.St == "NOTIFIED" || res.St == "NOOP" && res.Held) {
		// The assignment stands: its other timer is due next.
		e.timers = append(e.timers, slaJob(slaPayload{Team: p.Team, Lead: p.Lead, Seq: p.Seq, Kind: p.Next, Pol: p.Pol}, j.Traceparent, p.NextDue))
	}
	switch res.St {
	case "NOOP", "NOTFOUND":
		leadtrace.SetOutcome(span, "sla_met")
		return r.flush(ctx, e)
	case "NOTIFIED":
		lead := c.Teams[p.Team].LeadRep
		if lr, ok := c.Reps[lead]; ok {
			if _, err := r.st.AddInbox(ctx, lr.TeamID, lead, map[string]any{"k": "sla_breach", "lead": p.Lead, "dec": "", "at": ms(now), "rep": res.Rep, "note": p.Kind}); err != nil {
				return err
			}
		}
	case "PARKED":
		op.Dec = res.Dec
		r.moved(ctx, e, c, p.Team, static, res, op, routingv1.DecisionKind_DECISION_KIND_SLA_BREACH,
			[]string{fmt.Sprintf("SLA %s breached by %s (policy %s): parked until a manager reassigns it", p.Kind, res.From, pol.GetId())}, "sla_breach", now, "")
		actionName = "park"
	case "ASSIGNED", "QUEUED":
		op.Dec = res.Dec
		if op.Dec == "" {
			op.Dec = newID()
		}
		r.moved(ctx, e, c, p.Team, static, res, op, routingv1.DecisionKind_DECISION_KIND_SLA_BREACH,
			[]string{fmt.Sprintf("SLA %s breached by %s (policy %s): reassigned", p.Kind, res.From, pol.GetId())}, "sla_breach", now, "")
	default:
		return fmt.Errorf("breach script answered %q", res.St)
	}
	holder := res.From
	if res.St == "NOTIFIED" {
		holder = res.Rep
	}
	r.event(ctx, e, &eventsv1.LeadEvent{LeadId: p.Lead, Payload: &eventsv1.LeadEvent_SlaBreached{SlaBreached: &eventsv1.SlaBreached{
		TeamId: p.Team, RepId: holder, PolicyId: pol.GetId(), Kind: p.Kind, Action: actionName}}})
	r.breaches.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", p.Kind), attribute.String("action", actionName)))
	leadtrace.SetOutcome(span, "sla_breached_"+actionName)
	return r.flush(ctx, e)
}

// ---------------------------------------------------------------- hand-offs

func (r *Router) handleHandoff(ctx context.Context, j jobs.Job) error {
	req := &scoringv1.SetStatusRequest{}
	if err := proto.Unmarshal(j.Payload, req); err != nil {
		return jobs.Permanent(fmt.Errorf("decode hand-off: %w", err))
	}
	if r.scoring == nil {
		return errors.New("no scoring client configured")
	}
	err := r.scoring.SetStatus(ctx, req)
	switch status.Code(err) {
	case codes.OK:
		return nil
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated:
		return jobs.Permanent(err)
	}
	return err
}

// ---------------------------------------------------------------- queries

// GetAssignment returns where a lead is.
func (r *Router) GetAssignment(ctx context.Context, lead string) (*routingv1.Assignment, error) {
	rec, err := r.leadHome(ctx, lead)
	if err != nil {
		return nil, err
	}
	return Assignment(rec), nil
}

// ListAssignments lists a rep's open leads.
func (r *Router) ListAssignments(ctx context.Context, rep string, offset, limit int64) ([]*routingv1.Assignment, bool, error) {
	c, err := r.config(ctx)
	if err != nil {
		return nil, false, err
	}
	rp, ok := c.Reps[rep]
	if !ok {
		return nil, false, status.Errorf(codes.NotFound, "rep %q is not in the routing configuration", rep)
	}
	ids, err := r.st.RepLeads(ctx, rp.TeamID, rep, offset, limit+1)
	if err != nil {
		return nil, false, err
	}
	more := len(ids) > int(limit)
	if more {
		ids = ids[:limit]
	}
	recs, err := r.st.Leads(ctx, rp.TeamID, ids)
	if err != nil {
		return nil, false, err
	}
	out := make([]*routingv1.Assignment, 0, len(ids))
	for _, rec := range recs {
		if rec != nil {
			out = append(out, Assignment(rec))
		}
	}
	return out, more, nil
}

// GetQueue lists a team's queue then its parked leads.
func (r *Router) GetQueue(ctx context.Context, team string, offset, limit int64) ([]*routingv1.QueueEntry, int64, int64, bool, error) {
	c, err := r.config(ctx)
	if err != nil {
		return nil, 0, 0, false, err
	}
	if _, ok := c.Teams[team]; !ok {
		return nil, 0, 0, false, status.Errorf(codes.NotFound, "team %q is not in the routing configuration", team)
	}
	q, nq, err := r.st.QueueEntries(ctx, team, false, offset, limit)
	if err != nil {
		return nil, 0, 0, false, err
	}
	var pk []redisZ
	poff := max(0, offset-nq)
	rest := limit - int64(len(q))
	pz, np, err := r.st.QueueEntries(ctx, team, true, poff, max(rest, 1))
	if err != nil {
		return nil, 0, 0, false, err
	}
	if rest > 0 {
		for _, z := range pz {
			pk = append(pk, redisZ{z.Member.(string), true})
		}
	}
	var all []redisZ
	for _, z := range q {
		all = append(all, redisZ{z.Member.(string), false})
	}
	all = append(all, pk...)
	ids := make([]string, len(all))
	for i, z := range all {
		ids[i] = z.id
	}
	recs, err := r.st.Leads(ctx, team, ids)
	if err != nil {
		return nil, 0, 0, false, err
	}
	out := make([]*routingv1.QueueEntry, 0, len(all))
	for i, z := range all {
		rec := recs[i]
		if rec == nil {
			continue
		}
		ex := append([]string(nil), rec.Excluded...)
		out = append(out, &routingv1.QueueEntry{LeadId: z.id, Position: int32(offset) + int32(i), Heat: leadv1.Heat(rec.Heat), ScoreTotal: int32(rec.Score),
			QueuedAt: tsms(rec.QueuedAt), ExcludedReps: ex, Parked: z.parked})
	}
	more := offset+int64(len(all)) < nq+np
	return out, nq, np, more, nil
}

type redisZ struct {
	id     string
	parked bool
}

// Decision returns one decision.
func (r *Router) Decision(ctx context.Context, id string) (*routingv1.RoutingDecision, error) {
	d, err := r.st.Decision(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "decision %s not found", id)
	}
	return d, err
}

// Decisions lists a lead's decisions newest first.
func (r *Router) Decisions(ctx context.Context, lead string, offset, limit int64) ([]*routingv1.RoutingDecision, bool, error) {
	ds, n, err := r.st.Decisions(ctx, lead, offset, limit)
	if err != nil {
		return nil, false, err
	}
	return ds, offset+int64(len(ds)) < n, nil
}
