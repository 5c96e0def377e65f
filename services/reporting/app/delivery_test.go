package app_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/reporting/consumer"
	"github.com/leadflow/leadflow/services/reporting/domain"
	"github.com/leadflow/leadflow/services/reporting/store"
)

func TestProcessingTheSameEventsTwiceChangesNothing(t *testing.T) {
	h := newHarness(t)
	evs := script()
	h.publish(evs...)
	c := h.consumer("c1", time.Minute)
	h.drain(c)
	before := h.dump()

	// Every event published again (new stream entries, same event ids), and
	// the group rewound so each old entry is delivered a second time too.
	h.publish(evs...)
	if err := h.rdb.XGroupSetID(h.ctx, events.StreamKey, consumer.Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	h.drain(c)
	if d := cmp.Diff(before, h.dump()); d != "" {
		t.Fatalf("aggregates changed by redelivery (-before +after):\n%s", d)
	}
	if p := h.pending(); p != 0 {
		t.Fatalf("pending = %d", p)
	}
	assertScriptNumbers(t, h)
}

func TestKilledConsumerLosesNothingAndDoubleCountsNothing(t *testing.T) {
	h := newHarness(t)
	evs := script()
	h.publish(evs...)

	live := h.consumer("live", 5*time.Millisecond) // creates the group
	// Consumer "dead" reads the first 20 entries and dies before acking; it
	// had even applied the first 8 of them (crash between apply and XACK).
	res, err := h.rdb.XReadGroup(h.ctx, &redis.XReadGroupArgs{Group: consumer.Group, Consumer: "dead",
		Streams: []string{events.StreamKey, ">"}, Count: 20, Block: -1}).Result()
	if err != nil {
		t.Fatal(err)
	}
	dead := res[0].Messages
	if len(dead) != 20 {
		t.Fatalf("dead consumer read %d entries", len(dead))
	}
	gen, err := h.store.Generation(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var applied []store.Event
	for _, m := range dead[:8] {
		ev, err := events.Decode(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		ops, err := domain.Ops(ev)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := m.Values[events.Field].(string)
		applied = append(applied, store.Event{ID: ev.GetId(), LeadID: ev.GetLeadId(), Raw: []byte(raw), Ops: ops})
	}
	if _, err := h.store.Apply(h.ctx, gen, true, applied); err != nil {
		t.Fatal(err)
	}

	// A live consumer reads the rest; the dead one's 20 stay pending.
	h.drain(live)
	if p := h.pending(); p != 20 {
		t.Fatalf("pending before claim = %d, want the dead consumer's 20", p)
	}
	// Claimed back once idle for 5ms (poll: idleness is wall-clock time).
	deadline := time.Now().Add(10 * time.Second)
	claimed := 0
	for h.pending() > 0 && time.Now().Before(deadline) {
		n, err := live.ClaimOnce(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		claimed += n
	}
	if claimed != 20 {
		t.Fatalf("claimed %d entries, want 20", claimed)
	}
	if p := h.pending(); p != 0 {
		t.Fatalf("pending after claim = %d", p)
	}
	assertScriptNumbers(t, h)

	// The same aggregates as a clean run.
	clean := newHarness(t)
	clean.publish(evs...)
	clean.drain(clean.consumer("c", time.Minute))
	if d := cmp.Diff(withoutStreamIDs(clean.dump()), withoutStreamIDs(h.dump())); d != "" {
		t.Fatalf("claimed-back run differs from a clean run (-clean +claimed):\n%s", d)
	}
}

func TestRebuildReplaysIntoIdenticalAggregates(t *testing.T) {
	h := newHarness(t)
	h.publish(script()...)
	h.xadd(events.Field, "not a protobuf \xff\xff") // poison: skipped by both
	h.drain(h.consumer("c1", time.Minute))
	before := h.dump()
	genBefore, _ := h.store.Generation(h.ctx)

	res, err := h.client.RebuildAggregates(h.ctx, &reportingv1.RebuildAggregatesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(script()))
	if res.GetGeneration() == genBefore || res.GetEntriesReplayed() != n+1 || res.GetEventsApplied() != n-1 || res.GetLeads() != 6 {
		t.Fatalf("rebuild = %v; want a new generation, %d entries, %d events (one duplicate), 6 leads", res, n+1, n-1)
	}
	if d := cmp.Diff(before, h.dump()); d != "" {
		t.Fatalf("rebuilt aggregates differ (-live +rebuilt):\n%s", d)
	}
	assertScriptNumbers(t, h)
	// The old generation is gone.
	keys, err := h.rdb.Keys(h.ctx, store.GenPrefix(genBefore)+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("old generation keys left: %v %v", keys, err)
	}

	// The live consumer follows the swap: a new event lands in the new generation.
	c := h.consumer("c1", time.Minute)
	h.publish(captured("L8", at(3, 12, 0), "google", "fall-cpc", leadv1.Channel_CHANNEL_WEB_FORM))
	h.drain(c)
	if got := h.funnel(reportingv1.GroupBy_GROUP_BY_UNSPECIFIED).GetTotal().GetCaptured(); got != 6 {
		t.Fatalf("captured after rebuild + new lead = %d, want 6", got)
	}
}

func TestRebuildRefusesATrimmedStreamUnlessPartial(t *testing.T) {
	h := newHarness(t)
	h.publish(script()...)
	h.drain(h.consumer("c1", time.Minute))
	// Trim away the first entries (what retention would do after a month).
	first, err := h.rdb.XRangeN(h.ctx, events.StreamKey, "-", "+", 3).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.XTrimMinID(h.ctx, events.StreamKey, first[2].ID).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.rdb.XLen(h.ctx, events.StreamKey).Result(); n != int64(len(script()))-2 {
		t.Fatalf("stream length after trim = %d", n)
	}
	_, err = h.client.RebuildAggregates(h.ctx, &reportingv1.RebuildAggregatesRequest{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("rebuild of a trimmed stream: %v, want FailedPrecondition", err)
	}
	if _, err := h.client.RebuildAggregates(h.ctx, &reportingv1.RebuildAggregatesRequest{AllowPartial: true}); err != nil {
		t.Fatalf("partial rebuild: %v", err)
	}
}

func TestPoisonEntriesLandInTheDeadLetterStream(t *testing.T) {
	h := newHarness(t)
	c := h.consumer("c1", 5*time.Millisecond)
	good := captured("P1", at(2, 9, 0), "google", "x", leadv1.Channel_CHANNEL_WEB_FORM)
	noPayload := &eventsv1.LeadEvent{Id: "ev-np", LeadId: "P2", OccurredAt: timestamppb.New(at(2, 9, 0))}
	b, err := proto.Marshal(noPayload)
	if err != nil {
		t.Fatal(err)
	}
	garbage := h.xadd(events.Field, "\xff\xfe not protobuf")
	noField := h.xadd("x", "1")
	invalid := h.xadd(events.Field, b)
	h.publish(good)
	h.drain(c)

	// A fourth entry that keeps getting delivered without being acked (it
	// crashed its consumers): after MaxDeliveries (3) it is dead-lettered.
	crasher := h.xadd(events.Field, mustMarshal(t, captured("P3", at(2, 9, 0), "google", "x", leadv1.Channel_CHANNEL_WEB_FORM)))
	for i := 0; i < 4; i++ {
		// Each XREADGROUP/XCLAIM of the entry by a consumer that dies counts a delivery.
		if i == 0 {
			if _, err := h.rdb.XReadGroup(h.ctx, &redis.XReadGroupArgs{Group: consumer.Group, Consumer: "crashy",
				Streams: []string{events.StreamKey, ">"}, Count: 1, Block: -1}).Result(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := h.rdb.XClaim(h.ctx, &redis.XClaimArgs{Stream: events.StreamKey, Group: consumer.Group, Consumer: "crashy",
			Messages: []string{crasher}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.pending() > 0 && time.Now().Before(deadline) {
		if _, err := c.ClaimOnce(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if p := h.pending(); p != 0 {
		t.Fatalf("pending = %d", p)
	}

	list, err := h.client.ListDeadLetters(h.ctx, &reportingv1.ListDeadLettersRequest{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	page2, err := h.client.ListDeadLetters(h.ctx, &reportingv1.ListDeadLettersRequest{PageSize: 3, PageToken: list.GetNextPageToken()})
	if err != nil {
		t.Fatal(err)
	}
	all := append(list.GetDeadLetters(), page2.GetDeadLetters()...)
	if len(list.GetDeadLetters()) != 3 || page2.GetNextPageToken() != "" || len(all) != 4 {
		t.Fatalf("dead letters: page1 %d (next %q), page2 %d (next %q)", len(list.GetDeadLetters()), list.GetNextPageToken(),
			len(page2.GetDeadLetters()), page2.GetNextPageToken())
	}
	// Newest first: crasher, invalid, noField, garbage.
	want := []struct{ id, reasonPrefix string }{
		{crasher, "deliveries: 5"}, {invalid, "invalid event: no payload"}, {noField, "decode: "}, {garbage, "decode: "},
	}
	for i, w := range want {
		d := all[i]
		if d.GetStreamId() != w.id || len(d.GetReason()) < len(w.reasonPrefix) || d.GetReason()[:len(w.reasonPrefix)] != w.reasonPrefix || d.GetConsumer() != "c1" {
			t.Errorf("dead letter %d = %v, want stream id %s, reason %q…", i, d, w.id, w.reasonPrefix)
		}
	}
	if all[1].GetEvent().GetId() != "ev-np" || all[0].GetEvent().GetLeadId() != "P3" {
		t.Errorf("decodable dead letters carry their event: %v / %v", all[1].GetEvent(), all[0].GetEvent())
	}
	// Only the good event counted; the crasher was never applied.
	if got := h.funnel(reportingv1.GroupBy_GROUP_BY_UNSPECIFIED).GetTotal().GetCaptured(); got != 1 {
		t.Fatalf("captured = %d, want 1", got)
	}
	if _, err := h.client.ListDeadLetters(h.ctx, &reportingv1.ListDeadLettersRequest{PageToken: "!!"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad page token: %v", err)
	}
}

func mustMarshal(t *testing.T, e *eventsv1.LeadEvent) []byte {
	t.Helper()
	b, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTrimKeepsWhatTheGroupHasNotAcknowledged(t *testing.T) {
	h := newHarness(t)
	now := time.Now()
	c, err := consumer.New(h.rt.Redis, h.store, consumer.Options{Name: "c1", Retention: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ensure(h.ctx); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-2 * time.Hour).UnixMilli()
	// Six entries two hours old (explicit ids), then two fresh ones.
	for i := 1; i <= 6; i++ {
		e := captured("T"+string(rune('0'+i)), at(2, 9, i), "s", "c", leadv1.Channel_CHANNEL_WEB_FORM)
		if err := h.rdb.XAdd(h.ctx, &redis.XAddArgs{Stream: events.StreamKey, ID: itoa(old) + "-" + itoa(int64(i)), Values: []any{events.Field, mustMarshal(t, e)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A dead consumer holds entries 3 and 4 unacked; the live one acks 1, 2.
	if _, err := h.rdb.XReadGroup(h.ctx, &redis.XReadGroupArgs{Group: consumer.Group, Consumer: "c1", Streams: []string{events.StreamKey, ">"}, Count: 2, Block: -1}).Result(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.XAck(h.ctx, events.StreamKey, consumer.Group, itoa(old)+"-1", itoa(old)+"-2").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.rdb.XReadGroup(h.ctx, &redis.XReadGroupArgs{Group: consumer.Group, Consumer: "dead", Streams: []string{events.StreamKey, ">"}, Count: 2, Block: -1}).Result(); err != nil {
		t.Fatal(err)
	}
	minID, err := c.TrimOnce(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if minID != itoa(old)+"-3" {
		t.Fatalf("trim MINID = %q, want the oldest pending entry %s-3", minID, itoa(old))
	}
	// XTRIM ~ may keep more (whole macro nodes) but never removes 3..6.
	rest, err := h.rdb.XRange(h.ctx, events.StreamKey, itoa(old)+"-3", "+").Result()
	if err != nil || len(rest) != 4 {
		t.Fatalf("entries 3..6 after trim: %d, %v", len(rest), err)
	}
	// Once everything is acknowledged, the cut is the retention boundary.
	h.drain(c)
	live := h.consumer("live", 5*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for h.pending() > 0 && time.Now().Before(deadline) {
		if _, err := live.ClaimOnce(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	minID, err = c.TrimOnce(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing was read past the six old entries: trim up to the last one read.
	if want := itoa(old) + "-6"; minID != want {
		t.Fatalf("trim MINID with nothing pending = %q, want the last delivered entry %q", minID, want)
	}
	// A fresh entry read and acknowledged: now the retention cut applies.
	h.publish(captured("T9", at(2, 10, 0), "s", "c", leadv1.Channel_CHANNEL_WEB_FORM))
	h.drain(c)
	minID, err = c.TrimOnce(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := itoa(now.Add(-time.Hour).UnixMilli()) + "-0"; minID != want {
		t.Fatalf("trim MINID with everything read = %q, want the retention cut %q", minID, want)
	}
}

// withoutStreamIDs drops what depends on the stream ids (two Redis servers
// give the same events different ids): the meta's min_sid.
func withoutStreamIDs(d map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range d {
		if k == "meta" {
			v = v[:strings.Index(v, `"min_sid"`)]
		}
		out[k] = v
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
