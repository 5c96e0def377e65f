// Package demo plays a realistic, bounded and deterministic stream of leads
// through a running LeadFlow suite, using only the services' public APIs:
// capture, engagement, scoring to MQL, routing to reps, the reps' work,
// qualification, deals through the pipeline to won or lost, and the funnel
// report at the end.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/leadflow/leadflow/cmd/internal/apply"
	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/render"
	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
)

// Options configure a demo run.
type Options struct {
	// Leads is how many submissions to play (a few are second submissions of
	// earlier leads, merged by capture).
	Leads int
	// Seed makes the run deterministic: the same seed plays the same people,
	// companies, signals and outcomes.
	Seed uint64
	// RunID tags this run's e-mail addresses and idempotency keys so that a
	// second run against the same suite makes new leads; empty = derived
	// from the clock.
	RunID string
	// Wait bounds every wait for an asynchronous hand-off (capture → scoring
	// → routing, accept → WORKING, qualified → deal, events → reporting).
	Wait time.Duration
	// Config is the configuration applied first (YAML, see package apply);
	// nil skips it.
	Config []byte
	// Out receives the progress and the report.
	Out io.Writer
	// Verbose prints one line per lead at the end.
	Verbose bool
}

// Summary is what the run did.
type Summary struct {
	RunID                                     string
	Submissions, NewLeads, Merged, Signals    int
	MQL, Assigned, Queued                     int
	Accepted, Rejected, Touches               int
	Junk, Recycled, Unreachable               int
	Qualified, Deals, Won, Lost, LostRecycled int
	Open                                      int
	Revenue                                   map[string]int64
	// JourneyLeadID and JourneyTraceID name one lead that went the whole way
	// to won, and its trace.
	JourneyLeadID, JourneyTraceID string
	Funnel                        *reportingv1.GetFunnelResponse
	// Failures are the calls that failed, each with the lead and the status.
	Failures []string
}

type lead struct {
	p        person
	id       string
	traceID  string
	orgID    string
	signals  int
	mql      bool
	score    int32
	rep      string
	team     string
	rejected string
	queued   bool
	deal     *pipelinev1.Deal
	outcome  string
	failed   bool
}

type runner struct {
	c      *client.Clients
	o      Options
	out    io.Writer
	rng    *rand.Rand
	sum    *Summary
	leads  []*lead // unique leads, in submission order
	start  time.Time
	stages []*pipelinev1.Stage
	lost   []string
}

// Run plays the demo. It returns the summary and an error when a call failed
// or a hand-off did not happen within the wait (the summary then says which).
func Run(ctx context.Context, c *client.Clients, o Options) (*Summary, error) {
	if o.Leads < 1 {
		return nil, errors.New("demo: --leads must be at least 1")
	}
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.RunID == "" {
		o.RunID = fmt.Sprintf("r%x", time.Now().Unix()%0xfffff)
	}
	r := &runner{
		c: c, o: o, out: o.Out, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0xdead)),
		sum: &Summary{RunID: o.RunID, Revenue: map[string]int64{}},
	}
	fmt.Fprintf(r.out, "LeadFlow demo: %d submissions, seed %d, run %s\n\n", o.Leads, o.Seed, o.RunID)

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"configuration", r.configure},
		{"capture", r.capture},
		{"engagement", r.engage},
		{"scoring", r.awaitScoring},
		{"routing", r.awaitRouting},
		{"sales work", r.work},
		{"qualification", r.qualify},
		{"deals", r.deals},
		{"reporting", r.report},
	}
	for i, s := range steps {
		fmt.Fprintf(r.out, "%d. %-14s ", i+1, s.name)
		if err := s.fn(ctx); err != nil {
			fmt.Fprintf(r.out, "FAILED\n")
			return r.sum, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	r.final()
	if len(r.sum.Failures) > 0 {
		return r.sum, fmt.Errorf("%d step(s) of the journey failed (listed above)", len(r.sum.Failures))
	}
	return r.sum, nil
}

// line prints the rest of a step's line, then continuation lines indented.
func (r *runner) line(format string, a ...any) {
	fmt.Fprintf(r.out, format+"\n", a...)
}

func (r *runner) more(format string, a ...any) {
	fmt.Fprintf(r.out, "   %-14s %s\n", "", fmt.Sprintf(format, a...))
}

func (r *runner) fail(l *lead, call string, err error) {
	who := "demo"
	if l != nil {
		who = fmt.Sprintf("lead #%d", l.p.index)
		if l.id != "" {
			who += " (" + l.id + ")"
		}
		l.failed = true
	}
	r.sum.Failures = append(r.sum.Failures, fmt.Sprintf("%s: %s", who, client.Wrap(call, err)))
}

func (r *runner) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 10*time.Second)
}

func (r *runner) key(l *lead, what string) string {
	return fmt.Sprintf("demo-%s-%d-%s", r.o.RunID, l.p.index, what)
}

// ------------------------------------------------------------------ 1. config

