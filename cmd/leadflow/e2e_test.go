package main

// End-to-end tests: the five services booted exactly as `leadflow dev` boots
// them (internal/suite: one runtime each, real gRPC between them), one lead
// played from capture to won through the public APIs, and the exported
// spans read back: one trace per lead, across all five services, with the
// lead id on every journey span and no personal data anywhere.

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/suite"
	"github.com/leadflow/leadflow/cmd/internal/suitetest"
	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// The lead's personal data: distinctive strings that must never appear in a
// span or a log line.
const (
	e2eFirst = "Annabelle"
	e2eLast  = "Quintessa-Vorhees"
	e2eEmail = "annabelle.quintessa@brightforge-e2e.example"
	e2ePhone = "+1 202-555-0142"
	e2eE164  = "+12025550142"
)

var personal = []string{e2eFirst, e2eLast, e2eEmail, "annabelle.quintessa", e2ePhone, e2eE164, "2025550142"}

// e2eConfig is one team with one always-available rep, so the journey is
// fully determined.
const e2eConfig = `
routing:
  default_team_id: e2e
  teams:
    - id: e2e
      name: End to end
      team_lead_rep_id: rep-e2e
      reps:
        - {id: rep-e2e, weight: 1, capacity: 10}
  sla_policies:
    - {id: standard, first_touch_within: 3600s, touches_required: 2, touches_within: 86400s, action: BREACH_ACTION_REASSIGN}
pipelines:
  - default: true
    name: Sales
    stages:
      - {name: Discovery, probability_bps: 1000, kind: STAGE_KIND_OPEN}
      - {name: Demo/Presentation, probability_bps: 2500, kind: STAGE_KIND_OPEN}
      - {name: Proposal, probability_bps: 5000, kind: STAGE_KIND_OPEN}
      - {name: Negotiation, probability_bps: 7500, kind: STAGE_KIND_OPEN}
      - {name: Closed Won, probability_bps: 10000, kind: STAGE_KIND_WON}
      - {name: Closed Lost, probability_bps: 0, kind: STAGE_KIND_LOST}
`

// bootSuite starts the five services on free loopback ports against
// redisURL with the given runtime options (debug logs: the most lines to
// search for personal data), waits until all five are SERVING and applies
// the e2e configuration. The suite is stopped at cleanup.
func bootSuite(t *testing.T, redisURL string, opts func(service string) []platform.Option) (*suite.Suite, *client.Clients) {
	t.Helper()
	return suitetest.Boot(t, redisURL, suitetest.Options{
		Base:           func(b *platform.Base) { b.LogLevel = "debug" },
		RuntimeOptions: opts,
		Config:         e2eConfig,
	})
}

// eventually polls fn until it returns true (with a generous deadline: the
// hand-offs between services are asynchronous).
func eventually(t *testing.T, what string, fn func(ctx context.Context) (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done, note := fn(ctx)
		cancel()
		if done {
			return
		}
		last = note
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after 15s; last seen: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// must turns a call's (value, error) into the value, failing the test with
// the call's name and status on error: must(c.X.Y(ctx, req))(t, "x Y").
func must[T any](v T, err error) func(t *testing.T, call string) T {
	return func(t *testing.T, call string) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s", client.Wrap(call, err))
		}
		return v
	}
}

func note(err error) string { return client.Describe(err) }

