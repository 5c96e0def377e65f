package router_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/routing/router"
)

func newClock() *platformtest.Clock {
	// A Wednesday, 10:00 UTC.
	return platformtest.NewClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
}

// fakeScoring records SetStatus calls.
type fakeScoring struct {
	mu    sync.Mutex
	calls []*scoringv1.SetStatusRequest
}

func (f *fakeScoring) SetStatus(_ context.Context, req *scoringv1.SetStatusRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req)
	return nil
}

func (f *fakeScoring) Calls() []*scoringv1.SetStatusRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*scoringv1.SetStatusRequest(nil), f.calls...)
}

// fakeCapture knows every lead but those in unknown; while down it answers
// Unavailable. It records the leads of each call.
type fakeCapture struct {
	mu      sync.Mutex
	unknown map[string]bool
	down    bool
	calls   [][]string
}

func (f *fakeCapture) Contacts(_ context.Context, leads []string) (map[string]*leadv1.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, append([]string(nil), leads...))
	if f.down {
		return nil, status.Error(codes.Unavailable, "capture is down")
	}
	out := map[string]*leadv1.Contact{}
	for _, l := range leads {
		if !f.unknown[l] {
			out[l] = &leadv1.Contact{FirstName: "Ann", Email: l + "@example.com"}
		}
	}
	return out, nil
}

func (f *fakeCapture) set(down bool, unknown ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down, f.unknown = down, map[string]bool{}
	for _, l := range unknown {
		f.unknown[l] = true
	}
}

// Calls returns the leads of each call so far.
func (f *fakeCapture) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.calls...)
}

type env struct {
	t       *testing.T
	redis   *platformtest.Redis
	clock   *platformtest.Clock
	scoring *fakeScoring
	capture *fakeCapture
}

func newEnv(t *testing.T, opts ...platformtest.RedisOption) *env {
	return &env{t: t, redis: platformtest.StartRedis(t, opts...), clock: newClock(), scoring: &fakeScoring{}, capture: &fakeCapture{}}
}

// router builds one routing instance (its own runtime and Redis client) on
// the shared Redis.
func (e *env) router(opts ...platform.Option) (*router.Router, *platform.Runtime) {
	rt := platformtest.Runtime(e.t, "routing", e.redis.URL(), opts...)
	r := router.New(router.Deps{Redis: rt.Redis, Tracer: rt.Tracer(), Meter: rt.Meter(), Logger: rt.Logger, Events: rt.Events,
		Scoring: e.scoring, Capture: e.capture}, router.Options{Now: e.clock.Now, InboxBlock: 200 * time.Millisecond})
	return r, rt
}

func rep(id string, weight, capacity int32) *routingv1.Rep {
	return &routingv1.Rep{Id: id, Weight: weight, Capacity: capacity, Availability: routingv1.Availability_AVAILABILITY_ACTIVE}
}

// baseConfig: team "dach" (anna, bernd, clara) for DE/AT/CH, team "us"
// (dave, erin) for US enterprise software, default team "inside" (ivan).
func baseConfig() *routingv1.RoutingConfig {
	return &routingv1.RoutingConfig{
		Teams: []*routingv1.Team{
			{Id: "dach", TeamLeadRepId: "anna", Reps: []*routingv1.Rep{rep("anna", 1, 100), rep("bernd", 1, 100), rep("clara", 1, 100)}},
			{Id: "us", Reps: []*routingv1.Rep{rep("dave", 1, 100), rep("erin", 1, 100)}},
			{Id: "inside", Reps: []*routingv1.Rep{rep("ivan", 1, 100)}},
		},
		Rules: []*routingv1.Rule{
			{Id: "dach", Conditions: &routingv1.RuleConditions{CountryCodes: []string{"DE", "AT", "CH"}}, Target: &routingv1.Rule_TeamId{TeamId: "dach"}},
			{Id: "us-enterprise-software", Conditions: &routingv1.RuleConditions{CountryCodes: []string{"US"}, Industries: []string{"software"}, MinEmployees: 1000},
				Target: &routingv1.Rule_TeamId{TeamId: "us"}},
		},
		DefaultTeamId: "inside",
		SlaPolicies: []*routingv1.SlaPolicy{
			{Id: "dach-first-touch", TeamId: "dach", FirstTouchWithin: durationpb.New(time.Hour), Action: routingv1.BreachAction_BREACH_ACTION_REASSIGN},
		},
	}
}

var leadSeq int

func lead(country string, heat leadv1.Heat, total int32) (*leadv1.LeadProfile, *leadv1.Score) {
	leadSeq++
	return &leadv1.LeadProfile{
			LeadId:       fmt.Sprintf("lead-%05d-%d", leadSeq, time.Now().UnixNano()%100000),
			Organisation: &leadv1.Organisation{Id: fmt.Sprintf("org-%d", leadSeq), Domain: fmt.Sprintf("org%d.example", leadSeq), CountryCode: country, Industry: "software", EmployeeCount: 50},
			Traceparent:  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		},
		&leadv1.Score{Total: total, Heat: heat, Grade: leadv1.Grade_GRADE_B, Mql: true}
}

func route(t *testing.T, r *router.Router, p *leadv1.LeadProfile, s *leadv1.Score) *routingv1.RoutingDecision {
	t.Helper()
	d, _, err := r.RouteLead(context.Background(), &routingv1.RouteLeadRequest{Profile: p, Score: s, Reasons: []string{"demo requested"}, RequestId: "req-" + p.GetLeadId()})
	if err != nil {
		t.Fatalf("route %s: %v", p.GetLeadId(), err)
	}
	return d
}

func apply(t *testing.T, r *router.Router, c *routingv1.RoutingConfig) *routingv1.RoutingConfig {
	t.Helper()
	out, err := r.ApplyConfig(context.Background(), c, 0)
	if err != nil {
		t.Fatalf("apply config: %v", err)
	}
	return out
}

// countEvents counts routing events on the stream whose payload name matches.
func countEvents(t *testing.T, e *env, match func(string) bool) int {
	t.Helper()
	msgs, err := e.redis.Client().XRange(context.Background(), events.StreamKey, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		ev, err := events.Decode(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		name := string(ev.ProtoReflect().WhichOneof(ev.ProtoReflect().Descriptor().Oneofs().ByName("payload")).Name())
		if match(name) {
			n++
		}
	}
	return n
}
