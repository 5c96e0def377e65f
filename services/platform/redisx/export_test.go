package redisx

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/coalesce"
)

// RunBatch runs fns as one batch, as concurrent callers' Pipelined would.
func (c *Coalesced) RunBatch(ctx context.Context, fns []func(redis.Pipeliner)) []coalesce.Result[struct{}] {
	return c.run(ctx, fns)
}