// playJourney plays one lead from capture to won through the public APIs
// and returns its id and trace id.
func playJourney(t *testing.T, c *client.Clients) (leadID, traceID, dealID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 1. Capture: a good-fit lead (fit alone crosses the default model's MQL
	// threshold) plus a demo request.
	sub := must(c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{
		IdempotencyKey: "e2e-form-post-1",
		Submission: &capturev1.LeadSubmission{
			Contact: &leadv1.Contact{FirstName: e2eFirst, LastName: e2eLast, Email: e2eEmail, Phone: e2ePhone, JobTitle: "VP Engineering"},
			Company: &capturev1.Company{Name: "Brightforge Analytics", Website: "https://www.brightforge-e2e.example", Industry: "software",
				EmployeeCount: 250, Country: "US", Region: "US-CA", AnnualRevenue: &leadv1.Money{AmountMinor: 40_000_000_00, CurrencyCode: "USD"}},
			ProductInterests: []string{"analytics"},
			Touch:            &leadv1.Touch{Channel: leadv1.Channel_CHANNEL_WEB_FORM, Source: "google", Medium: "cpc", Campaign: "e2e-q4"},
			Consent:          &leadv1.Consent{MarketingOptIn: true, GivenAt: timestamppb.Now(), WordingVersion: "privacy-2026-03"},
		},
	}))(t, "capture SubmitLead")
	leadID, traceID = sub.GetLeadId(), sub.GetTraceId()
	if sub.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED || leadID == "" || len(traceID) != 32 {
		t.Fatalf("SubmitLead = %v", sub)
	}
	must(c.Capture.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: &leadv1.EngagementSignal{
		Id: "e2e-signal-1", LeadId: leadID, Type: leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST, OccurredAt: timestamppb.Now(), Subject: "https://leadflow.example/demo",
	}}))(t, "capture RecordEngagement")

	// 2. Capture → scoring → routing (asynchronous hand-offs): assigned.
	eventually(t, "routing GetAssignment: lead assigned to rep-e2e (capture → scoring → routing)", func(ctx context.Context) (bool, string) {
		a, err := c.Routing.GetAssignment(ctx, &routingv1.GetAssignmentRequest{LeadId: leadID})
		if err != nil {
			sl, serr := c.Scoring.GetLead(ctx, &scoringv1.GetLeadRequest{LeadId: leadID})
			if serr != nil {
				return false, "routing: " + note(err) + "; scoring: " + note(serr)
			}
			return false, fmt.Sprintf("routing: %s; scoring: status %s score %d mql %t", note(err), sl.GetLead().GetStatus(), sl.GetLead().GetScore().GetTotal(), sl.GetLead().GetScore().GetMql())
		}
		st := a.GetAssignment().GetState()
		return st == routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED && a.GetAssignment().GetRepId() == "rep-e2e", st.String()
	})

	// 3. The rep accepts and touches; scoring sets the lead WORKING.
	must(c.Routing.AcceptLead(ctx, &routingv1.AcceptLeadRequest{LeadId: leadID, RepId: "rep-e2e"}))(t, "routing AcceptLead")
	must(c.Routing.RecordTouch(ctx, &routingv1.RecordTouchRequest{LeadId: leadID, RepId: "rep-e2e", Type: routingv1.TouchType_TOUCH_TYPE_CALL, TouchId: "e2e-touch-1"}))(t, "routing RecordTouch")
	eventually(t, "scoring GetLead: WORKING (routing → scoring SetStatus)", func(ctx context.Context) (bool, string) {
		sl, err := c.Scoring.GetLead(ctx, &scoringv1.GetLeadRequest{LeadId: leadID})
		if err != nil {
			return false, note(err)
		}
		return sl.GetLead().GetStatus() == leadv1.ProspectStatus_PROSPECT_STATUS_WORKING, sl.GetLead().GetStatus().String()
	})

	// 4. Qualify: BANT, then QUALIFIED; pipeline opens the deal.
	must(c.Scoring.UpdateBant(ctx, &scoringv1.UpdateBantRequest{LeadId: leadID, Bant: &scoringv1.Bant{
		Budget: &leadv1.Money{AmountMinor: 60_000_00, CurrencyCode: "USD"}, BudgetConfirmed: true,
		AuthorityRole: scoringv1.AuthorityRole_AUTHORITY_ROLE_DECISION_MAKER, NeedDescription: "routing with SLAs", NeedConfirmed: true,
		Timeline: timestamppb.New(time.Now().AddDate(0, 1, 0)),
	}}))(t, "scoring UpdateBant")
	must(c.Scoring.SetStatus(ctx, &scoringv1.SetStatusRequest{
		LeadId: leadID, Status: leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, Reason: "BANT 4/4", RequestId: "e2e-qualify-1",
	}))(t, "scoring SetStatus QUALIFIED")
	var deal *pipelinev1.Deal
	eventually(t, "pipeline ListDeals: deal for the lead (scoring → pipeline CreateDealFromLead)", func(ctx context.Context) (bool, string) {
		resp, err := c.Pipeline.ListDeals(ctx, &pipelinev1.ListDealsRequest{OwnerRepId: "rep-e2e", PageSize: 500})
		if err != nil {
			return false, note(err)
		}
		for _, d := range resp.GetDeals() {
			if d.GetLeadId() == leadID {
				deal = d
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d deals of rep-e2e, none for the lead", len(resp.GetDeals()))
	})
	if deal.GetTraceparent() == "" || leadtrace.TraceID(deal.GetTraceparent()) != traceID {
		t.Errorf("deal traceparent %q is not in the lead's trace %s", deal.GetTraceparent(), traceID)
	}

	// 5. Through the stages to won.
	p := must(c.Pipeline.GetPipeline(ctx, &pipelinev1.GetPipelineRequest{PipelineId: deal.GetPipelineId()}))(t, "pipeline GetPipeline")
	for _, s := range p.GetPipeline().GetStages() {
		if s.GetKind() != pipelinev1.StageKind_STAGE_KIND_OPEN || s.GetId() == deal.GetStageId() {
			continue
		}
		deal = must(c.Pipeline.MoveDeal(ctx, &pipelinev1.MoveDealRequest{DealId: deal.GetId(), StageId: s.GetId()}))(t, "pipeline MoveDeal "+s.GetName()).GetDeal()
	}
	won := must(c.Pipeline.CloseWon(ctx, &pipelinev1.CloseWonRequest{
		DealId: deal.GetId(), Amount: &leadv1.Money{AmountMinor: 58_000_00, CurrencyCode: "USD"}, ClosedAt: timestamppb.Now(),
	}))(t, "pipeline CloseWon")
	if won.GetDeal().GetStatus() != pipelinev1.DealStatus_DEAL_STATUS_WON {
		t.Fatalf("CloseWon: deal status %s", won.GetDeal().GetStatus())
	}

	// 6. Reporting has the whole journey, with the trace id.
	eventually(t, "reporting GetLeadJourney: deal_won reached reporting", func(ctx context.Context) (bool, string) {
		j, err := c.Reporting.GetLeadJourney(ctx, &reportingv1.GetLeadJourneyRequest{LeadId: leadID})
		if err != nil {
			return false, note(err)
		}
		var kinds []string
		for _, s := range j.GetSteps() {
			kinds = append(kinds, s.GetKind())
		}
		return slices.Contains(kinds, "deal_won") && j.GetTraceId() == traceID, fmt.Sprintf("trace %s, steps %v", j.GetTraceId(), kinds)
	})
	return leadID, traceID, deal.GetId()
}

// spanView is what the assertions need of an exported span, from either the
// in-memory exporter or OTLP.
type spanView struct {
	service, name    string
	scope            string // instrumentation scope: which code made the span
	traceID, spanID  string
	parentID         string
	start            time.Time
	attrs            map[string]string
	text             string // every attribute, event, link and status text
	hasOutcome, lead string
}

func fromStub(s tracetest.SpanStub) spanView {
	v := spanView{name: s.Name, scope: s.InstrumentationScope.Name, traceID: s.SpanContext.TraceID().String(), spanID: s.SpanContext.SpanID().String(), start: s.StartTime, attrs: map[string]string{}}
	if s.Parent.IsValid() {
		v.parentID = s.Parent.SpanID().String()
	}
	if s.Resource != nil {
		if sn, ok := s.Resource.Set().Value(semconv.ServiceNameKey); ok {
			v.service = sn.AsString()
		}
	}
	var b strings.Builder
	addKV := func(kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			fmt.Fprintf(&b, "%s=%s\n", kv.Key, kv.Value.String())
		}
	}
	for _, kv := range s.Attributes {
		v.attrs[string(kv.Key)] = kv.Value.String()
	}
	addKV(s.Attributes)
	for _, e := range s.Events {
		b.WriteString(e.Name + "\n")
		addKV(e.Attributes)
	}
	for _, l := range s.Links {
		addKV(l.Attributes)
	}
	b.WriteString(s.Name + "\n" + s.Status.Description + "\n")
	v.text = b.String()
	v.lead = v.attrs[leadtrace.AttrLeadID]
	v.hasOutcome = v.attrs[leadtrace.AttrOutcome]
	return v
}

