package router

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/routing/store"
)

// WatchInbox sends a rep's inbox items after cursor ("" = the oldest kept)
// until ctx ends. Items are read in stream order and each is sent once; a
// client that reconnects with the last cursor it received misses nothing.
func (r *Router) WatchInbox(ctx context.Context, rep, cursor string, send func(*routingv1.InboxItem) error) error {
	if !store.ValidCursor(cursor) {
		return status.Errorf(codes.InvalidArgument, "after_cursor %q is not an inbox cursor", cursor)
	}
	c, err := r.config(ctx)
	if err != nil {
		return err
	}
	rp, ok := c.Reps[rep]
	if !ok {
		return status.Errorf(codes.NotFound, "rep %q is not in the routing configuration", rep)
	}
	capDown := &capDown{} // after a failed capture call, skip capture for a while
	for ctx.Err() == nil {
		entries, err := r.st.ReadInbox(ctx, rp.TeamID, rep, cursor, 100, r.opts.InboxBlock)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// Items are filled in (a read of the lead, a capture call for the
		// contact) a few at a time, and sent in stream order: under load a
		// rep's inbox would otherwise lag by one lookup per queued item.
		items := make([]*routingv1.InboxItem, len(entries))
		sem := make(chan struct{}, inboxFill)
		var wg sync.WaitGroup
		for i, e := range entries {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				items[i] = r.inboxItem(ctx, rp.TeamID, e, capDown)
			}()
		}
		wg.Wait()
		for i, item := range items {
			if err := send(item); err != nil {
				return err
			}
			cursor = entries[i].ID
		}
	}
	return nil
}

// inboxFill is how many inbox items of one stream are filled in at once.
const inboxFill = 8

// capDown remembers, per stream, until when capture is considered down.
type capDown struct {
	mu    sync.Mutex
	until time.Time
}

func (c *capDown) down() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Before(c.until)
}

func (c *capDown) mark(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.until = time.Now().Add(d)
}

func (r *Router) inboxItem(ctx context.Context, team string, e store.InboxEntry, capDownUntil *capDown) *routingv1.InboxItem {
	it := &routingv1.InboxItem{Cursor: e.ID, LeadId: e.Lead, TeamId: team, DecisionId: e.Dec, CreatedAt: timestamppb.New(e.At), RepId: e.Rep, Note: e.Note}
	switch e.Kind {
	case "assigned":
		it.Kind = routingv1.InboxItemKind_INBOX_ITEM_KIND_ASSIGNED
	case "sla_breach":
		it.Kind = routingv1.InboxItemKind_INBOX_ITEM_KIND_SLA_BREACH
	case "revoked":
		it.Kind = routingv1.InboxItemKind_INBOX_ITEM_KIND_REVOKED
	}
	if it.Kind != routingv1.InboxItemKind_INBOX_ITEM_KIND_ASSIGNED {
		return it
	}
	if rec, err := r.st.Lead(ctx, team, e.Lead); err == nil {
		it.Reasons = rec.Reasons
		p, s := &leadv1.LeadProfile{}, &leadv1.Score{}
		if proto.Unmarshal(rec.Profile, p) == nil {
			it.Profile = p
		}
		if proto.Unmarshal(rec.ScoreBytes, s) == nil {
			it.Score = s
		}
		if rec.Dec == e.Dec {
			it.FirstTouchDue = tsms(rec.FTD)
		}
	}
	if r.capture == nil {
		it.ContactUnavailable, it.ContactNote = true, "contact service not configured"
		return it
	}
	// A backlog must not wait one timeout per item while capture is down.
	if capDownUntil.down() {
		it.ContactUnavailable, it.ContactNote = true, "capture is unavailable: contact not included; fetch it from capture later"
		return it
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.ContactTimeout)
	defer cancel()
	contact, err := r.capture.Contact(cctx, e.Lead)
	switch {
	case err == nil:
		it.Contact = contact
	case status.Code(err) == codes.NotFound:
		it.ContactUnavailable, it.ContactNote = true, "contact not available (lead erased or unknown in capture)"
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded, status.Code(err) == codes.Unavailable:
		it.ContactUnavailable, it.ContactNote = true, "capture is unavailable: contact not included; fetch it from capture later"
		capDownUntil.mark(5 * time.Second)
	default:
		it.ContactUnavailable, it.ContactNote = true, "contact could not be fetched: "+status.Code(err).String()
	}
	return it
}
