package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/routing/app"
	"github.com/leadflow/leadflow/services/routing/router"
)

type scoringFake struct {
	scoringv1.UnimplementedScoringServiceServer
	mu    sync.Mutex
	calls []*scoringv1.SetStatusRequest
	fail  int // the next fail calls answer Internal (Unavailable the client would retry itself)
}

func (f *scoringFake) SetStatus(_ context.Context, req *scoringv1.SetStatusRequest) (*scoringv1.SetStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return nil, status.Error(codes.Internal, "scoring failed")
	}
	f.calls = append(f.calls, req)
	return &scoringv1.SetStatusResponse{}, nil
}

func (f *scoringFake) Calls() []*scoringv1.SetStatusRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*scoringv1.SetStatusRequest(nil), f.calls...)
}

// captureFake knows every lead; inbox-003 is erased and inbox-004 unknown.
type captureFake struct {
	capturev1.UnimplementedCaptureServiceServer
	mu   sync.Mutex
	down bool
}

func (f *captureFake) BatchGetLeads(_ context.Context, req *capturev1.BatchGetLeadsRequest) (*capturev1.BatchGetLeadsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, status.Error(codes.Unavailable, "capture is down")
	}
	resp := &capturev1.BatchGetLeadsResponse{}
	for _, id := range req.GetLeadIds() {
		switch id {
		case "inbox-003":
			resp.Leads = append(resp.Leads, &leadv1.Lead{Id: id, Erased: true})
		case "inbox-004":
			resp.NotFoundLeadIds = append(resp.NotFoundLeadIds, id)
		default:
			resp.Leads = append(resp.Leads, &leadv1.Lead{Id: id, Contact: &leadv1.Contact{FirstName: "Ann", Email: "ann@example.com"}})
		}
	}
	return resp, nil
}

func serveFake(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

type harness struct {
	router  *router.Router
	client  routingv1.RoutingServiceClient
	scoring *scoringFake
	capture *captureFake
	spans   *tracetest.InMemoryExporter
}

func start(t *testing.T) *harness {
	t.Helper()
	redis := platformtest.StartRedis(t)
	sc, cp := &scoringFake{}, &captureFake{}
	base := platformtest.Base("routing", redis.URL())
	base.Peers.Scoring = serveFake(t, func(s *grpc.Server) { scoringv1.RegisterScoringServiceServer(s, sc) })
	base.Peers.Capture = serveFake(t, func(s *grpc.Server) { capturev1.RegisterCaptureServiceServer(s, cp) })
	spans := platformtest.Spans()
	rt := platformtest.RuntimeWith(t, base, platform.WithSpanExporter(spans))
	cfg, err := app.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.InboxBlock = 100 * time.Millisecond
	cfg.ContactTimeout = 10 * time.Second // a loaded CI machine is slow; the down case fails fast
	r, err := app.NewRouter(rt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := platformtest.Serve(t, rt, app.Service(r))
	return &harness{router: r, client: routingv1.NewRoutingServiceClient(conn), scoring: sc, capture: cp, spans: spans}
}

func config() *routingv1.RoutingConfig {
	return &routingv1.RoutingConfig{
		DefaultTeamId: "t",
		Teams: []*routingv1.Team{{Id: "t", Reps: []*routingv1.Rep{
			{Id: "anna", Weight: 1, Capacity: 1000, Availability: routingv1.Availability_AVAILABILITY_ACTIVE},
		}}},
		SlaPolicies: []*routingv1.SlaPolicy{{Id: "p", FirstTouchWithin: durationpb.New(time.Hour)}},
	}
}

func TestApplyConfigValidation(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	bad := config()
	bad.Teams[0].Reps[0].Weight = 0
	bad.Teams[0].Reps[0].WorkingHours = &routingv1.WorkingHours{TimeZone: "Mars/Olympus", Windows: []*routingv1.WorkingWindow{
		{Days: []routingv1.Weekday{routingv1.Weekday_WEEKDAY_MONDAY}, Start: "09:00", End: "17:00"}}}
	bad.Rules = []*routingv1.Rule{{Id: "r", Target: &routingv1.Rule_TeamId{TeamId: "nope"}}}
	_, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: bad})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad config: %v", err)
	}
	fields := map[string]bool{}
	for _, v := range platform.FieldViolations(err) {
		fields[v.Field] = true
	}
	for _, f := range []string{"config.teams[0].reps[0].weight", "config.teams[0].reps[0].working_hours.time_zone", "config.rules[0].team_id"} {
		if !fields[f] {
			t.Errorf("violation for %s missing: %v", f, fields)
		}
	}
	// Versions and optimistic concurrency.
	c1, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: config()})
	if err != nil || c1.GetConfig().GetVersion() != 1 {
		t.Fatalf("apply: %v %v", c1, err)
	}
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: config(), ExpectedVersion: 7}); status.Code(err) != codes.Aborted {
		t.Fatalf("stale expected version: %v", err)
	}
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: config(), ExpectedVersion: 1}); err != nil {
		t.Fatal(err)
	}
	vs, err := h.client.ListConfigVersions(ctx, &routingv1.ListConfigVersionsRequest{PageSize: 1})
	if err != nil || len(vs.GetVersions()) != 1 || vs.GetVersions()[0].GetVersion() != 2 || vs.GetNextPageToken() == "" {
		t.Fatalf("versions page 1: %v %v", vs, err)
	}
	vs, err = h.client.ListConfigVersions(ctx, &routingv1.ListConfigVersionsRequest{PageSize: 1, PageToken: vs.GetNextPageToken()})
	if err != nil || len(vs.GetVersions()) != 1 || vs.GetVersions()[0].GetVersion() != 1 {
		t.Fatalf("versions page 2: %v %v", vs, err)
	}
	old, err := h.client.GetConfig(ctx, &routingv1.GetConfigRequest{Version: 1})
	if err != nil || old.GetConfig().GetVersion() != 1 {
		t.Fatalf("get v1: %v %v", old, err)
	}
}

