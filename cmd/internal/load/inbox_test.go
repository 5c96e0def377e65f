package load

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leadflow/leadflow/cmd/internal/client"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
)

// fakeRouting serves GetConfig and WatchInbox from a script: each WatchInbox
// call gets the next batch of items and then breaks (Unavailable), like a
// routing restart; the cursors the calls asked from are recorded.
type fakeRouting struct {
	routingv1.RoutingServiceClient
	mu      sync.Mutex
	batches [][]*routingv1.InboxItem
	asked   []string
	views   []routingv1.InboxView
	states  map[string]routingv1.AssignmentState // GetAssignment answers
	polls   int
}

func (f *fakeRouting) GetConfig(context.Context, *routingv1.GetConfigRequest, ...grpc.CallOption) (*routingv1.GetConfigResponse, error) {
	return &routingv1.GetConfigResponse{Config: &routingv1.RoutingConfig{Teams: []*routingv1.Team{{Id: "t", Reps: []*routingv1.Rep{{Id: "rep-1"}}}}}}, nil
}

func (f *fakeRouting) WatchInbox(ctx context.Context, req *routingv1.WatchInboxRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[routingv1.WatchInboxResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, req.GetAfterCursor())
	f.views = append(f.views, req.GetView())
	var items []*routingv1.InboxItem
	if len(f.batches) > 0 {
		items, f.batches = f.batches[0], f.batches[1:]
	}
	return &fakeStream{ctx: ctx, items: items, last: len(f.batches) == 0}, nil
}

type fakeStream struct {
	grpc.ClientStream
	ctx   context.Context
	items []*routingv1.InboxItem
	last  bool // the last batch stays open (until ctx ends) instead of breaking
}

func (s *fakeStream) Recv() (*routingv1.WatchInboxResponse, error) {
	if len(s.items) > 0 {
		it := s.items[0]
		s.items = s.items[1:]
		return &routingv1.WatchInboxResponse{Item: it}, nil
	}
	if s.last {
		<-s.ctx.Done()
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
	return nil, status.Error(codes.Unavailable, "routing restarting")
}

func assigned(cursor, lead string) *routingv1.InboxItem {
	return &routingv1.InboxItem{Cursor: cursor, Kind: routingv1.InboxItemKind_INBOX_ITEM_KIND_ASSIGNED, LeadId: lead}
}

// A stream that breaks is reopened from the last cursor received, and every
// ASSIGNED item reaches its journey: one announced before the journey asked
// (SubmitLead had not answered yet) and ones after; other kinds are not
// announcements. Every reconnect asks for the view given.
func TestInboxReconnectsFromLastCursor(t *testing.T) {
	f := &fakeRouting{batches: [][]*routingv1.InboxItem{
		{assigned("5-0", "early"), {Cursor: "6-0", Kind: routingv1.InboxItemKind_INBOX_ITEM_KIND_REVOKED, LeadId: "revoked"}},
		{assigned("7-0", "a")},
		{},
		{assigned("9-0", "b")},
	}}
	w, err := startInbox(context.Background(), f, 32, routingv1.InboxView_INBOX_VIEW_BASIC, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer w.stop()
	wait := func(lead string) {
		t.Helper()
		ch, done := w.expect(lead)
		defer done()
		select {
		case n := <-ch:
			if n.rep != "rep-1" {
				t.Errorf("%s announced for %q", lead, n.rep)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never announced", lead)
		}
	}
	wait("b") // comes after two breaks: every earlier item was read by then
	wait("a")
	wait("early")
	ch, done := w.expect("revoked")
	defer done()
	select {
	case <-ch:
		t.Error("a REVOKED item announced an assignment")
	default:
	}
	f.mu.Lock()
	asked := append([]string(nil), f.asked...)
	views := append([]routingv1.InboxView(nil), f.views...)
	f.mu.Unlock()
	for i, v := range views {
		if v != routingv1.InboxView_INBOX_VIEW_BASIC {
			t.Errorf("WatchInbox call %d asked for view %v, want BASIC", i, v)
		}
	}
	if len(asked) != 4 || asked[1] != "6-0" || asked[2] != "7-0" || asked[3] != "7-0" {
		t.Errorf("WatchInbox asked from %v, want [<now> 6-0 7-0 7-0]", asked)
	}
	// The first cursor is "now" (a second earlier) as a stream id.
	ms, seq, _ := strings.Cut(asked[0], "-")
	at, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || seq != "0" || time.Since(time.UnixMilli(at)) < time.Second || time.Since(time.UnixMilli(at)) > time.Minute {
		t.Errorf("first cursor %q is not about a second ago", asked[0])
	}
	if got := w.reconnects.Load(); got != 3 {
		t.Errorf("reconnects = %d, want 3", got)
	}
}

func (f *fakeRouting) GetAssignment(_ context.Context, req *routingv1.GetAssignmentRequest, _ ...grpc.CallOption) (*routingv1.GetAssignmentResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	st, ok := f.states[req.GetLeadId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "not routed yet")
	}
	return &routingv1.GetAssignmentResponse{Assignment: &routingv1.Assignment{LeadId: req.GetLeadId(), State: st, RepId: "rep-1"}}, nil
}

// A lead the inbox does not announce within the grace (queued) is polled;
// one announced while its journey polls is taken from the inbox.
func TestWaitRoutedFallsBackToPolling(t *testing.T) {
	f := &fakeRouting{states: map[string]routingv1.AssignmentState{"queued": routingv1.AssignmentState_ASSIGNMENT_STATE_QUEUED}}
	w, err := startInbox(context.Background(), f, 32, routingv1.InboxView_INBOX_VIEW_FULL, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer w.stop()
	r := &runner{cfg: Config{CallTimeout: time.Second, AssignWait: 10 * time.Second, InboxGrace: 20 * time.Millisecond},
		c: &client.Clients{Routing: f}, rep: &Report{RPC: map[string]*Hist{}}, errs: map[string]int64{}, inbox: w}

	st, _, _ := r.waitRouted(context.Background(), "queued")
	if st != routingv1.AssignmentState_ASSIGNMENT_STATE_QUEUED || r.byPoll.Load() != 1 || r.byInbox.Load() != 0 {
		t.Fatalf("queued lead: state %v, polled %d, inbox %d", st, r.byPoll.Load(), r.byInbox.Load())
	}

	go func() {
		// Announced late: after the grace, while the journey polls (NotFound).
		for {
			f.mu.Lock()
			polled := f.polls > 2
			f.mu.Unlock()
			if polled {
				w.announce("late", inboxNote{rep: "rep-1", at: time.Now()})
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	st, rep, _ := r.waitRouted(context.Background(), "late")
	if st != routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED || rep != "rep-1" || r.byInbox.Load() != 1 {
		t.Fatalf("late lead: state %v rep %q, inbox %d", st, rep, r.byInbox.Load())
	}
}
