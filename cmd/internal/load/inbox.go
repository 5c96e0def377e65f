package load

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
)

// inboxNote is an ASSIGNED inbox item as a journey sees it: the rep whose
// inbox it came from and when this process received it.
type inboxNote struct {
	rep string
	at  time.Time
}

// inboxWatch follows reps' inboxes through routing WatchInbox (one server
// stream per rep, as a rep's UI does) and hands every ASSIGNED item to the
// journey waiting for that lead. Items that come before the journey asks
// (SubmitLead has not answered yet) are kept until it does.
type inboxWatch struct {
	mu      sync.Mutex
	waiting map[string]chan inboxNote // lead id → the journey's channel (buffer 1)
	early   map[string]inboxNote      // announced before the journey asked

	streams    int
	reps       int
	view       routingv1.InboxView
	reconnects atomic.Int64
	items      atomic.Int64
	// lag is ASSIGNED item written (its created_at, routing's clock) →
	// received here: what the stream adds to the end-to-end figure.
	lag    Hist
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startInbox reads the routing configuration and opens one WatchInbox stream
// per rep (at most maxStreams: every stream holds one of routing's Redis
// connections in a blocking read) with view, starting from now. Leads
// assigned to reps without a stream are observed by polling.
func startInbox(ctx context.Context, rc routingv1.RoutingServiceClient, maxStreams int, view routingv1.InboxView, callTimeout time.Duration, logw io.Writer) (*inboxWatch, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	cfg, err := rc.GetConfig(cctx, &routingv1.GetConfigRequest{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("routing GetConfig: %w", err)
	}
	var reps []string
	for _, t := range cfg.GetConfig().GetTeams() {
		for _, r := range t.GetReps() {
			reps = append(reps, r.GetId())
		}
	}
	w := &inboxWatch{waiting: map[string]chan inboxNote{}, early: map[string]inboxNote{}, reps: len(reps), view: view}
	if len(reps) > maxStreams {
		fmt.Fprintf(logw, "inbox: %d reps, watching the first %d (--inbox-streams); leads of the others are observed by polling\n", len(reps), maxStreams)
		reps = reps[:maxStreams]
	}
	w.streams = len(reps)
	// Inbox cursors are Redis stream ids (<ms>-<seq>): "now" is the current
	// millisecond. A second earlier absorbs a clock difference between this
	// process and Redis; the few older items it may bring are of other
	// leads and ignored.
	from := strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10) + "-0"
	sctx, stop := context.WithCancel(ctx)
	w.cancel = stop
	for _, rep := range reps {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.follow(sctx, rc, rep, from)
		}()
	}
	return w, nil
}

// follow reads one rep's inbox until ctx ends, reconnecting from the last
// cursor received when the stream breaks (backoff 100 ms doubling to 2 s).
func (w *inboxWatch) follow(ctx context.Context, rc routingv1.RoutingServiceClient, rep, cursor string) {
	backoff := 100 * time.Millisecond
	for {
		st, err := rc.WatchInbox(ctx, &routingv1.WatchInboxRequest{RepId: rep, AfterCursor: cursor, View: w.view})
		for err == nil {
			var resp *routingv1.WatchInboxResponse
			if resp, err = st.Recv(); err != nil {
				break
			}
			it := resp.GetItem()
			cursor = it.GetCursor()
			backoff = 100 * time.Millisecond
			w.items.Add(1)
			if it.GetKind() == routingv1.InboxItemKind_INBOX_ITEM_KIND_ASSIGNED {
				now := time.Now()
				if c := it.GetCreatedAt(); c != nil {
					w.lag.Add(now.Sub(c.AsTime()))
				}
				w.announce(it.GetLeadId(), inboxNote{rep: rep, at: now})
			}
		}
		if ctx.Err() != nil {
			return
		}
		switch status.Code(err) {
		case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
			// Will not get better by retrying: this rep's leads are polled.
			return
		}
		w.reconnects.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (w *inboxWatch) announce(lead string, n inboxNote) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.waiting[lead]; ok {
		delete(w.waiting, lead)
		ch <- n // buffered, and only ever sent once
		return
	}
	if _, ok := w.early[lead]; !ok {
		w.early[lead] = n
	}
}

// expect returns the channel on which the lead's first ASSIGNED item comes,
// and a function that stops waiting for it.
func (w *inboxWatch) expect(lead string) (<-chan inboxNote, func()) {
	ch := make(chan inboxNote, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.early[lead]; ok {
		delete(w.early, lead)
		ch <- n
		return ch, func() {}
	}
	w.waiting[lead] = ch
	return ch, func() {
		w.mu.Lock()
		if w.waiting[lead] == ch {
			delete(w.waiting, lead)
		}
		w.mu.Unlock()
	}
}

// stop closes the streams and waits for their goroutines.
func (w *inboxWatch) stop() {
	w.cancel()
	w.wg.Wait()
}

// ParseInboxView is the WatchInbox view named by --inbox-view: basic or full.
func ParseInboxView(name string) (routingv1.InboxView, error) {
	switch name {
	case "basic":
		return routingv1.InboxView_INBOX_VIEW_BASIC, nil
	case "full":
		return routingv1.InboxView_INBOX_VIEW_FULL, nil
	}
	return 0, fmt.Errorf("--inbox-view %q: want basic or full", name)
}

// InboxViewName is ParseInboxView's name of v; unspecified is routing's
// default, full.
func InboxViewName(v routingv1.InboxView) string {
	if v == routingv1.InboxView_INBOX_VIEW_BASIC {
		return "basic"
	}
	return "full"
}
