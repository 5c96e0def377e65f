package redisx_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// A transactional batch is one MULTI/EXEC for all its callers; each caller
// gets its own commands' results and errors (a wrong type fails that
// command alone, as in any MULTI), and every other write applies.
func TestCoalescedTxBatchIsOneMultiExec(t *testing.T) {
	rdb := platformtest.StartRedis(t).Client()
	ctx := context.Background()
	if err := rdb.HSet(ctx, "a-hash", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	c := redisx.NewCoalescedTx(rdb, 16)
	const n = 6
	incrs := make([]*redis.IntCmd, n)
	fns := make([]func(redis.Pipeliner), n)
	for i := range n {
		fns[i] = func(p redis.Pipeliner) {
			p.Set(ctx, fmt.Sprintf("tx%d", i), i, 0)
			key := "counter"
			if i == 2 {
				key = "a-hash" // INCR of a hash: WRONGTYPE
			}
			incrs[i] = p.Incr(ctx, key)
		}
	}
	before, err := redisx.CommandStats(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	res := c.RunBatch(ctx, fns)
	after, err := redisx.CommandStats(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if m, e := after["multi"].Calls-before["multi"].Calls, after["exec"].Calls-before["exec"].Calls; m != 1 || e != 1 {
		t.Fatalf("%d callers sent %d MULTI and %d EXEC, want one each", n, m, e)
	}
	var seen []int64
	for i := range n {
		if i == 2 {
			if res[i].Err == nil || !strings.Contains(res[i].Err.Error(), "WRONGTYPE") {
				t.Errorf("caller 2: %v, want its WRONGTYPE", res[i].Err)
			}
			continue
		}
		if res[i].Err != nil {
			t.Errorf("caller %d: %v", i, res[i].Err)
		}
		seen = append(seen, incrs[i].Val())
		if v, _ := rdb.Get(ctx, fmt.Sprintf("tx%d", i)).Int(); v != i {
			t.Errorf("caller %d's write: %d", i, v)
		}
	}
	// The callers' commands ran in their order, in one transaction.
	for j, v := range seen {
		if v != int64(j+1) {
			t.Fatalf("INCR answers %v, want 1..%d in the callers' order", seen, n-1)
		}
	}
}
