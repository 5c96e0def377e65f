package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/reporting/domain"
	"github.com/leadflow/leadflow/services/reporting/store"
)

// t0 is the capture time of the tests' events.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// newStore is a store on a fresh redis-server, its client and its serving
// generation.
func newStore(t *testing.T) (*store.Store, *redis.Client, int64) {
	t.Helper()
	rdb := platformtest.StartRedis(t).Client()
	st := store.New(rdb)
	gen, err := st.Generation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st, rdb, gen
}

func TestApplyScript(t *testing.T) {
	st, rdb, gen := newStore(t)
	ctx := context.Background()
	capture := func(id string, at time.Time, src string) store.Event {
		return store.Event{ID: id, LeadID: "L", Raw: []byte("raw-" + id), StreamID: "5-1", Ops: []domain.Op{
			{Kind: domain.OpMin, Group: domain.GroupCaptured, Key: domain.EventKey(at, id), Fields: []string{"src", src}},
			{Kind: domain.OpIncr, Group: domain.CounterTouches, Delta: 2},
		}}
	}
	res, err := st.Apply(ctx, gen, true, []store.Event{capture("b", t0.Add(time.Minute), "late"), capture("b", t0, "dup"), capture("a", t0, "early")})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Result{
		{Status: store.Applied, FirstGroups: []string{"cap"}},
		{Status: store.Duplicate},
		{Status: store.Applied}, // replaced an earlier-set group: not a first
	}
	if d := cmp.Diff(want, res); d != "" {
		t.Fatalf("results (-want +got):\n%s", d)
	}
	f, err := st.Fact(ctx, "L")
	if err != nil {
		t.Fatal(err)
	}
	if f.Source != "early" || !f.CapturedAt.Equal(t0) || f.Touches != 4 {
		t.Fatalf("fact = %+v", f)
	}
	facts, err := st.CohortFacts(ctx, t0, t0.Add(time.Millisecond))
	if err != nil || len(facts) != 1 || facts[0].LeadID != "L" {
		t.Fatalf("cohort [t0, t0+1ms) = %v, %v", facts, err)
	}
	if facts, _ := st.CohortFacts(ctx, t0.Add(time.Millisecond), t0.Add(time.Hour)); len(facts) != 0 {
		t.Fatalf("cohort after t0 = %v", facts)
	}
	meta, err := st.Meta(ctx, gen)
	if err != nil || meta.Events != 2 || meta.Leads != 1 || meta.MinStreamID != "5-1" {
		t.Fatalf("meta = %+v, %v", meta, err)
	}

	// After a swap the old generation refuses checked applies.
	next, err := st.NewGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if old, err := st.Swap(ctx, next); err != nil || old != gen {
		t.Fatalf("swap = %d, %v", old, err)
	}
	res, err = st.Apply(ctx, gen, true, []store.Event{capture("c", t0, "x")})
	if err != nil || !errors.Is(res[0].Err, store.ErrStaleGeneration) {
		t.Fatalf("apply to a stale generation = %+v, %v", res, err)
	}
	if _, err := st.Journey(ctx, "L"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("journey in the new, empty generation: %v", err)
	}
	if err := st.DropGeneration(ctx, gen); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Keys(ctx, store.GenPrefix(gen)+"*").Result(); len(n) != 0 {
		t.Fatalf("left after drop: %v", n)
	}

	// Only one rebuild at a time.
	release, err := st.Lock(ctx, "one", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock(ctx, "two", time.Minute); !errors.Is(err, store.ErrRebuildRunning) {
		t.Fatalf("second lock: %v", err)
	}
	release(ctx)
	if _, err := st.Lock(ctx, "two", time.Minute); err != nil {
		t.Fatalf("lock after release: %v", err)
	}
}

// A batch longer than one script call's chunk, with duplicates across the
// chunks, gives each event the answer it would get alone, and the
// generation's meta counts the applied events and their smallest stream id.
func TestApplyBatchAcrossChunks(t *testing.T) {
	st, _, gen := newStore(t)
	ctx := context.Background()
	touch := func(id, lead, sid string) store.Event {
		return store.Event{ID: id, LeadID: lead, Raw: []byte("raw-" + id), StreamID: sid, Ops: []domain.Op{
			{Kind: domain.OpMin, Group: domain.GroupCaptured, Key: domain.EventKey(t0, lead), Fields: []string{"src", "web"}},
			{Kind: domain.OpIncr, Group: domain.CounterTouches, Delta: 1},
		}}
	}
	var evs []store.Event
	var want []store.Result
	for i := range 45 {
		lead := fmt.Sprintf("L%d", i%3)
		evs = append(evs, touch(fmt.Sprintf("e%d", i), lead, fmt.Sprintf("%d-0", 100+i)))
		if i < 3 {
			want = append(want, store.Result{Status: store.Applied, FirstGroups: []string{"cap"}})
		} else {
			want = append(want, store.Result{Status: store.Applied})
		}
		if i%10 == 9 { // the event of 5 entries before, again, with a smaller stream id
			evs = append(evs, touch(fmt.Sprintf("e%d", i-5), fmt.Sprintf("L%d", (i-5)%3), "7-0"))
			want = append(want, store.Result{Status: store.Duplicate})
		}
	}
	res, err := st.Apply(ctx, gen, true, evs)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, res); d != "" {
		t.Fatalf("results (-want +got):\n%s", d)
	}
	for i := range 3 {
		if f, err := st.Fact(ctx, fmt.Sprintf("L%d", i)); err != nil || f.Touches != 15 {
			t.Fatalf("L%d: touches = %d, %v; want 15", i, f.Touches, err)
		}
	}
	meta, err := st.Meta(ctx, gen)
	if err != nil || meta.Events != 45 || meta.Leads != 3 || meta.MinStreamID != "100-0" {
		t.Fatalf("meta = %+v, %v; want 45 events, 3 leads, min stream id 100-0", meta, err)
	}

	// A later batch with a smaller stream id lowers it; a larger one does not.
	if _, err := st.Apply(ctx, gen, true, []store.Event{touch("x1", "L0", "99-5"), touch("x2", "L0", "120-0")}); err != nil {
		t.Fatal(err)
	}
	if meta, _ := st.Meta(ctx, gen); meta.MinStreamID != "99-5" || meta.Events != 47 {
		t.Fatalf("meta after a second batch = %+v", meta)
	}

	// In a chunk in stream order the first event applied has the smallest
	// id; a duplicate before it (not applied now) does not count.
	if _, err := st.Apply(ctx, gen, true, []store.Event{touch("x1", "L0", "50-0"), touch("x3", "L0", "130-0")}); err != nil {
		t.Fatal(err)
	}
	if meta, _ := st.Meta(ctx, gen); meta.MinStreamID != "99-5" || meta.Events != 48 {
		t.Fatalf("meta after an ordered chunk led by a duplicate = %+v, want min stream id 99-5, 48 events", meta)
	}
	// Out of order, the smallest applied id is found wherever it is.
	if _, err := st.Apply(ctx, gen, true, []store.Event{touch("x4", "L1", "140-0"), touch("x5", "L1", "98-7"), touch("x6", "L1", "98-10")}); err != nil {
		t.Fatal(err)
	}
	if meta, _ := st.Meta(ctx, gen); meta.MinStreamID != "98-7" || meta.Events != 51 {
		t.Fatalf("meta after an unordered chunk = %+v, want min stream id 98-7, 51 events", meta)
	}
}

