package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// routeOps is a sequence of route calls to one team that covers every
// answer of the script's route op: plain picks by weight, a preferred rep,
// a strict preference that cannot be met (NOPREF), a forced rep, a lead
// routed twice (EXISTING), an SLA policy, and leads queued once every rep
// is full.
func routeOps(team string) []Op {
	cands := []Cand{{ID: "a", W: 1, Cap: 3}, {ID: "b", W: 2, Cap: 4}, {ID: "c", W: 3, Cap: 2}}
	var ops []Op
	add := func(lead string, f func(*Op)) {
		op := Op{Op: "route", Team: team, Lead: lead, Now: 1_000 + int64(len(ops)), Ver: 1, Cands: cands,
			Dec: fmt.Sprintf("dec-%d", len(ops)), TP: "tp-" + lead, Heat: len(ops) % 4, Score: 10 * len(ops), Reasons: "[]", Org: "org-1"}
		if f != nil {
			f(&op)
		}
		ops = append(ops, op)
	}
	add("l1", nil)
	add("l2", nil)
	add("l3", func(o *Op) { o.Pref = "c" })
	add("l1", nil) // EXISTING
	add("l4", func(o *Op) { o.Pol = "p"; o.FTW = 60_000; o.TW = 120_000; o.TReq = 2 })
	add("l5", func(o *Op) { o.Pref = "a"; o.Force = true })
	for i := 6; i <= 12; i++ {
		add(fmt.Sprintf("l%d", i), nil)
	}
	add("l13", func(o *Op) { o.Pref = "b"; o.Strict = true }) // every rep is full: NOPREF
	add("l14", func(o *Op) { o.Req = "req-14" })
	return ops
}

// A batch of route calls ("routes") answers each call and leaves Redis
// exactly as the same calls made one by one do.
func TestRoutesBatchEqualsRoutesOneByOne(t *testing.T) {
	red := platformtest.StartRedis(t)
	rdb := red.Client()
	s := New(rdb)
	ctx := context.Background()

	var want []*Result
	for _, op := range routeOps("one") {
		res, err := s.run(ctx, op, []byte("p-"+op.Lead), []byte("s-"+op.Lead))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res)
	}
	var calls []routeCall
	for _, op := range routeOps("many") {
		calls = append(calls, routeCall{op: op, profile: []byte("p-" + op.Lead), score: []byte("s-" + op.Lead)})
	}
	got := s.runRoutes(ctx, calls)
	sts := map[string]int{}
	for i := range want {
		if got[i].Err != nil {
			t.Fatalf("call %d: %v", i, got[i].Err)
		}
		if !reflect.DeepEqual(got[i].Val, want[i]) {
			t.Errorf("call %d (%s): batch answered %+v, one by one %+v", i, calls[i].op.Lead, got[i].Val, want[i])
		}
		sts[want[i].St]++
	}
	if sts["ASSIGNED"] == 0 || sts["QUEUED"] == 0 || sts["EXISTING"] != 1 || sts["NOPREF"] != 1 {
		t.Fatalf("the calls do not cover every answer: %v", sts)
	}
	if got[5].Val.Rep != "a" || got[2].Val.Rep != "c" {
		t.Fatalf("preferred or forced rep not honoured: %+v, %+v", got[2].Val, got[5].Val)
	}

	// Redis holds the same state under both teams.
	for _, k := range []string{"load", "swrr", "queue", "lead:l1", "lead:l4", "lead:l5", "lead:l12", "lead:l14"} {
		a, b := dump(t, rdb, TeamPrefix("one")+k), dump(t, rdb, TeamPrefix("many")+k)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: one by one %v, batch %v", k, a, b)
		}
	}
	for _, rep := range []string{"a", "b", "c"} {
		a, _ := rdb.XLen(ctx, TeamPrefix("one")+"inbox:"+rep).Result()
		b, _ := rdb.XLen(ctx, TeamPrefix("many")+"inbox:"+rep).Result()
		if a != b || a == 0 {
			t.Errorf("inbox of %s: %d items one by one, %d in the batch", rep, a, b)
		}
	}
}

// A batch whose configuration version is older than the team's answers
// STALE to every call and writes nothing; calls to two teams go as two
// batches in one round.
func TestRoutesBatchStaleAndTwoTeams(t *testing.T) {
	red := platformtest.StartRedis(t)
	rdb := red.Client()
	s := New(rdb)
	ctx := context.Background()
	if err := rdb.Set(ctx, TeamPrefix("old")+"cfgver", 2, 0).Err(); err != nil {
		t.Fatal(err)
	}
	var calls []routeCall
	for i, op := range routeOps("old")[:3] {
		calls = append(calls, routeCall{op: op})
		other := routeOps("new")[i]
		calls = append(calls, routeCall{op: other})
	}
	got := s.runRoutes(ctx, calls)
	for i, r := range got {
		if r.Err != nil {
			t.Fatalf("call %d: %v", i, r.Err)
		}
		team, st := calls[i].op.Team, r.Val.St
		if team == "old" && (st != "STALE" || r.Val.Ver != 2) {
			t.Errorf("call %d to the stale team answered %+v, want STALE at version 2", i, r.Val)
		}
		if team == "new" && st != "ASSIGNED" {
			t.Errorf("call %d to the other team answered %+v, want ASSIGNED", i, r.Val)
		}
	}
	if n, _ := rdb.Exists(ctx, TeamPrefix("old")+"lead:l1", TeamPrefix("old")+"load").Result(); n != 0 {
		t.Fatalf("a stale batch wrote %d keys", n)
	}
}

func dump(t *testing.T, rdb *redis.Client, key string) any {
	t.Helper()
	ctx := context.Background()
	typ, err := rdb.Type(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	switch typ {
	case "hash":
		m := rdb.HGetAll(ctx, key).Val()
		delete(m, "team") // a lead's record names its team
		return m
	case "zset":
		return rdb.ZRangeWithScores(ctx, key, 0, -1).Val()
	case "none":
		return nil
	}
	t.Fatalf("%s is a %s", key, typ)
	return nil
}
