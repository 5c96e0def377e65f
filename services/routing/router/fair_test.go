package router_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"testing"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/routing/store"
)

// Over 10,000 leads each rep's share is within 2% of its weight's share.
func TestFairnessTenThousandLeads(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 routing decisions")
	}
	e := newEnv(t)
	r1, _ := e.router()
	r2, _ := e.router()
	weights := map[string]int32{"w1": 1, "w2": 2, "w3": 3, "w4": 4}
	cfg := &routingv1.RoutingConfig{DefaultTeamId: "t"}
	team := &routingv1.Team{Id: "t"}
	for id, w := range weights {
		team.Reps = append(team.Reps, rep(id, w, 1_000_000))
	}
	cfg.Teams = []*routingv1.Team{team}
	apply(t, r1, cfg)

	const n = 10_000
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	work := make(chan int)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := r1
			if g%2 == 1 {
				r = r2
			}
			for i := range work {
				p := &leadv1.LeadProfile{LeadId: fmt.Sprintf("fair-%d", i)}
				d, _, err := r.RouteLead(context.Background(), &routingv1.RouteLeadRequest{Profile: p, Score: &leadv1.Score{Total: 50}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[d.GetRepId()]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	total := 0
	for id, w := range weights {
		total += got[id]
		want := float64(n) * float64(w) / 10
		if dev := math.Abs(float64(got[id])-want) / want; dev > 0.02 {
			t.Errorf("rep %s (weight %d) got %d leads, want %.0f ±2%% (deviation %.2f%%)", id, w, got[id], want, dev*100)
		}
	}
	if total != n {
		t.Fatalf("assigned %d leads, want %d", total, n)
	}
	t.Logf("shares: %v", got)
}

// Capacity is never exceeded with many goroutines and two routing instances
// routing and releasing at once; the load counters match the records.
func TestCapacityNeverExceededConcurrently(t *testing.T) {
	e := newEnv(t)
	r1, _ := e.router()
	r2, _ := e.router()
	cfg := &routingv1.RoutingConfig{DefaultTeamId: "t", Teams: []*routingv1.Team{{Id: "t", Reps: []*routingv1.Rep{rep("a", 1, 3), rep("b", 2, 5), rep("c", 1, 2)}}}}
	apply(t, r1, cfg)
	ctx := context.Background()
	rdb := e.redis.Client()

	capOf := map[string]int{"a": 3, "b": 5, "c": 2}
	const n = 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	var routed []string
	var violations []string
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := r1
			if g%2 == 1 {
				r = r2
			}
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := g; i < n; i += 16 {
				id := fmt.Sprintf("cap-%03d", i)
				p := &leadv1.LeadProfile{LeadId: id}
				if _, _, err := r.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: p, Score: &leadv1.Score{Total: int32(i % 100), Heat: leadv1.Heat(1 + i%3)}}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				routed = append(routed, id)
				pick := routed[rng.IntN(len(routed))]
				mu.Unlock()
				if rng.IntN(3) == 0 {
					if _, _, err := r.ReleaseLead(ctx, pick, "nurturing"); err != nil {
						t.Error(err)
						return
					}
				}
				loads, err := rdb.HGetAll(ctx, store.TeamPrefix("t")+"load").Result()
				if err != nil {
					t.Error(err)
					return
				}
				for rp, v := range loads {
					if n, err := strconv.Atoi(v); err != nil || n < 0 || n > capOf[rp] {
						mu.Lock()
						violations = append(violations, rp+"="+v)
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(violations) > 0 {
		t.Fatalf("capacity exceeded: %v", violations)
	}
	// Every record agrees with the counters; no lead is held twice.
	held := map[string]int{}
	queued := 0
	for i := range n {
		rec, err := r1.Store().Lead(ctx, "t", fmt.Sprintf("cap-%03d", i))
		if err != nil {
			t.Fatal(err)
		}
		switch rec.State {
		case "assigned", "accepted":
			held[rec.Rep]++
		case "queued":
			queued++
		}
	}
	loads, _ := r1.Store().Loads(ctx, "t")
	for _, rp := range []string{"a", "b", "c"} {
		if held[rp] != loads[rp] {
			t.Errorf("rep %s: %d leads held by records, load counter %d", rp, held[rp], loads[rp])
		}
	}
	if held["a"] > 3 || held["b"] > 5 || held["c"] > 2 {
		t.Fatalf("held %v exceeds capacity", held)
	}
	// Nobody is idle while leads wait.
	if queued > 0 && (held["a"] < 3 || held["b"] < 5 || held["c"] < 2) {
		t.Fatalf("%d leads queued while reps have free capacity: %v", queued, held)
	}
	depth, _ := r1.Store().QueueDepth(ctx, "t")
	if int(depth) != queued {
		t.Fatalf("queue depth %d, queued records %d", depth, queued)
	}
}

// The queue hands leads out hottest first, then by score, then by arrival.
func TestQueueDrainsInPriorityOrder(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	apply(t, r, &routingv1.RoutingConfig{DefaultTeamId: "t", Teams: []*routingv1.Team{{Id: "t", Reps: []*routingv1.Rep{rep("solo", 1, 1)}}}})
	ctx := context.Background()
	first := &leadv1.LeadProfile{LeadId: "holder"}
	if d := route(t, r, first, &leadv1.Score{Total: 10}); d.GetRepId() != "solo" {
		t.Fatalf("first lead: %v", d)
	}
	type q struct {
		id    string
		heat  leadv1.Heat
		score int32
	}
	in := []q{{"cold-90", leadv1.Heat_HEAT_COLD, 90}, {"hot-10", leadv1.Heat_HEAT_HOT, 10}, {"warm-50a", leadv1.Heat_HEAT_WARM, 50},
		{"hot-70", leadv1.Heat_HEAT_HOT, 70}, {"warm-50b", leadv1.Heat_HEAT_WARM, 50}, {"warm-80", leadv1.Heat_HEAT_WARM, 80}}
	for _, x := range in {
		if d := route(t, r, &leadv1.LeadProfile{LeadId: x.id}, &leadv1.Score{Total: x.score, Heat: x.heat}); d.GetOutcome() != routingv1.DecisionOutcome_DECISION_OUTCOME_QUEUED {
			t.Fatalf("%s not queued: %v", x.id, d)
		}
	}
	entries, nq, _, _, err := r.GetQueue(ctx, "t", 0, 50)
	if err != nil || nq != 6 {
		t.Fatalf("queue: %d entries, err %v", nq, err)
	}
	want := []string{"hot-70", "hot-10", "warm-80", "warm-50a", "warm-50b", "cold-90"}
	for i, w := range want {
		if entries[i].GetLeadId() != w {
			t.Fatalf("queue order %d = %s, want %s", i, entries[i].GetLeadId(), w)
		}
	}
	holder := "holder"
	var order []string
	for range want {
		ok, _, err := r.ReleaseLead(ctx, holder, "nurturing")
		if err != nil || !ok {
			t.Fatalf("release %s: %v %v", holder, ok, err)
		}
		ids, _ := r.Store().RepLeads(ctx, "t", "solo", 0, 10)
		if len(ids) != 1 {
			t.Fatalf("solo holds %v after release", ids)
		}
		holder = ids[0]
		order = append(order, holder)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("drain order %v, want %v", order, want)
		}
	}
	// The hand-out was recorded as a decision.
	ds, _, err := r.Decisions(ctx, "hot-70", 0, 10)
	if err != nil || len(ds) != 2 || ds[0].GetKind() != routingv1.DecisionKind_DECISION_KIND_QUEUE_HANDOUT {
		t.Fatalf("decisions of hot-70: %v %v", ds, err)
	}
}

// Rejected leads never go back to a rep who rejected them, also when the
// lead is handed out of the queue later.
func TestRejectedLeadsNeverReturn(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router()
	apply(t, r, &routingv1.RoutingConfig{DefaultTeamId: "t", Teams: []*routingv1.Team{{Id: "t", Reps: []*routingv1.Rep{rep("a", 1, 50), rep("b", 1, 50), rep("c", 1, 50)}}}})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	rejected := map[string]map[string]bool{}
	for i := range 60 {
		id := fmt.Sprintf("rej-%02d", i)
		d := route(t, r, &leadv1.LeadProfile{LeadId: id}, &leadv1.Score{Total: 40})
		rejected[id] = map[string]bool{}
		holder := d.GetRepId()
		for holder != "" && rng.IntN(2) == 0 {
			rejected[id][holder] = true
			d, err := r.RejectLead(ctx, id, holder, "not my territory")
			if err != nil {
				t.Fatal(err)
			}
			if rejected[id][d.GetRepId()] {
				t.Fatalf("lead %s went back to %s who rejected it", id, d.GetRepId())
			}
			holder = d.GetRepId()
			if len(rejected[id]) == 3 && d.GetOutcome() != routingv1.DecisionOutcome_DECISION_OUTCOME_QUEUED {
				t.Fatalf("lead %s rejected by everyone but not queued: %v", id, d)
			}
		}
	}
	// A holder rejecting twice is refused.
	for id, reps := range rejected {
		for rp := range reps {
			if _, err := r.RejectLead(ctx, id, rp, "again"); err == nil {
				t.Fatalf("second reject of %s by %s accepted", id, rp)
			}
			break
		}
	}
	// Free everything and drain: queued leads go only to reps who did not reject them.
	for id := range rejected {
		rec, _ := r.Store().Lead(ctx, "t", id)
		if rec.State == "assigned" {
			if _, _, err := r.ReleaseLead(ctx, id, "nurturing"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := r.Drain(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	for id, reps := range rejected {
		rec, err := r.Store().Lead(ctx, "t", id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Rep != "" && reps[rec.Rep] {
			t.Fatalf("lead %s is back with %s who rejected it", id, rec.Rep)
		}
		sort.Strings(rec.Excluded)
		if len(rec.Excluded) != len(reps) {
			t.Fatalf("lead %s excluded %v, rejected by %v", id, rec.Excluded, reps)
		}
	}
	// Accepting is refused for a rep who does not hold the lead.
	if _, err := r.AcceptLead(ctx, "rej-00", "nobody"); err == nil || errors.Is(err, context.Canceled) {
		t.Fatal("accept by a non-holder succeeded")
	}
}
