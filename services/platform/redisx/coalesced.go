package redisx

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/coalesce"
)

// Coalesced sends the pipelines of concurrent callers as one: a caller's
// commands go at once while fewer than two shared pipelines are in flight,
// else they wait and go with every other caller's in the next one
// (platform/coalesce, two flights). For independent reads and writes on a
// hot path (look-ups, NX claims), where one round trip per caller would
// otherwise be the cost; their order does not matter. Not for WATCH/MULTI.
type Coalesced struct {
	rdb redis.UniversalClient
	g   *coalesce.Group[func(redis.Pipeliner), struct{}]
}

// NewCoalesced coalesces pipelines on rdb, at most max callers per round trip.
func NewCoalesced(rdb redis.UniversalClient, max int) *Coalesced {
	c := &Coalesced{rdb: rdb}
	c.g = coalesce.NewFlights(max, 2, c.run)
	return c
}

// Pipelined is rdb.Pipelined for fn's commands, sent with those of the calls
// made at the same time. Its error is the first error of fn's own commands
// other than redis.Nil (read each command's own result as usual). When ctx
// ends first it returns ctx's error at once, while fn's commands may still
// run in their batch: after an error, do not read them.
func (c *Coalesced) Pipelined(ctx context.Context, fn func(redis.Pipeliner)) error {
	_, err := c.g.Do(ctx, fn)
	return err
}

func (c *Coalesced) run(ctx context.Context, fns []func(redis.Pipeliner)) []coalesce.Result[struct{}] {
	pipe := c.rdb.Pipeline()
	bounds := make([]int, len(fns)+1)
	for i, fn := range fns {
		fn(pipe)
		bounds[i+1] = pipe.Len()
	}
	out := make([]coalesce.Result[struct{}], len(fns))
	if pipe.Len() == 0 {
		return out
	}
	cmds, _ := pipe.Exec(ctx)
	for i := range fns {
		for _, cmd := range cmds[bounds[i]:bounds[i+1]] {
			if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
				out[i].Err = err
				break
			}
		}
	}
	return out
}

// Eval runs sc with the pipelines of concurrent callers (each call is still
// atomic on its own) and returns its command, whose result and error are
// read as usual. A pipeline cannot fall back to EVAL, so an empty script
// cache (first call, or a restarted Redis) answers NOSCRIPT, which means the
// script did not run: it is loaded and the call sent again. When ctx ends
// first, the command returned carries ctx's error; the call may still run
// in its batch.
func (c *Coalesced) Eval(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	send := func() (*redis.Cmd, error) {
		var cmd *redis.Cmd
		err := c.Pipelined(ctx, func(p redis.Pipeliner) { cmd = sc.EvalSha(ctx, p, keys, args...) })
		if err != nil && ctx.Err() != nil {
			return nil, err // given up: the batch may still write cmd (see Pipelined)
		}
		return cmd, err
	}
	cmd, err := send()
	if cmd != nil && err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if lerr := sc.Load(ctx, c.rdb).Err(); lerr != nil {
			return failedCmd(ctx, lerr)
		}
		cmd, err = send()
	}
	if cmd == nil {
		return failedCmd(ctx, err)
	}
	return cmd
}

func failedCmd(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}