func (r *runner) configure(ctx context.Context) error {
	if r.o.Config == nil {
		r.line("skipped (no configuration given)")
	} else {
		f, err := apply.Parse(r.o.Config)
		if err != nil {
			return err
		}
		res, err := apply.Apply(ctx, r.c, f)
		for i, x := range res {
			if i == 0 {
				r.line("%s", x)
			} else {
				r.more("%s", x)
			}
		}
		if err != nil {
			return err
		}
	}
	p, err := r.c.Pipeline.GetPipeline(ctx, &pipelinev1.GetPipelineRequest{})
	if err != nil {
		return client.Wrap("pipeline GetPipeline(default)", err)
	}
	for _, s := range p.GetPipeline().GetStages() {
		if s.GetKind() == pipelinev1.StageKind_STAGE_KIND_OPEN {
			r.stages = append(r.stages, s)
		}
	}
	if len(r.stages) == 0 {
		return errors.New("the default pipeline has no open stage")
	}
	lr, err := r.c.Pipeline.ListLostReasons(ctx, &pipelinev1.ListLostReasonsRequest{})
	if err != nil {
		return client.Wrap("pipeline ListLostReasons", err)
	}
	r.lost = lr.GetReasons()
	if len(r.lost) == 0 {
		return errors.New("the pipeline service has no lost reasons configured")
	}
	return nil
}

// ------------------------------------------------------------------ 2. capture

func (r *runner) capture(ctx context.Context) error {
	people := plan(r.o.Leads, r.o.Seed, r.o.RunID)
	r.start = time.Now().UTC()
	byIndex := map[int]*lead{}
	chans := map[string]bool{}
	for _, p := range people {
		ch := channels[p.touch]
		chans[ch.source] = true
		req := &capturev1.SubmitLeadRequest{
			IdempotencyKey: fmt.Sprintf("demo-%s-%d-submit", r.o.RunID, p.index),
			Submission: &capturev1.LeadSubmission{
				Contact: &leadv1.Contact{FirstName: p.first, LastName: p.last, Email: p.email, JobTitle: p.title},
				Company: &capturev1.Company{
					Name: p.co.name, Website: "https://www." + p.co.slug + ".example/", Industry: p.co.industry,
					EmployeeCount: p.co.employees, Country: p.co.country, Region: p.co.region,
				},
				ProductInterests: p.products,
				Touch: &leadv1.Touch{
					Channel: ch.channel, Source: ch.source, Medium: ch.medium, Campaign: ch.campaign,
					UtmSource: ch.source, UtmMedium: ch.medium, UtmCampaign: ch.campaign,
					LandingPage: "https://leadflow.example/" + strings.ToLower(strings.ReplaceAll(ch.source, " ", "-")),
				},
				Consent: &leadv1.Consent{MarketingOptIn: p.index%3 != 0, GivenAt: timestamppb.Now(), WordingVersion: "privacy-2026-03"},
			},
		}
		if p.co.revenueMinor > 0 {
			req.Submission.Company.AnnualRevenue = &leadv1.Money{AmountMinor: p.co.revenueMinor, CurrencyCode: p.co.currency}
		}
		if p.freeMail {
			req.Submission.Company.Website = "" // a private address: no company domain
		}
		r.sum.Submissions++
		cctx, cancel := r.callCtx(ctx)
		resp, err := r.c.Capture.SubmitLead(cctx, req)
		cancel()
		if err != nil {
			r.fail(&lead{p: p}, "capture SubmitLead", err)
			continue
		}
		if p.duplicateOf >= 0 {
			r.sum.Merged++
			if resp.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_MERGED {
				r.fail(&lead{p: p, id: resp.GetLeadId()}, "capture SubmitLead (second submission)",
					fmt.Errorf("expected a merge into lead #%d, got %s", p.duplicateOf, resp.GetOutcome()))
			}
			continue
		}
		if resp.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED {
			r.fail(&lead{p: p, id: resp.GetLeadId()}, "capture SubmitLead", fmt.Errorf("expected a new lead, got %s (matched on %s)", resp.GetOutcome(), resp.GetMatchedOn()))
			continue
		}
		l := &lead{p: p, id: resp.GetLeadId(), traceID: resp.GetTraceId(), orgID: resp.GetOrganisationId()}
		byIndex[p.index] = l
		r.leads = append(r.leads, l)
		r.sum.NewLeads++
	}
	r.line("%d submissions from %d sources: %d new leads, %d merged into earlier ones (same e-mail)",
		r.sum.Submissions, len(chans), r.sum.NewLeads, r.sum.Merged)
	if len(r.leads) == 0 {
		return errors.New("no lead was captured")
	}
	return nil
}

// ------------------------------------------------------------------ 3. engagement

