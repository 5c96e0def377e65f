package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// Concurrent callers each get their own commands' results; one caller's
// failing command (a wrong type) is its error only.
func TestCoalescedPipelinesKeepEachCallersResults(t *testing.T) {
	r := platformtest.StartRedis(t)
	rdb := r.Client()
	ctx := context.Background()
	if err := rdb.HSet(ctx, "a-hash", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	const n = 50
	// Each caller reads a value of its own, so results handed to the wrong
	// caller show.
	for i := range n {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprint("v", i), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c := redisx.NewCoalesced(rdb, 16)
	var wg sync.WaitGroup
	errs := make([]error, n)
	got := make([]string, n)
	for i := range n {
		wg.Go(func() {
			var set *redis.StatusCmd
			var get *redis.StringCmd
			errs[i] = c.Pipelined(ctx, func(p redis.Pipeliner) {
				key := fmt.Sprintf("k%d", i)
				if i == 7 {
					key = "a-hash" // GET of a hash: WRONGTYPE
				}
				set = p.SetArgs(ctx, fmt.Sprintf("nx%d", i), i, redis.SetArgs{Mode: "NX", Get: true})
				get = p.Get(ctx, key)
			})
			if set.Err() != redis.Nil {
				errs[i] = fmt.Errorf("NX set of a new key: %v", set.Err())
			}
			got[i] = get.Val()
		})
	}
	wg.Wait()
	for i := range n {
		switch {
		case i == 7 && (errs[i] == nil || !strings.Contains(errs[i].Error(), "WRONGTYPE")):
			t.Errorf("caller 7: %v, want its WRONGTYPE", errs[i])
		case i != 7 && errs[i] != nil:
			t.Errorf("caller %d: %v", i, errs[i])
		case i != 7 && got[i] != fmt.Sprint("v", i):
			t.Errorf("caller %d read %q, want its own v%d", i, got[i], i)
		}
		if v, _ := rdb.Get(ctx, fmt.Sprintf("nx%d", i)).Result(); v != fmt.Sprint(i) {
			t.Errorf("caller %d's write: %q", i, v)
		}
	}
}

// Eval answers concurrent callers from one script in the shared pipeline:
// on an empty script cache (a fresh or restarted Redis) it loads the script
// and sends the calls again, and a script's error is its caller's alone.
func TestCoalescedEvalLoadsTheScriptWhenTheCacheIsEmpty(t *testing.T) {
	r := platformtest.StartRedis(t)
	rdb := r.Client()
	ctx := context.Background()
	c := redisx.NewCoalesced(rdb, 16)
	incr := redis.NewScript(`if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
return redis.call('INCRBY', KEYS[1], ARGV[1])`)
	for round := range 2 {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range 20 {
			wg.Go(func() {
				arg := "1"
				if i == 3 {
					arg = "fail"
				}
				errs[i] = c.Eval(ctx, incr, []string{"n"}, arg).Err()
			})
		}
		wg.Wait()
		for i, err := range errs {
			if (i == 3) != (err != nil) || (i == 3 && !strings.Contains(err.Error(), "asked to fail")) {
				t.Fatalf("round %d, call %d: %v", round, i, err)
			}
		}
		if n, err := rdb.Get(ctx, "n").Int(); err != nil || n != 19*(round+1) {
			t.Fatalf("round %d: n = %d, %v; want each call once", round, n, err)
		}
	}
}

// A caller whose ctx ends while its script is still in flight gets ctx's
// error, not the command the batch has yet to fill in (run with -race: the
// batch writes that command later).
func TestCoalescedEvalGivenUpCarriesTheContextError(t *testing.T) {
	r := platformtest.StartRedis(t)
	rdb := r.Client()
	c := redisx.NewCoalesced(rdb, 16)
	busy := redis.NewScript(`local i = 0 while i < 3e7 do i = i + 1 end return i`)
	if err := busy.Load(context.Background(), rdb).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *redis.Cmd)
	go func() { done <- c.Eval(ctx, busy, nil) }()
	// An idle call goes at once, so the script is (almost always) running
	// by now; cancelled earlier, the answer must be the same.
	time.Sleep(100 * time.Millisecond)
	cancel()
	cmd := <-done
	if !errors.Is(cmd.Err(), context.Canceled) {
		t.Fatalf("given-up Eval = %v, %v; want context.Canceled", cmd.Val(), cmd.Err())
	}
}