// checkJourneyTrace asserts the tracing contract on the spans of the lead's
// trace (DESIGN.md §5) and that no span holds personal data.
func checkJourneyTrace(t *testing.T, all []spanView, leadID, traceID string) {
	t.Helper()
	for _, s := range all {
		for _, p := range personal {
			if strings.Contains(s.text, p) {
				t.Errorf("span %q of %s holds personal data %q:\n%s", s.name, s.service, p, s.text)
			}
		}
	}
	var spans []spanView
	for _, s := range all {
		if s.traceID == traceID {
			spans = append(spans, s)
		}
	}
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	if len(spans) == 0 {
		t.Fatalf("no span in the lead's trace %s (of %d exported)", traceID, len(all))
	}
	defer func() {
		if t.Failed() {
			t.Logf("spans of trace %s:", traceID)
			for _, s := range spans {
				t.Logf("  %s %-10s %-36s span=%s parent=%s lead=%q outcome=%q scope=%s", s.start.Format("15:04:05.000000"), s.service, s.name, s.spanID, s.parentID, s.lead, s.hasOutcome, s.scope)
			}
		}
	}()

	// One trace, all five services.
	services := map[string]int{}
	for _, s := range spans {
		services[s.service]++
	}
	for _, name := range suite.Services {
		if services[name] == 0 {
			t.Errorf("the lead's trace %s has no span from %s (services seen: %v)", traceID, name, services)
		}
	}

	// The journey: capture's root span first, every step a child of it
	// carrying the lead id, the close as won last.
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.spanID] = true
	}
	var roots []spanView
	for _, s := range spans {
		if s.parentID == "" || !ids[s.parentID] {
			roots = append(roots, s)
		}
	}
	if len(roots) != 1 {
		t.Fatalf("the trace has %d root spans, want exactly the journey span: %v", len(roots), names(roots))
	}
	root := roots[0]
	if root.service != "capture" || root.lead != leadID {
		t.Errorf("root span = %s %q (lead %q), want capture's journey span with the lead id", root.service, root.name, root.lead)
	}
	if spans[0].spanID != root.spanID {
		t.Errorf("first span of the trace is %s %q, want capture's journey span", spans[0].service, spans[0].name)
	}
	// Journey spans are the ones LeadFlow's code makes (leadtrace), as
	// opposed to the gRPC and Redis instrumentation under them (redisx's
	// pipeline spans are instrumentation too).
	var steps []spanView
	for _, s := range spans {
		if strings.HasPrefix(s.scope, "github.com/leadflow/leadflow") && s.scope != redisx.PipelineScope && s.spanID != root.spanID {
			steps = append(steps, s)
		}
	}
	if len(steps) == 0 {
		t.Fatal("the journey span has no step spans")
	}
	stepServices := map[string]bool{}
	for _, s := range steps {
		stepServices[s.service] = true
		if s.lead != leadID {
			t.Errorf("journey span %s %q (scope %s) has %s=%q, want %q", s.service, s.name, s.scope, leadtrace.AttrLeadID, s.lead, leadID)
		}
	}
	for _, name := range suite.Services {
		if !stepServices[name] {
			t.Errorf("no journey span (leadtrace.Start with the lead's traceparent) from %s", name)
		}
	}
	// Causal order of the hand-offs: each service's first step comes after
	// the previous service's (capture → scoring → routing → pipeline), and
	// the won close is pipeline's last step and after every step of the
	// other services but reporting (which reads the events afterwards).
	first := map[string]time.Time{}
	for _, s := range steps {
		if _, ok := first[s.service]; !ok {
			first[s.service] = s.start
		}
	}
	order := []string{"capture", "scoring", "routing", "pipeline"}
	for i := 1; i < len(order); i++ {
		a, b := first[order[i-1]], first[order[i]]
		if !a.IsZero() && !b.IsZero() && b.Before(a) {
			t.Errorf("first %s step at %s is before the first %s step at %s", order[i], b.Format(time.RFC3339Nano), order[i-1], a.Format(time.RFC3339Nano))
		}
	}
	stepNames := map[string][]string{}
	for _, s := range steps {
		stepNames[s.service] = append(stepNames[s.service], s.name)
	}
	t.Logf("trace %s: %d spans (%v); journey %q with %d steps:", traceID, len(spans), services, root.name, len(steps))
	for _, name := range suite.Services {
		t.Logf("  %-10s %s", name, strings.Join(stepNames[name], ", "))
	}

	var wonAt time.Time
	for _, s := range steps {
		if s.service == "pipeline" && s.hasOutcome == "won" {
			wonAt = s.start
		}
	}
	if wonAt.IsZero() {
		t.Errorf("no pipeline journey step with %s=won", leadtrace.AttrOutcome)
	} else {
		for _, s := range steps {
			if s.service != "reporting" && s.start.After(wonAt) {
				t.Errorf("journey step %s %q (outcome %q) starts after the won close", s.service, s.name, s.hasOutcome)
			}
		}
	}
}

