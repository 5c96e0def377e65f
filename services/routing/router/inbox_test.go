package router_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/routing/router"
)

// watchInbox streams a rep's inbox into a channel until stop (or the end of
// the test); next returns the next item.
func watchInbox(t *testing.T, r *router.Router, rep, cursor string) (next func() *routingv1.InboxItem, stop func()) {
	t.Helper()
	return watchInboxView(t, r, rep, cursor, routingv1.InboxView_INBOX_VIEW_UNSPECIFIED)
}

// watchInboxView is watchInbox with a view.
func watchInboxView(t *testing.T, r *router.Router, rep, cursor string, view routingv1.InboxView) (next func() *routingv1.InboxItem, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	items := make(chan *routingv1.InboxItem, 1000)
	done := make(chan error, 1)
	go func() {
		done <- r.WatchInbox(ctx, rep, cursor, view, func(it *routingv1.InboxItem) error { items <- it; return nil })
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("WatchInbox: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	next = func() *routingv1.InboxItem {
		t.Helper()
		select {
		case it := <-items:
			return it
		case <-time.After(20 * time.Second):
			t.Fatal("no inbox item")
			return nil
		}
	}
	return next, stop
}

// An inbox read is filled in as a batch: its assigned leads' records and
// contacts come from one pipelined read and one capture call, items keep
// stream order, a lead capture does not know gets a note. While capture is
// down a batch costs one failed call (not one per item), and the reads
// after it skip capture.
func TestInboxFillsABatchWithOneCaptureCall(t *testing.T) {
	e := newEnv(t)
	r, rt := e.router()
	apply(t, r, baseConfig())
	routeN := func(n int) []string {
		var ids []string
		for range n {
			p, s := lead("FR", leadv1.Heat_HEAT_HOT, 70) // default team "inside": ivan
			route(t, r, p, s)
			ids = append(ids, p.GetLeadId())
		}
		return ids
	}
	ids := routeN(5)
	e.capture.set(false, ids[2])
	reads := &leadReads{}
	rt.Redis.AddHook(reads)
	next, stop := watchInbox(t, r, "ivan", "")
	var cursor string
	for i, id := range ids {
		it := next()
		cursor = it.GetCursor()
		if it.GetLeadId() != id || it.GetKind() != routingv1.InboxItemKind_INBOX_ITEM_KIND_ASSIGNED {
			t.Fatalf("item %d: lead %s kind %v, want %s assigned (stream order)", i, it.GetLeadId(), it.GetKind(), id)
		}
		if it.GetScore().GetTotal() != 70 || it.GetProfile().GetLeadId() != id || !slices.Equal(it.GetReasons(), []string{"demo requested"}) {
			t.Fatalf("item %d: lead record not filled in: %v", i, it)
		}
		if i == 2 {
			if it.GetContact() != nil || !it.GetContactUnavailable() || it.GetContactNote() != "contact not available (lead erased or unknown in capture)" {
				t.Fatalf("lead unknown in capture: %v", it)
			}
			continue
		}
		if it.GetContact().GetEmail() != id+"@example.com" || it.GetContactUnavailable() || it.GetContactNote() != "" {
			t.Fatalf("item %d: contact not filled in: %v", i, it)
		}
	}
	if calls := e.capture.Calls(); len(calls) != 1 || !slices.Equal(calls[0], ids) {
		t.Fatalf("capture calls %v, want one with %v", calls, ids)
	}
	stop()
	if single, piped := reads.counts(); single != 0 || !slices.Equal(piped, []int{len(ids)}) {
		t.Fatalf("lead record reads: %d alone, pipelines of %v; want one pipeline of %d", single, piped, len(ids))
	}

	e.capture.set(true)
	ids = routeN(4)
	next, _ = watchInbox(t, r, "ivan", cursor)
	down := "capture is unavailable: contact not included; fetch it from capture later"
	for i, id := range ids {
		if it := next(); it.GetLeadId() != id || it.GetContact() != nil || !it.GetContactUnavailable() || it.GetContactNote() != down {
			t.Fatalf("capture down, item %d: %v", i, it)
		}
	}
	if calls := e.capture.Calls(); len(calls) != 2 || !slices.Equal(calls[1], ids) {
		t.Fatalf("capture calls %v, want one more with %v", calls, ids)
	}
	// The next read of the same stream, within the back-off, skips capture.
	id := routeN(1)[0]
	if it := next(); it.GetLeadId() != id || it.GetContactNote() != down {
		t.Fatalf("during the back-off: %v", it)
	}
	if n := len(e.capture.Calls()); n != 2 {
		t.Fatalf("%d capture calls, want none during the back-off", n)
	}
}

// With view BASIC an item is the FULL item without what other reads add
// (profile, score, reasons, first-touch deadline, contact), and the stream
// reads no lead record and never calls capture.
func TestInboxBasicViewReadsNothingElse(t *testing.T) {
	e := newEnv(t)
	r, rt := e.router()
	apply(t, r, baseConfig())
	var ids []string
	for range 3 {
		p, s := lead("FR", leadv1.Heat_HEAT_HOT, 70) // default team "inside": ivan
		route(t, r, p, s)
		ids = append(ids, p.GetLeadId())
	}
	reads := &leadReads{}
	rt.Redis.AddHook(reads)
	next, stop := watchInboxView(t, r, "ivan", "", routingv1.InboxView_INBOX_VIEW_BASIC)
	basic := make([]*routingv1.InboxItem, len(ids))
	for i := range ids {
		basic[i] = next()
	}
	stop()
	if single, piped := reads.counts(); single != 0 || len(piped) != 0 {
		t.Fatalf("BASIC read lead records: %d alone, pipelines of %v", single, piped)
	}
	if calls := e.capture.Calls(); len(calls) != 0 {
		t.Fatalf("BASIC called capture: %v", calls)
	}

	next, _ = watchInboxView(t, r, "ivan", "", routingv1.InboxView_INBOX_VIEW_FULL)
	for i, id := range ids {
		full := next()
		if full.GetContact() == nil || full.GetProfile() == nil || full.GetScore() == nil {
			t.Fatalf("item %d: FULL not filled in: %v", i, full)
		}
		want := proto.CloneOf(full)
		want.Profile, want.Score, want.Reasons, want.FirstTouchDue, want.Contact = nil, nil, nil, nil, nil
		if basic[i].GetLeadId() != id || !proto.Equal(basic[i], want) {
			t.Fatalf("item %d: BASIC %v, want the FULL item without its other reads: %v", i, basic[i], want)
		}
	}
}

// The inbox streams' contact lookups, merged: each distinct lead is asked
// for once, in calls of at most 100, and each stream gets the contacts of
// its own leads. When capture does not answer, every lookup gets the error
// after one call, not one per 100 leads.
func TestMergedContactLookupsShareCaptureCalls(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	ctx := context.Background()
	e.capture.set(false, "x")
	res := router.LookupContacts(r, ctx, [][]string{{"a", "b"}, {"b", "c"}, {"x"}})
	if calls := e.capture.Calls(); len(calls) != 1 || !slices.Equal(calls[0], []string{"a", "b", "c", "x"}) {
		t.Fatalf("capture calls %v, want one with a b c x", calls)
	}
	emails := func(i int) []string {
		if res[i].Err != nil {
			t.Fatalf("lookup %d: %v", i, res[i].Err)
		}
		var out []string
		for id, c := range res[i].Val {
			if c.GetEmail() != id+"@example.com" {
				t.Fatalf("lookup %d: lead %s has %s's contact", i, id, c.GetEmail())
			}
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	if a, b, c := emails(0), emails(1), emails(2); !slices.Equal(a, []string{"a", "b"}) || !slices.Equal(b, []string{"b", "c"}) || len(c) != 0 {
		t.Fatalf("contacts per lookup: %v %v %v", a, b, c)
	}

	var big [][]string
	for i := range 3 {
		var l []string
		for j := range 50 {
			l = append(l, fmt.Sprintf("lead-%d-%d", i, j))
		}
		big = append(big, l)
	}
	res = router.LookupContacts(r, ctx, big)
	calls := e.capture.Calls()[1:]
	if len(calls) != 2 || len(calls[0]) != 100 || len(calls[1]) != 50 {
		t.Fatalf("150 leads went in calls of %d, want 100 and 50", len(calls))
	}
	for i := range big {
		if got := emails(i); len(got) != 50 {
			t.Fatalf("lookup %d: %d contacts, want 50", i, len(got))
		}
	}

	e.capture.set(true)
	res = router.LookupContacts(r, ctx, big)
	if n := len(e.capture.Calls()); n != 4 {
		t.Fatalf("%d capture calls in all, want one more while capture is down", n)
	}
	for i := range res {
		if status.Code(res[i].Err) != codes.Unavailable || res[i].Val != nil {
			t.Fatalf("lookup %d while capture is down: %v %v", i, res[i].Val, res[i].Err)
		}
	}
}

// leadReads counts the lead record reads (HGETALL) sent alone and the number
// in each pipeline that holds some.
type leadReads struct {
	mu     sync.Mutex
	single int
	piped  []int
}

func (h *leadReads) counts() (int, []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.single, append([]int(nil), h.piped...)
}

func (h *leadReads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *leadReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hgetall" {
			h.mu.Lock()
			h.single++
			h.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (h *leadReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, c := range cmds {
			if c.Name() == "hgetall" {
				n++
			}
		}
		if n > 0 {
			h.mu.Lock()
			h.piped = append(h.piped, n)
			h.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}