// cursorBefore compares two stream ids ("<ms>-<seq>").
func cursorBefore(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ami, _ := strconv.ParseUint(am, 10, 64)
	bmi, _ := strconv.ParseUint(bm, 10, 64)
	asi, _ := strconv.ParseUint(as, 10, 64)
	bsi, _ := strconv.ParseUint(bs, 10, 64)
	return ami < bmi || (ami == bmi && asi < bsi)
}

// The inbox delivers every assignment exactly once per connection and a
// reconnect with the last cursor catches up without gaps or repeats.
func TestInboxExactlyOnceAndResume(t *testing.T) {
	h := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: config()}); err != nil {
		t.Fatal(err)
	}
	routeN := func(from, n int) {
		var wg sync.WaitGroup
		for i := from; i < from+n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := h.client.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: &leadv1.LeadProfile{LeadId: fmt.Sprintf("inbox-%03d", i)},
					Score: &leadv1.Score{Total: 60, Heat: leadv1.Heat_HEAT_HOT}, Reasons: []string{"pricing page"}, RequestId: fmt.Sprintf("r%d", i)})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	sctx, scancel := context.WithCancel(ctx)
	stream, err := h.client.WatchInbox(sctx, &routingv1.WatchInboxRequest{RepId: "anna"})
	if err != nil {
		t.Fatal(err)
	}
	routeN(0, 30)
	seen := map[string]int{}
	cursor := ""
	for len(seen) < 20 || seen["inbox-003"] == 0 || seen["inbox-004"] == 0 {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		it := m.GetItem()
		seen[it.GetLeadId()]++
		// Items are filled in concurrently but sent in stream order.
		if cursor != "" && !cursorBefore(cursor, it.GetCursor()) {
			t.Fatalf("inbox item %s after %s: out of stream order", it.GetCursor(), cursor)
		}
		cursor = it.GetCursor()
		if it.GetKind() != routingv1.InboxItemKind_INBOX_ITEM_KIND_ASSIGNED || len(it.GetReasons()) == 0 ||
			it.GetFirstTouchDue() == nil || it.GetScore().GetTotal() != 60 {
			t.Fatalf("inbox item incomplete: %v", it)
		}
		if id := it.GetLeadId(); id == "inbox-003" || id == "inbox-004" { // erased, unknown in capture
			if it.GetContact() != nil || !it.GetContactUnavailable() || it.GetContactNote() != "contact not available (lead erased or unknown in capture)" {
				t.Fatalf("lead %s without a contact in capture: %v", id, it)
			}
		} else if it.GetContact().GetEmail() == "" || it.GetContactUnavailable() {
			t.Fatalf("inbox item without its contact: %v", it)
		}
	}
	scancel() // the rep's connection drops after 20 items or more
	routeN(30, 10)
	h.capture.mu.Lock()
	h.capture.down = true
	h.capture.mu.Unlock()
	stream, err = h.client.WatchInbox(ctx, &routingv1.WatchInboxRequest{RepId: "anna", AfterCursor: cursor})
	if err != nil {
		t.Fatal(err)
	}
	for len(seen) < 40 {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		it := m.GetItem()
		seen[it.GetLeadId()]++
		if !it.GetContactUnavailable() || it.GetContact() != nil || it.GetContactNote() == "" {
			t.Fatalf("capture down: item should say the contact is missing: %v", it)
		}
	}
	// A sentinel routed last: whatever the stream sends before it (a
	// repeat after the 40th lead) is counted too.
	routeN(40, 1)
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if id := m.GetItem().GetLeadId(); id != "inbox-040" {
			seen[id]++
			continue
		}
		break
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("lead %s delivered %d times", id, n)
		}
	}
	if len(seen) != 40 {
		t.Fatalf("%d distinct leads delivered, want 40", len(seen))
	}
}