func (r *runner) engage(ctx context.Context) error {
	kinds := map[leadv1.SignalType]int{}
	for _, l := range r.leads {
		var sig []leadv1.SignalType
		if l.p.fate == fateCold {
			sig = []leadv1.SignalType{leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW, leadv1.SignalType_SIGNAL_TYPE_EMAIL_OPEN}
		} else {
			sig = []leadv1.SignalType{
				leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW, leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW, leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW,
				leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW,
				leadv1.SignalType_SIGNAL_TYPE_CONTENT_DOWNLOAD, leadv1.SignalType_SIGNAL_TYPE_WEBINAR_ATTENDED,
				leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST,
			}
			if r.rng.IntN(2) == 0 {
				sig = append(sig, leadv1.SignalType_SIGNAL_TYPE_EMAIL_CLICK, leadv1.SignalType_SIGNAL_TYPE_CHAT)
			}
		}
		for k, t := range sig {
			req := &capturev1.RecordEngagementRequest{Signal: &leadv1.EngagementSignal{
				Id: r.key(l, fmt.Sprintf("sig%d", k)), LeadId: l.id, Type: t, OccurredAt: timestamppb.Now(),
				Subject: subject(t), Campaign: channels[l.p.touch].campaign,
			}}
			cctx, cancel := r.callCtx(ctx)
			_, err := r.c.Capture.RecordEngagement(cctx, req)
			cancel()
			if err != nil {
				r.fail(l, "capture RecordEngagement", err)
				break
			}
			l.signals++
			kinds[t]++
			r.sum.Signals++
		}
	}
	r.line("%d signals: %d page views, %d pricing views, %d webinars attended, %d demo requests, %d other",
		r.sum.Signals, kinds[leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW], kinds[leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW],
		kinds[leadv1.SignalType_SIGNAL_TYPE_WEBINAR_ATTENDED], kinds[leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST],
		r.sum.Signals-kinds[leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW]-kinds[leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW]-
			kinds[leadv1.SignalType_SIGNAL_TYPE_WEBINAR_ATTENDED]-kinds[leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST])
	return nil
}

func subject(t leadv1.SignalType) string {
	switch t {
	case leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW:
		return "https://leadflow.example/pricing"
	case leadv1.SignalType_SIGNAL_TYPE_CONTENT_DOWNLOAD:
		return "whitepaper-revenue-operations"
	case leadv1.SignalType_SIGNAL_TYPE_WEBINAR_ATTENDED:
		return "webinar-2026-11"
	case leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST:
		return "https://leadflow.example/demo"
	case leadv1.SignalType_SIGNAL_TYPE_EMAIL_OPEN, leadv1.SignalType_SIGNAL_TYPE_EMAIL_CLICK:
		return "nurture-nov-2"
	}
	return "https://leadflow.example/product"
}

// ------------------------------------------------------------------ waiting

// await polls check for every lead until it says done, or until the wait
// is over; then each lead still pending is a failure with the last thing
// seen. check returns done, and a note of the state for the failure report.
func (r *runner) await(ctx context.Context, what string, ls []*lead, check func(ctx context.Context, l *lead) (bool, string, error)) []*lead {
	deadline := time.Now().Add(r.o.Wait)
	pending := slices.Clone(ls)
	notes := map[*lead]string{}
	for len(pending) > 0 {
		var next []*lead
		for _, l := range pending {
			cctx, cancel := r.callCtx(ctx)
			done, note, err := check(cctx, l)
			cancel()
			if err != nil && status.Code(err) != codes.NotFound {
				note = client.Describe(err)
			} else if err != nil {
				note = "not found yet"
			}
			notes[l] = note
			if !done {
				next = append(next, l)
			}
		}
		pending = next
		if len(pending) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(150 * time.Millisecond)
	}
	for _, l := range pending {
		r.fail(l, what, fmt.Errorf("not done after %s; last seen: %s", r.o.Wait, notes[l]))
	}
	return pending
}

