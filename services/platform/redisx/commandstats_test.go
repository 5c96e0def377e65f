package redisx_test

import (
	"context"
	"testing"

	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// CommandStats counts calls per command, those inside a script too, and
// the time Redis spent in them.
func TestCommandStatsCountsCallsAndTime(t *testing.T) {
	r := platformtest.StartRedis(t)
	ctx := context.Background()
	rdb := r.Client()
	before, err := redisx.CommandStats(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		rdb.Set(ctx, "k", i, 0)
	}
	rdb.Eval(ctx, "redis.call('SET', KEYS[1], 'v') return 1", []string{"k"})
	after, err := redisx.CommandStats(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if d := after["set"].Calls - before["set"].Calls; d != 4 {
		t.Fatalf("SET calls %d, want 4 (3 + 1 inside the script)", d)
	}
	if after["eval"].Calls-before["eval"].Calls != 1 || after["set"].Usec <= before["set"].Usec {
		t.Fatalf("eval calls or SET time did not grow: %+v → %+v, %+v → %+v", before["eval"], after["eval"], before["set"], after["set"])
	}
	calls, err := redisx.CommandCalls(ctx, rdb)
	if err != nil || calls["set"] != after["set"].Calls {
		t.Fatalf("CommandCalls set = %d, want %d (%v)", calls["set"], after["set"].Calls, err)
	}
}
