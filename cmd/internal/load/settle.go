package load

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/events"
)

// Settle waits until the suite is idle: every consumer group of the event
// stream has read everything and acknowledged it, and no platform/jobs
// queue has a job due. It returns how long that took, or an error after d.
func Settle(ctx context.Context, rdb *redis.Client, d time.Duration) (time.Duration, error) {
	t0 := time.Now()
	deadline := t0.Add(d)
	for {
		busy, err := busy(ctx, rdb)
		if err != nil {
			return 0, err
		}
		if busy == "" {
			return time.Since(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the suite did not settle within %s: %s", d, busy)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(settlePoll):
		}
	}
}

// busy says what the suite still has to do ("" when idle). It reads a few
// keys only, so it is cheap on a store of millions of keys.
func busy(ctx context.Context, rdb *redis.Client) (string, error) {
	groups, err := eventGroups(ctx, rdb)
	if err != nil {
		return "", err
	}
	for _, g := range groups {
		if g.Pending > 0 || g.Lag > 0 {
			return fmt.Sprintf("event stream group %s: %d pending, %d not read", g.Name, g.Pending, g.Lag), nil
		}
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	pipe := rdb.Pipeline()
	counts := make([]*redis.IntCmd, len(JobQueues))
	for i, q := range JobQueues {
		counts[i] = pipe.ZCount(ctx, "lf:{jobs:"+q+"}:due", "-inf", now)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return "", err
	}
	for i, c := range counts {
		if c.Val() > 0 {
			return fmt.Sprintf("queue %s: %d jobs due", JobQueues[i], c.Val()), nil
		}
	}
	return "", nil
}

// JobQueues are the suite's platform/jobs queues (their default names).
var JobQueues = []string{"capture-to-scoring", "scoring-routing", "scoring-pipeline", "routing-sla", "routing-scoring", "pipeline-recycle", "pipeline-renewal"}

// settlePoll is how often Settle looks: a few cheap reads, often enough to
// time a catch-up of a second or two.
const settlePoll = 50 * time.Millisecond

// eventGroups are the event stream's consumer groups (none before the
// stream exists).
func eventGroups(ctx context.Context, rdb *redis.Client) ([]redis.XInfoGroup, error) {
	groups, err := rdb.XInfoGroups(ctx, events.StreamKey).Result()
	if err != nil && strings.Contains(err.Error(), "no such key") {
		return nil, nil
	}
	return groups, err
}

// EventsBehind is how many events the event stream's consumer groups
// (reporting) have not applied yet: not read, or read and not acknowledged.
func EventsBehind(ctx context.Context, rdb *redis.Client) (int64, error) {
	groups, err := eventGroups(ctx, rdb)
	var n int64
	for _, g := range groups {
		n += g.Pending + max(g.Lag, 0)
	}
	return n, err
}
