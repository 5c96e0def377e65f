package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/reporting/domain"
	"github.com/leadflow/leadflow/services/reporting/store"
)

func TestApplyScript(t *testing.T) {
	r := platformtest.StartRedis(t)
	rdb := r.Client()
	st := store.New(rdb)
	ctx := context.Background()
	gen, err := st.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
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
