package router

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform/coalesce"
	"github.com/leadflow/leadflow/services/routing/store"
)

// WatchInbox sends a rep's inbox items after cursor ("" = the oldest kept)
// until ctx ends. Items are read in stream order and each is sent once; a
// client that reconnects with the last cursor it received misses nothing.
// With view BASIC an item is its inbox entry alone: nothing else is read.
func (r *Router) WatchInbox(ctx context.Context, rep, cursor string, view routingv1.InboxView, send func(*routingv1.InboxItem) error) error {
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
	full := view != routingv1.InboxView_INBOX_VIEW_BASIC
	var capDownUntil time.Time // after a failed capture call, skip capture until then
	for ctx.Err() == nil {
		entries, err := r.st.ReadInbox(ctx, rp.TeamID, rep, cursor, inboxRead, r.opts.InboxBlock)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		items := r.inboxItems(ctx, rp.TeamID, entries, full, &capDownUntil)
		for i, item := range items {
			if err := send(item); err != nil {
				return err
			}
			cursor = entries[i].ID
		}
	}
	return nil
}

const (
	// inboxRead is how many inbox items one read takes.
	inboxRead = 100
	// contactBatch is how many leads one capture call asks for (the
	// BatchGetLeads limit).
	contactBatch = 100
	// capDownFor is how long capture is skipped after it failed to answer.
	capDownFor = 5 * time.Second
	// contactLookupStreams is how many streams' lookups one merged lookup
	// takes at most.
	contactLookupStreams = 64
)

// Notes of an assigned item that comes without its contact.
const (
	noteNoCapture   = "contact service not configured"
	noteCaptureDown = "capture is unavailable: contact not included; fetch it from capture later"
	noteNoContact   = "contact not available (lead erased or unknown in capture)"
)

// inboxItems fills in a read of inbox entries, in their order. The assigned
// items of the whole read share one pipelined read of their lead records
// and one contact lookup, which lookupContacts merges with other streams'
// into capture calls of up to 100 leads: under load, one Redis round trip
// and one capture call per item would make a rep's inbox lag behind.
// Without full, the entries alone make the items.
func (r *Router) inboxItems(ctx context.Context, team string, entries []store.InboxEntry, full bool, capDownUntil *time.Time) []*routingv1.InboxItem {
	items := make([]*routingv1.InboxItem, len(entries))
	var leads []string // distinct leads of the assigned items
	seen := map[string]bool{}
	for i, e := range entries {
		it := &routingv1.InboxItem{Cursor: e.ID, LeadId: e.Lead, TeamId: team, DecisionId: e.Dec, CreatedAt: timestamppb.New(e.At), RepId: e.Rep, Note: e.Note}
		switch e.Kind {
		case "assigned":
			it.Kind = routingv1.InboxItemKind_INBOX_ITEM_KIND_ASSIGNED
			if full && !seen[e.Lead] {
				seen[e.Lead] = true
				leads = append(leads, e.Lead)
			}
		case "sla_breach":
			it.Kind = routingv1.InboxItemKind_INBOX_ITEM_KIND_SLA_BREACH
		case "revoked":
			it.Kind = routingv1.InboxItemKind_INBOX_ITEM_KIND_REVOKED
		}
		items[i] = it
	}
	if len(leads) == 0 {
		return items
	}
	// A failed read leaves the record's fields out, as for a missing record.
	recs := make(map[string]*store.Record, len(leads))
	if rs, err := r.st.Leads(ctx, team, leads); err == nil {
		for i, rec := range rs {
			if rec != nil {
				recs[leads[i]] = rec
			}
		}
	}
	contacts, notes := r.contacts(ctx, leads, capDownUntil)
	for i, it := range items {
		if it.Kind != routingv1.InboxItemKind_INBOX_ITEM_KIND_ASSIGNED {
			continue
		}
		if rec := recs[it.LeadId]; rec != nil {
			it.Reasons = rec.Reasons
			p, s := &leadv1.LeadProfile{}, &leadv1.Score{}
			if proto.Unmarshal(rec.Profile, p) == nil {
				it.Profile = p
			}
			if proto.Unmarshal(rec.ScoreBytes, s) == nil {
				it.Score = s
			}
			if rec.Dec == entries[i].Dec {
				it.FirstTouchDue = tsms(rec.FTD)
			}
		}
		if c, ok := contacts[it.LeadId]; ok {
			it.Contact = c
		} else {
			it.ContactUnavailable, it.ContactNote = true, notes[it.LeadId]
		}
	}
	return items
}