// Accept hands WORKING to scoring, a give-back JUNK hands BAD_FIT, both
// through the durable hand-off queue; every step is a span in the lead's trace.
func TestAcceptGiveBackHandoffsAndJourney(t *testing.T) {
	h := start(t)
	client, sc, spans := h.client, h.scoring, h.spans
	ctx := context.Background()
	if _, err := client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: config()}); err != nil {
		t.Fatal(err)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, id := range []string{"acc-1", "junk-1"} {
		if _, err := client.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: &leadv1.LeadProfile{LeadId: id, Traceparent: tp}, Score: &leadv1.Score{Total: 70}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.AcceptLead(ctx, &routingv1.AcceptLeadRequest{LeadId: "acc-1", RepId: "anna"}); err != nil {
		t.Fatal(err)
	}
	// Accepting again is a no-op; accepting by another rep is refused.
	if _, err := client.AcceptLead(ctx, &routingv1.AcceptLeadRequest{LeadId: "acc-1", RepId: "anna"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AcceptLead(ctx, &routingv1.AcceptLeadRequest{LeadId: "acc-1", RepId: "bob"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("accept by non-holder: %v", err)
	}
	if _, err := client.GiveBack(ctx, &routingv1.GiveBackRequest{LeadId: "junk-1", RepId: "anna", Outcome: routingv1.GiveBackOutcome_GIVE_BACK_OUTCOME_JUNK, Reason: "student"}); err != nil {
		t.Fatal(err)
	}
	// Accept is not a release; give back is.
	as, err := client.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{RepId: "anna"})
	if err != nil || len(as.GetAssignments()) != 1 || as.GetAssignments()[0].GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_ACCEPTED {
		t.Fatalf("assignments: %v %v", as, err)
	}
	// Scoring gets WORKING and BAD_FIT exactly once each.
	deadline := time.Now().Add(10 * time.Second)
	for len(sc.Calls()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	calls := sc.Calls()
	if len(calls) != 2 {
		t.Fatalf("scoring calls: %v", calls)
	}
	got := map[string]*scoringv1.SetStatusRequest{}
	for _, c := range calls {
		got[c.GetLeadId()] = c
	}
	if c := got["acc-1"]; c.GetStatus() != leadv1.ProspectStatus_PROSPECT_STATUS_WORKING || c.GetOwnerRepId() != "anna" || c.GetRequestId() == "" {
		t.Fatalf("accept hand-off: %v", c)
	}
	if c := got["junk-1"]; c.GetStatus() != leadv1.ProspectStatus_PROSPECT_STATUS_BAD_FIT {
		t.Fatalf("junk hand-off: %v", c)
	}
	// Journey: route, accept and give back are spans of the lead's trace with its id and outcome.
	want := map[string]bool{"routing.route": false, "routing.accept": false, "routing.give_back": false}
	for _, s := range spans.GetSpans() {
		if _, ok := want[s.Name]; !ok || s.SpanContext.TraceID().String() != leadtrace.TraceID(tp) {
			continue
		}
		var id, outcome string
		for _, a := range s.Attributes {
			switch string(a.Key) {
			case leadtrace.AttrLeadID:
				id = a.Value.AsString()
			case leadtrace.AttrOutcome:
				outcome = a.Value.AsString()
			}
		}
		if id != "" && outcome != "" {
			want[s.Name] = true
		}
	}
	for name, ok := range want {
		if !ok {
			t.Errorf("no %s span in the lead's trace with lead id and outcome", name)
		}
	}
}

func TestValidationTouchAndGiveBackIdempotency(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	// protovalidate rejects a request without a profile before the handler runs.
	if _, err := h.client.RouteLead(ctx, &routingv1.RouteLeadRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("route without profile: %v", err)
	}
	// No configuration yet.
	if _, err := h.client.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: &leadv1.LeadProfile{LeadId: "x"}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("route without config: %v", err)
	}
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: config()}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: &leadv1.LeadProfile{LeadId: "x"}, Score: &leadv1.Score{Total: 50}}); err != nil {
		t.Fatal(err)
	}
	// An inbox view that does not exist is refused, naming the field.
	st, err := h.client.WatchInbox(ctx, &routingv1.WatchInboxRequest{RepId: "anna", View: 99})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !hasViolation(err, "view") {
		t.Fatalf("unknown inbox view: %v, want InvalidArgument naming view", err)
	}
	for i, want := range []bool{false, true} {
		resp, err := h.client.RecordTouch(ctx, &routingv1.RecordTouchRequest{LeadId: "x", RepId: "anna", Type: routingv1.TouchType_TOUCH_TYPE_EMAIL, TouchId: "mail-1"})
		if err != nil || resp.GetDuplicate() != want || resp.GetAssignment().GetTouches() != 1 || resp.GetFirstTouch() == want {
			t.Fatalf("touch %d: %v %v", i, resp, err)
		}
	}
	for range 2 {
		resp, err := h.client.GiveBack(ctx, &routingv1.GiveBackRequest{LeadId: "x", RepId: "anna", Outcome: routingv1.GiveBackOutcome_GIVE_BACK_OUTCOME_UNREACHABLE})
		if err != nil || resp.GetAssignment().GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_GIVEN_BACK {
			t.Fatalf("give back: %v %v", resp, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(h.scoring.Calls()) < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a duplicate hand-off would arrive within the poll interval
	calls := h.scoring.Calls()
	if len(calls) != 1 || calls[0].GetStatus() != leadv1.ProspectStatus_PROSPECT_STATUS_NURTURING || calls[0].GetReason() != "unreachable" {
		t.Fatalf("hand-offs after two give-backs: %v", calls)
	}
	// Touching a lead given back is refused.
	if _, err := h.client.RecordTouch(ctx, &routingv1.RecordTouchRequest{LeadId: "x", RepId: "anna", Type: routingv1.TouchType_TOUCH_TYPE_CALL}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("touch after give back: %v", err)
	}
}