func ok(ls []*lead, keep func(*lead) bool) []*lead {
	var out []*lead
	for _, l := range ls {
		if !l.failed && keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// ------------------------------------------------------------------ 4. scoring

func (r *runner) awaitScoring(ctx context.Context) error {
	t0 := time.Now()
	ls := ok(r.leads, func(*lead) bool { return true })
	r.await(ctx, "scoring GetLead (wait for capture → scoring hand-off and every signal)", ls, func(ctx context.Context, l *lead) (bool, string, error) {
		resp, err := r.c.Scoring.GetLead(ctx, &scoringv1.GetLeadRequest{LeadId: l.id})
		if err != nil {
			return false, "", err
		}
		sl := resp.GetLead()
		l.score = sl.GetScore().GetTotal()
		l.mql = sl.GetScore().GetMql() || sl.GetMqlEpisodes() > 0
		return int(sl.GetSignalCount()) >= l.signals, fmt.Sprintf("%d of %d signals applied, score %d", sl.GetSignalCount(), l.signals, l.score), nil
	})
	below := 0
	for _, l := range ok(r.leads, func(*lead) bool { return true }) {
		if l.mql {
			r.sum.MQL++
			if l.p.fate == fateCold { // scored higher than planned: the rep recycles it
				l.p.fate = fateRecycle
			}
		} else {
			below++
			l.outcome = fmt.Sprintf("captured, score %d (below MQL)", l.score)
		}
	}
	r.line("%d of %d leads reached MQL and were handed to routing; %d stay with marketing (%s)",
		r.sum.MQL, len(r.leads), below, render.Dur(time.Since(t0)))
	return nil
}

// ------------------------------------------------------------------ 5. routing

func (r *runner) awaitAssigned(ctx context.Context, what string, ls []*lead, notRep func(*lead) string) {
	r.await(ctx, what, ls, func(ctx context.Context, l *lead) (bool, string, error) {
		resp, err := r.c.Routing.GetAssignment(ctx, &routingv1.GetAssignmentRequest{LeadId: l.id})
		if err != nil {
			return false, "", err
		}
		a := resp.GetAssignment()
		l.team = a.GetTeamId()
		switch a.GetState() {
		case routingv1.AssignmentState_ASSIGNMENT_STATE_QUEUED, routingv1.AssignmentState_ASSIGNMENT_STATE_PARKED:
			// Settled for now: every eligible rep is at capacity or out of
			// hours (e.g. after many demo runs against one suite). The lead
			// waits in the team's queue; that is not a failure.
			l.queued = true
			l.outcome = "waiting in the " + a.GetTeamId() + " queue"
			return true, "", nil
		case routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED:
			if a.GetRepId() != "" && a.GetRepId() != notRep(l) {
				l.rep, l.queued = a.GetRepId(), false
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%s in team %q", a.GetState(), a.GetTeamId()), nil
	})
}

func (r *runner) awaitRouting(ctx context.Context) error {
	t0 := time.Now()
	ls := ok(r.leads, func(l *lead) bool { return l.mql })
	r.awaitAssigned(ctx, "routing GetAssignment (wait for scoring → routing hand-off)", ls, func(*lead) string { return "" })
	byTeam := map[string]int{}
	for _, l := range ls {
		if l.rep != "" {
			r.sum.Assigned++
			byTeam[l.team]++
		} else if l.queued {
			r.sum.Queued++
		}
	}
	r.line("%d MQLs assigned to reps: %s (%s)", r.sum.Assigned, counts(byTeam), render.Dur(time.Since(t0)))
	if r.sum.Queued > 0 {
		r.more("%d waiting in a team queue: every eligible rep is at capacity or out of hours (leadflow queue <team>)", r.sum.Queued)
	}
	return nil
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// ------------------------------------------------------------------ 6. sales work

func (r *runner) touch(ctx context.Context, l *lead, n int, t routingv1.TouchType) bool {
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	_, err := r.c.Routing.RecordTouch(cctx, &routingv1.RecordTouchRequest{LeadId: l.id, RepId: l.rep, Type: t, TouchId: r.key(l, fmt.Sprintf("touch%d", n))})
	if err != nil {
		r.fail(l, "routing RecordTouch", err)
		return false
	}
	r.sum.Touches++
	return true
}

func (r *runner) giveBack(ctx context.Context, l *lead, o routingv1.GiveBackOutcome, reason string) bool {
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	_, err := r.c.Routing.GiveBack(cctx, &routingv1.GiveBackRequest{LeadId: l.id, RepId: l.rep, Outcome: o, Reason: reason})
	if err != nil {
		r.fail(l, "routing GiveBack "+o.String(), err)
		return false
	}
	return true
}

func (r *runner) accept(ctx context.Context, l *lead) bool {
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	if _, err := r.c.Routing.AcceptLead(cctx, &routingv1.AcceptLeadRequest{LeadId: l.id, RepId: l.rep}); err != nil {
		r.fail(l, "routing AcceptLead", err)
		return false
	}
	r.sum.Accepted++
	return true
}

func (r *runner) work(ctx context.Context) error {
	ls := ok(r.leads, func(l *lead) bool { return l.rep != "" })
	// Rejections first: the lead is rerouted inside the team to another rep.
	var rerouted []*lead
	for _, l := range ls {
		if l.p.fate != fateReject {
			continue
		}
		cctx, cancel := r.callCtx(ctx)
		_, err := r.c.Routing.RejectLead(cctx, &routingv1.RejectLeadRequest{LeadId: l.id, RepId: l.rep, Reason: "existing partner account; not mine to work"})
		cancel()
		if err != nil {
			r.fail(l, "routing RejectLead", err)
			continue
		}
		r.sum.Rejected++
		l.rejected, l.rep = l.rep, ""
		rerouted = append(rerouted, l)
	}
	if len(rerouted) > 0 {
		r.awaitAssigned(ctx, "routing GetAssignment (wait for the reroute after a rejection)", rerouted, func(l *lead) string { return l.rejected })
		for _, l := range rerouted {
			if l.queued && !l.failed {
				r.sum.Queued++
			}
		}
	}
	for _, l := range ok(ls, func(l *lead) bool { return l.rep != "" }) {
		switch l.p.fate {
		case fateJunk:
			if r.giveBack(ctx, l, routingv1.GiveBackOutcome_GIVE_BACK_OUTCOME_JUNK, "student project; no buying intent") {
				r.sum.Junk++
				l.outcome = "junk (bad fit)"
			}
			continue
		}
		if !r.accept(ctx, l) || !r.touch(ctx, l, 1, routingv1.TouchType_TOUCH_TYPE_CALL) {
			continue
		}
		switch l.p.fate {
		case fateRecycle:
			if r.touch(ctx, l, 2, routingv1.TouchType_TOUCH_TYPE_EMAIL) &&
				r.giveBack(ctx, l, routingv1.GiveBackOutcome_GIVE_BACK_OUTCOME_RECYCLE, "no budget before next fiscal year") {
				r.sum.Recycled++
				l.outcome = "recycled to nurturing"
			}
		case fateUnreachable:
			if r.touch(ctx, l, 2, routingv1.TouchType_TOUCH_TYPE_EMAIL) && r.touch(ctx, l, 3, routingv1.TouchType_TOUCH_TYPE_CALL) &&
				r.giveBack(ctx, l, routingv1.GiveBackOutcome_GIVE_BACK_OUTCOME_UNREACHABLE, "no answer to three touches") {
				r.sum.Unreachable++
				l.outcome = "unreachable (nurturing)"
			}
		default: // qualifying fates
			if !r.touch(ctx, l, 2, routingv1.TouchType_TOUCH_TYPE_MEETING) {
				continue
			}
			budget := r.amount(l)
			cctx, cancel := r.callCtx(ctx)
			_, err := r.c.Scoring.UpdateBant(cctx, &scoringv1.UpdateBantRequest{LeadId: l.id, Bant: &scoringv1.Bant{
				Budget: budget, BudgetConfirmed: true, AuthorityRole: scoringv1.AuthorityRole_AUTHORITY_ROLE_DECISION_MAKER,
				NeedDescription: "replace spreadsheet lead routing; SLA reporting for the board", NeedConfirmed: true,
				Timeline: timestamppb.New(time.Now().AddDate(0, 2, 0)),
			}})
			cancel()
			if err != nil {
				r.fail(l, "scoring UpdateBant", err)
			}
		}
	}
	r.line("%d accepted, %d touches; %d rejected and rerouted to a teammate; given back: %d junk, %d recycled, %d unreachable",
		r.sum.Accepted, r.sum.Touches, r.sum.Rejected, r.sum.Junk, r.sum.Recycled, r.sum.Unreachable)
	return nil
}

// amount is the deal size the demo gives a lead: by company size, in the
// company's currency, in whole hundreds.
func (r *runner) amount(l *lead) *leadv1.Money {
	per := int64(40 + r.rng.IntN(80)) // per employee per year
	v := int64(l.p.co.employees) * per * 100
	v = min(max(v, 12_000_00), 480_000_00)
	v = v / 10000 * 10000
	cur := l.p.co.currency
	if cur == "" {
		cur = "EUR"
	}
	return &leadv1.Money{AmountMinor: v, CurrencyCode: cur}
}

// ------------------------------------------------------------------ 7. qualification

func (r *runner) qualify(ctx context.Context) error {
	t0 := time.Now()
	ls := ok(r.leads, func(l *lead) bool { return l.rep != "" && l.p.fate.qualifies() })
	// Accepting is handed to scoring asynchronously (routing → scoring
	// SetStatus WORKING); qualify once scoring has it.
	r.await(ctx, "scoring GetLead (wait for routing → scoring: accepted lead WORKING)", ls, func(ctx context.Context, l *lead) (bool, string, error) {
		resp, err := r.c.Scoring.GetLead(ctx, &scoringv1.GetLeadRequest{LeadId: l.id})
		if err != nil {
			return false, "", err
		}
		st := resp.GetLead().GetStatus()
		return st == leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, fmt.Sprintf("status %s, owner %q", st, resp.GetLead().GetOwnerRepId()), nil
	})
	ls = ok(ls, func(*lead) bool { return true })
	for _, l := range ls {
		cctx, cancel := r.callCtx(ctx)
		_, err := r.c.Scoring.SetStatus(cctx, &scoringv1.SetStatusRequest{
			LeadId: l.id, Status: leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, OwnerRepId: l.rep,
			Reason: "BANT 4/4: budget confirmed, decision maker, need and timeline", RequestId: r.key(l, "qualify"),
		})
		cancel()
		if err != nil {
			r.fail(l, "scoring SetStatus QUALIFIED", err)
			continue
		}
		r.sum.Qualified++
	}
	// The deal is created by pipeline from scoring's hand-off.
	ls = ok(ls, func(*lead) bool { return true })
	r.await(ctx, "pipeline ListDeals (wait for scoring → pipeline: deal from the qualified lead)", ls, func(ctx context.Context, l *lead) (bool, string, error) {
		resp, err := r.c.Pipeline.ListDeals(ctx, &pipelinev1.ListDealsRequest{OwnerRepId: l.rep, Status: pipelinev1.DealStatus_DEAL_STATUS_OPEN, PageSize: 500})
		if err != nil {
			return false, "", err
		}
		for _, d := range resp.GetDeals() {
			if d.GetLeadId() == l.id {
				l.deal = d
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("no open deal of rep %s for the lead among %d", l.rep, len(resp.GetDeals())), nil
	})
	for _, l := range ls {
		if l.deal != nil {
			r.sum.Deals++
		}
	}
	r.line("%d qualified with BANT; %d deals created in the default pipeline (%s)", r.sum.Qualified, r.sum.Deals, render.Dur(time.Since(t0)))
	return nil
}

// ------------------------------------------------------------------ 8. deals

func (r *runner) move(ctx context.Context, l *lead, stage *pipelinev1.Stage) bool {
	if l.deal.GetStageId() == stage.GetId() {
		return true
	}
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.c.Pipeline.MoveDeal(cctx, &pipelinev1.MoveDealRequest{DealId: l.deal.GetId(), StageId: stage.GetId()})
	if err != nil {
		r.fail(l, "pipeline MoveDeal to "+stage.GetName(), err)
		return false
	}
	l.deal = resp.GetDeal()
	return true
}

func (r *runner) activity(ctx context.Context, l *lead, t pipelinev1.ActivityType, subject string) {
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	if _, err := r.c.Pipeline.LogActivity(cctx, &pipelinev1.LogActivityRequest{
		DealId: l.deal.GetId(), Type: t, Subject: subject, RequestId: r.key(l, subject),
	}); err != nil {
		r.fail(l, "pipeline LogActivity", err)
	}
}

func (r *runner) deals(ctx context.Context) error {
	for _, l := range ok(r.leads, func(l *lead) bool { return l.deal != nil }) {
		r.activity(ctx, l, pipelinev1.ActivityType_ACTIVITY_TYPE_MEETING, "Discovery call")
		switch l.p.fate {
		case fateWon, fateReject:
			r.win(ctx, l)
		case fateLost, fateLostRecycle:
			// Lost somewhere between discovery and negotiation.
			upTo := r.rng.IntN(len(r.stages))
			okMove := true
			for _, s := range r.stages[:upTo+1] {
				if okMove = r.move(ctx, l, s); !okMove {
					break
				}
			}
			if !okMove {
				continue
			}
			recycle := l.p.fate == fateLostRecycle
			reason := r.lost[r.rng.IntN(len(r.lost))]
			if recycle && slices.Contains(r.lost, "timing") {
				reason = "timing"
			}
			cctx, cancel := r.callCtx(ctx)
			resp, err := r.c.Pipeline.CloseLost(cctx, &pipelinev1.CloseLostRequest{DealId: l.deal.GetId(), Reason: reason, Note: "decision postponed by the buyer", Recycle: recycle})
			cancel()
			if err != nil {
				r.fail(l, "pipeline CloseLost", err)
				continue
			}
			l.deal = resp.GetDeal()
			r.sum.Lost++
			l.outcome = "lost: " + reason
			if recycle {
				r.sum.LostRecycled++
				l.outcome += " (recycled)"
			}
		default: // open: somewhere in the pipeline, with an amount and a close date
			upTo := r.rng.IntN(len(r.stages))
			for _, s := range r.stages[:upTo+1] {
				if !r.move(ctx, l, s) {
					break
				}
			}
			cctx, cancel := r.callCtx(ctx)
			resp, err := r.c.Pipeline.UpdateDeal(cctx, &pipelinev1.UpdateDealRequest{
				DealId: l.deal.GetId(), Amount: r.amount(l), ExpectedCloseAt: timestamppb.New(time.Now().AddDate(0, 1+r.rng.IntN(3), 0)),
			})
			cancel()
			if err != nil {
				r.fail(l, "pipeline UpdateDeal", err)
				continue
			}
			l.deal = resp.GetDeal()
			r.sum.Open++
			l.outcome = "open deal in " + stageName(r.stages, l.deal.GetStageId())
		}
	}
	parts := make([]string, 0, len(r.sum.Revenue))
	for cur, v := range r.sum.Revenue {
		parts = append(parts, render.Money(&leadv1.Money{AmountMinor: v, CurrencyCode: cur}))
	}
	sort.Strings(parts)
	rev := strings.Join(parts, " + ")
	if rev == "" {
		rev = "nothing"
	}
	r.line("%d won (%s), %d lost (%d recycled to nurturing), %d still open", r.sum.Won, rev, r.sum.Lost, r.sum.LostRecycled, r.sum.Open)
	return nil
}

func stageName(stages []*pipelinev1.Stage, id string) string {
	for _, s := range stages {
		if s.GetId() == id {
			return s.GetName()
		}
	}
	return id
}

// win takes a deal through every open stage, with a quote in the middle, to
// closed won at the accepted quote's total.
func (r *runner) win(ctx context.Context, l *lead) {
	amount := r.amount(l)
	for i, s := range r.stages {
		if !r.move(ctx, l, s) {
			return
		}
		if i == len(r.stages)/2 {
			amount = r.quote(ctx, l, amount)
			if amount == nil {
				return
			}
		}
	}
	r.activity(ctx, l, pipelinev1.ActivityType_ACTIVITY_TYPE_CALL, "Contract signed")
	cctx, cancel := r.callCtx(ctx)
	resp, err := r.c.Pipeline.CloseWon(cctx, &pipelinev1.CloseWonRequest{DealId: l.deal.GetId(), Amount: amount, ClosedAt: timestamppb.Now()})
	cancel()
	if err != nil {
		r.fail(l, "pipeline CloseWon", err)
		return
	}
	l.deal = resp.GetDeal()
	r.sum.Won++
	r.sum.Revenue[amount.GetCurrencyCode()] += amount.GetAmountMinor()
	l.outcome = "won " + render.Money(amount)
}

// quote creates, sends and accepts a quote with a 10 % discount and returns
// its total (nil when a call failed).
func (r *runner) quote(ctx context.Context, l *lead, list *leadv1.Money) *leadv1.Money {
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	q, err := r.c.Pipeline.CreateQuote(cctx, &pipelinev1.CreateQuoteRequest{
		DealId: l.deal.GetId(), CurrencyCode: list.GetCurrencyCode(),
		LineItems: []*pipelinev1.LineItemSpec{{Product: "LeadFlow Platform (annual)", Quantity: 1, UnitPrice: list, DiscountBps: 1000}},
	})
	if err != nil {
		r.fail(l, "pipeline CreateQuote", err)
		return nil
	}
	id := q.GetQuote().GetId()
	if _, err := r.c.Pipeline.SendQuote(cctx, &pipelinev1.SendQuoteRequest{DealId: l.deal.GetId(), QuoteId: id}); err != nil {
		r.fail(l, "pipeline SendQuote", err)
		return nil
	}
	acc, err := r.c.Pipeline.AcceptQuote(cctx, &pipelinev1.AcceptQuoteRequest{DealId: l.deal.GetId(), QuoteId: id, SetDealAmount: true})
	if err != nil {
		r.fail(l, "pipeline AcceptQuote", err)
		return nil
	}
	l.deal = acc.GetDeal()
	return acc.GetQuote().GetTotal()
}

// ------------------------------------------------------------------ 9. reporting

// firstCaptured is the earliest created_at of this run's new leads, read
// back from capture (only that field).
func (r *runner) firstCaptured(ctx context.Context) (time.Time, error) {
	var first time.Time
	for lo := 0; lo < len(r.leads); lo += 100 {
		ids := make([]string, 0, 100)
		for _, l := range r.leads[lo:min(lo+100, len(r.leads))] {
			ids = append(ids, l.id)
		}
		cctx, cancel := r.callCtx(ctx)
		resp, err := r.c.Capture.BatchGetLeads(cctx, &capturev1.BatchGetLeadsRequest{LeadIds: ids, ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"created_at"}}})
		cancel()
		if err != nil {
			return time.Time{}, err
		}
		for _, l := range resp.GetLeads() {
			if t := l.GetCreatedAt().AsTime(); l.GetCreatedAt() != nil && (first.IsZero() || t.Before(first)) {
				first = t
			}
		}
	}
	if first.IsZero() {
		return first, errors.New("no lead of this run was found")
	}
	return first, nil
}

func (r *runner) report(ctx context.Context) error {
	t0 := time.Now()
	// The funnel takes leads by capture time, so the period starts at this
	// run's first lead as capture timed it. The demo's clock may differ from
	// the suite's; a second earlier it would take in the leads of a run that
	// ended less than a second before this one began.
	from, err := r.firstCaptured(ctx)
	if err != nil {
		from = r.start.Add(-time.Second)
	}
	period := &reportingv1.Period{From: timestamppb.New(from), To: timestamppb.New(time.Now().Add(time.Minute))}
	// Campaign spend for the month, so the cost report has numbers.
	monthStart := time.Date(r.start.Year(), r.start.Month(), 1, 0, 0, 0, 0, time.UTC)
	for i, c := range []string{"search-q4", "abm-fintech", "events-2026", "webinar-2026-11", "nurture-nov"} {
		cctx, cancel := r.callCtx(ctx)
		_, err := r.c.Reporting.RecordCampaignSpend(cctx, &reportingv1.RecordCampaignSpendRequest{
			Campaign: c, Period: &reportingv1.Period{From: timestamppb.New(monthStart), To: timestamppb.New(monthStart.AddDate(0, 1, 0))},
			Amount: &leadv1.Money{AmountMinor: int64(4_000_00 + 2_500_00*i), CurrencyCode: "EUR"},
		})
		cancel()
		if err != nil {
			r.fail(nil, "reporting RecordCampaignSpend", err)
			break
		}
	}
	// Reporting reads the event stream asynchronously: wait until the
	// run's leads and closes have arrived.
	var funnel *reportingv1.GetFunnelResponse
	var lastErr error
	deadline := time.Now().Add(r.o.Wait)
	for {
		cctx, cancel := r.callCtx(ctx)
		resp, err := r.c.Reporting.GetFunnel(cctx, &reportingv1.GetFunnelRequest{Period: period, GroupBy: reportingv1.GroupBy_GROUP_BY_TEAM})
		cancel()
		lastErr = err
		if err == nil {
			funnel = resp
			t := resp.GetTotal()
			if t.GetCaptured() >= int64(r.sum.NewLeads) && t.GetWon() >= int64(r.sum.Won) && t.GetLost() >= int64(r.sum.Lost) &&
				t.GetOpportunities() >= int64(r.sum.Deals) && t.GetAccepted() >= int64(r.sum.Accepted) {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if funnel == nil {
		r.fail(nil, "reporting GetFunnel", lastErr)
		r.line("no funnel")
		return nil
	}
	r.sum.Funnel = funnel
	r.line("funnel of the leads captured by this run, by team of first routing (%s):", render.Dur(time.Since(t0)))
	fmt.Fprintln(r.out)
	if err := render.Funnel(r.out, funnel); err != nil {
		return err
	}
	r.check(funnel.GetTotal())
	return nil
}

// check compares the funnel with what the demo did and reports any step
// whose numbers do not add up.
func (r *runner) check(t *reportingv1.FunnelRow) {
	var bad []string
	expect := func(step string, got int64, want int) {
		if got != int64(want) {
			bad = append(bad, fmt.Sprintf("%s: report %d, demo %d", step, got, want))
		}
	}
	expect("captured", t.GetCaptured(), r.sum.NewLeads)
	expect("mql", t.GetMql(), r.sum.MQL)
	expect("accepted", t.GetAccepted(), r.sum.Accepted)
	expect("qualified", t.GetQualified(), r.sum.Qualified)
	expect("opportunity", t.GetOpportunities(), r.sum.Deals)
	expect("won", t.GetWon(), r.sum.Won)
	expect("lost", t.GetLost(), r.sum.Lost)
	for _, m := range t.GetRevenue() {
		if m.GetAmountMinor() != r.sum.Revenue[m.GetCurrencyCode()] {
			bad = append(bad, fmt.Sprintf("revenue %s: report %s, demo %s", m.GetCurrencyCode(), render.Minor(m.GetAmountMinor()), render.Minor(r.sum.Revenue[m.GetCurrencyCode()])))
		}
	}
	fmt.Fprintln(r.out)
	if len(bad) == 0 {
		fmt.Fprintln(r.out, "The funnel adds up: every step matches what the demo did.")
		return
	}
	fmt.Fprintln(r.out, "The funnel does not match what the demo did:")
	for _, b := range bad {
		fmt.Fprintln(r.out, "  - "+b)
	}
	r.sum.Failures = append(r.sum.Failures, "reporting GetFunnel: "+strings.Join(bad, "; "))
}

// ------------------------------------------------------------------ the end

func (r *runner) final() {
	if r.o.Verbose {
		fmt.Fprintln(r.out)
		t := render.NewTable(r.out, "#", "LEAD", "COMPANY", "SCORE", "TEAM", "REP", "OUTCOME", "TRACE ID")
		for _, l := range r.leads {
			t.Row(l.p.index, l.id, l.p.co.name, l.score, l.team, l.rep, l.outcome, l.traceID)
		}
		_ = t.Flush()
	}
	// One full journey: the first won lead (a quote, a close, every service).
	var show *lead
	for _, l := range r.leads {
		if !l.failed && l.deal.GetStatus() == pipelinev1.DealStatus_DEAL_STATUS_WON {
			show = l
			break
		}
	}
	fmt.Fprintln(r.out)
	if show != nil {
		r.sum.JourneyLeadID, r.sum.JourneyTraceID = show.id, show.traceID
		fmt.Fprintf(r.out, "One full journey, marketing to won: lead %s (%s, %s)\n", show.id, show.p.co.name, show.outcome)
		fmt.Fprintf(r.out, "  trace id:  %s   (look it up in your trace viewer: capture, scoring, routing, pipeline, reporting)\n", show.traceID)
		fmt.Fprintf(r.out, "  its steps: leadflow journey %s\n", show.id)
	}
	if len(r.sum.Failures) > 0 {
		fmt.Fprintf(r.out, "\n%d problem(s):\n", len(r.sum.Failures))
		for _, f := range r.sum.Failures {
			fmt.Fprintln(r.out, "  - "+strings.ReplaceAll(f, "\n", "\n    "))
		}
	}
}