// An event the script cannot apply fails alone: the others of its chunk
// are applied once (their counters prove it), before and after it.
func TestApplyIsolatesAFailingEvent(t *testing.T) {
	st, _, gen := newStore(t)
	ctx := context.Background()
	incr := func(id, lead, field string) store.Event {
		return store.Event{ID: id, LeadID: lead, Raw: []byte("raw-" + id), Ops: []domain.Op{{Kind: domain.OpIncr, Group: field, Delta: 1}}}
	}
	// "cap" holds an event key, not a number: incrementing it is an error
	// reply from inside the script.
	capture := store.Event{ID: "c", LeadID: "B", Raw: []byte("raw-c"), Ops: []domain.Op{
		{Kind: domain.OpMin, Group: domain.GroupCaptured, Key: domain.EventKey(t0, "c")},
	}}
	evs := []store.Event{capture, incr("a1", "A", domain.CounterTouches), incr("bad", "B", domain.GroupCaptured), incr("a2", "A", domain.CounterTouches)}
	res, err := st.Apply(ctx, gen, true, evs)
	if err != nil {
		t.Fatal(err)
	}
	if res[2].Err == nil || !strings.Contains(res[2].Err.Error(), "not an integer") {
		t.Fatalf("the bad event's result = %+v; want its error reply", res[2])
	}
	for _, i := range []int{0, 1, 3} {
		if res[i].Err != nil {
			t.Fatalf("event %d failed with the bad one: %+v", i, res[i])
		}
	}
	if f, err := st.Fact(ctx, "A"); err != nil || f.Touches != 2 {
		t.Fatalf("A: touches = %d, %v; want 2 (each event once)", f.Touches, err)
	}
	if meta, _ := st.Meta(ctx, gen); meta.Events != 3 {
		t.Fatalf("meta events = %d; want 3", meta.Events)
	}
	// Its idempotency record is gone: a redelivery fails again (and is
	// dead-lettered in time) instead of passing as a duplicate.
	res, err = st.Apply(ctx, gen, true, evs[2:3])
	if err != nil || res[0].Err == nil {
		t.Fatalf("redelivered bad event = %+v, %v; want its error again", res, err)
	}
}