func names(ss []spanView) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.service+":"+s.name)
	}
	return out
}

func checkLogs(t *testing.T, logs string) {
	t.Helper()
	if logs == "" {
		t.Fatal("no log line was written: the log check would prove nothing")
	}
	for _, line := range strings.Split(logs, "\n") {
		for _, p := range personal {
			if strings.Contains(line, p) {
				t.Errorf("log line holds personal data %q: %s", p, line)
			}
		}
	}
}

// TestJourneyIsOneTrace plays one lead from capture to won with real gRPC
// between the services, against a real redis-server and against the
// embedded server `leadflow dev` uses by default.
func TestJourneyIsOneTrace(t *testing.T) {
	backends := []struct {
		name  string
		redis func(t *testing.T) string
	}{
		{"redis-server", func(t *testing.T) string { return platformtest.StartRedis(t).URL() }},
		{"embedded", func(t *testing.T) string {
			e, err := suite.StartEmbedded("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e.Close)
			return e.URL()
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.redis(t)
			exp := tracetest.NewInMemoryExporter()
			logs := &platformtest.LogBuffer{}
			s, c := bootSuite(t, url, func(string) []platform.Option {
				return []platform.Option{platform.WithSpanExporter(exp), platform.WithLogOutput(logs)}
			})
			leadID, traceID, _ := playJourney(t, c)
			// Reporting's step spans come from its event consumer, after the
			// fact: give them a moment, then stop the suite so every span has
			// ended (checkJourneyTrace says what is missing).
			suitetest.Eventually(10*time.Second, func() bool {
				for _, st := range exp.GetSpans() {
					if st.SpanContext.TraceID().String() == traceID && fromStub(st).service == "reporting" {
						return true
					}
				}
				return false
			})
			if err := s.Stop(); err != nil {
				t.Logf("suite stopped with: %v", err)
			}
			var views []spanView
			for _, st := range exp.GetSpans() {
				views = append(views, fromStub(st))
			}
			checkJourneyTrace(t, views, leadID, traceID)
			checkLogs(t, logs.String())
		})
	}
}

// ------------------------------------------------------------------ OTLP

// otlpReceiver is an in-process OTLP/gRPC trace receiver.
type otlpReceiver struct {
	collectortracev1.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []spanView
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == string(semconv.ServiceNameKey) {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			scope := ss.GetScope().GetName()
			for _, sp := range ss.GetSpans() {
				if len(sp.GetTraceId()) != 16 || len(sp.GetSpanId()) != 8 {
					return nil, status.Error(codes.InvalidArgument, "bad span ids")
				}
				v := spanView{service: service, scope: scope, name: sp.GetName(), attrs: map[string]string{},
					traceID: trace.TraceID(sp.GetTraceId()).String(), spanID: trace.SpanID(sp.GetSpanId()).String(),
					start: time.Unix(0, int64(sp.GetStartTimeUnixNano()))}
				if len(sp.GetParentSpanId()) == 8 {
					v.parentID = trace.SpanID(sp.GetParentSpanId()).String()
				}
				var b strings.Builder
				add := func(kvs []*commonv1.KeyValue) {
					for _, kv := range kvs {
						fmt.Fprintf(&b, "%s=%s\n", kv.GetKey(), kv.GetValue().String())
					}
				}
				for _, kv := range sp.GetAttributes() {
					v.attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
				}
				add(sp.GetAttributes())
				for _, e := range sp.GetEvents() {
					b.WriteString(e.GetName() + "\n")
					add(e.GetAttributes())
				}
				for _, l := range sp.GetLinks() {
					add(l.GetAttributes())
				}
				b.WriteString(sp.GetName() + "\n" + sp.GetStatus().GetMessage() + "\n")
				v.text = b.String()
				v.lead, v.hasOutcome = v.attrs[leadtrace.AttrLeadID], v.attrs[leadtrace.AttrOutcome]
				r.spans = append(r.spans, v)
			}
		}
	}
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) all() []spanView {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// TestJourneyOverOTLP points the real OTLP exporter (configured only by the
// standard OTEL_* variables) at an in-process OTLP/gRPC receiver and checks
// that the journey's spans arrive over the wire with the right service names.
func TestJourneyOverOTLP(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv := &otlpReceiver{}
	gs := grpc.NewServer()
	collectortracev1.RegisterTraceServiceServer(gs, recv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_LOGS_EXPORTER", "none")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "200")

	r := platformtest.StartRedis(t)
	logs := &platformtest.LogBuffer{}
	s, c := bootSuite(t, r.URL(), func(string) []platform.Option { return []platform.Option{platform.WithLogOutput(logs)} })
	leadID, traceID, _ := playJourney(t, c)
	// Reporting reads the events after the fact; give its consumer the
	// chance to trace them, then stop: shutdown flushes every batch.
	suitetest.Eventually(10*time.Second, func() bool {
		for _, v := range recv.all() {
			if v.traceID == traceID && v.service == "reporting" {
				return true
			}
		}
		return false
	})
	if err := s.Stop(); err != nil {
		t.Logf("suite stopped with: %v", err)
	}
	checkJourneyTrace(t, recv.all(), leadID, traceID)
	checkLogs(t, logs.String())
}