// contacts looks up the contacts of leads (one read's distinct leads; the
// lookup is merged with other streams', see lookupContacts). It returns the
// contacts found and, for every other lead, the note its items carry.
// After capture failed to answer (Unavailable, deadline), capture is
// skipped until *capDownUntil so that a backlog does not wait one timeout
// per read while capture is down.
func (r *Router) contacts(ctx context.Context, leads []string, capDownUntil *time.Time) (map[string]*leadv1.Contact, map[string]string) {
	found, note := r.fetchContacts(ctx, leads, capDownUntil)
	notes := map[string]string{}
	for _, id := range leads {
		if _, ok := found[id]; !ok {
			notes[id] = note
		}
	}
	return found, notes
}

// fetchContacts returns the contacts capture has of leads and the note of
// the others.
func (r *Router) fetchContacts(ctx context.Context, leads []string, capDownUntil *time.Time) (map[string]*leadv1.Contact, string) {
	switch {
	case r.capture == nil:
		return nil, noteNoCapture
	case time.Now().Before(*capDownUntil):
		return nil, noteCaptureDown
	}
	cs, err := r.contactLookups.Do(ctx, leads)
	switch {
	case err == nil:
		return cs, noteNoContact
	case captureDown(err):
		*capDownUntil = time.Now().Add(capDownFor)
		return nil, noteCaptureDown
	default:
		return nil, "contact could not be fetched: " + status.Code(err).String()
	}
}

// captureDown reports whether err means capture did not answer in time.
func captureDown(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Unavailable
}

// lookupContacts answers the contact lookups of several inbox streams
// (each a list of distinct leads) with one capture call per 100 distinct
// leads of them all, each bounded by ContactTimeout. Under load every
// rep's stream reads a few items at a time; a call per stream and read
// would cost a capture round trip, its spans and its encoding for each.
// A lookup with a lead whose call failed gets that call's error; once
// capture did not answer, the calls left are not made.
func (r *Router) lookupContacts(ctx context.Context, lookups [][]string) []coalesce.Result[map[string]*leadv1.Contact] {
	var leads []string
	seen := map[string]bool{}
	for _, l := range lookups {
		for _, id := range l {
			if !seen[id] {
				seen[id] = true
				leads = append(leads, id)
			}
		}
	}
	found := make(map[string]*leadv1.Contact, len(leads))
	failed := map[string]error{}
	var down error
	for len(leads) > 0 {
		call := leads[:min(len(leads), contactBatch)]
		leads = leads[len(call):]
		err := down
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, r.opts.ContactTimeout)
			var cs map[string]*leadv1.Contact
			cs, err = r.capture.Contacts(cctx, call)
			cancel()
			for id, c := range cs {
				found[id] = c
			}
			if err != nil && captureDown(err) {
				down = err
			}
		}
		if err != nil {
			for _, id := range call {
				failed[id] = err
			}
		}
	}
	out := make([]coalesce.Result[map[string]*leadv1.Contact], len(lookups))
	for i, l := range lookups {
		m := make(map[string]*leadv1.Contact, len(l))
		for _, id := range l {
			if err := failed[id]; err != nil {
				out[i].Err = err
				break
			}
			if c, ok := found[id]; ok {
				m[id] = c
			}
		}
		if out[i].Err == nil {
			out[i].Val = m
		}
	}
	return out
}
