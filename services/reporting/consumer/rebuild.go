package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/reporting/domain"
	"github.com/leadflow/leadflow/services/reporting/store"
)

// ErrTrimmed means the stream no longer holds events the serving aggregates
// were built from: a rebuild would lose them.
var ErrTrimmed = errors.New("the event stream was trimmed past events the current aggregates hold")

// RebuildResult reports a rebuild.
type RebuildResult struct {
	Generation      int64
	EntriesReplayed int64
	EventsApplied   int64
	Leads           int64
}

// replayBatch is how many entries a replay reads and applies at once.
const replayBatch = 500

// Rebuild replays the whole stream into a fresh generation, swaps it in
// atomically and drops the old one. Events arriving meanwhile are applied by
// the live consumer to the old generation until the swap and to the new one
// after it; the rebuild replays up to the stream's end before the swap and
// once more after it, and the apply is idempotent by event id, so nothing is
// lost or counted twice.
func Rebuild(ctx context.Context, rdb redis.UniversalClient, st *store.Store, allowPartial bool) (RebuildResult, error) {
	var res RebuildResult
	unlock, err := st.Lock(ctx, uuid.NewString(), 10*time.Minute)
	if err != nil {
		return res, err
	}
	defer unlock(context.WithoutCancel(ctx))

	old, err := st.Generation(ctx)
	if err != nil {
		return res, err
	}
	if !allowPartial {
		meta, err := st.Meta(ctx, old)
		if err != nil {
			return res, err
		}
		first, err := rdb.XRangeN(ctx, events.StreamKey, "-", "+", 1).Result()
		if err != nil {
			return res, err
		}
		if meta.MinStreamID != "" && (len(first) == 0 || store.LessStreamID(meta.MinStreamID, first[0].ID)) {
			return res, ErrTrimmed
		}
	}
	gen, err := st.NewGeneration(ctx)
	if err != nil {
		return res, err
	}
	res.Generation = gen
	abandon := func(err error) (RebuildResult, error) {
		_ = st.DropGeneration(context.WithoutCancel(ctx), gen)
		return RebuildResult{}, err
	}
	last, err := replay(ctx, rdb, st, gen, false, "-", &res)
	if err != nil {
		return abandon(err)
	}
	if _, err := st.Swap(ctx, gen); err != nil {
		return abandon(err)
	}
	// Entries added between the last replayed read and the swap.
	if _, err := replay(ctx, rdb, st, gen, false, last, &res); err != nil {
		return res, fmt.Errorf("catch up after swap: %w", err)
	}
	if err := st.DropGeneration(ctx, old); err != nil {
		return res, fmt.Errorf("drop generation %d: %w", old, err)
	}
	meta, err := st.Meta(ctx, gen)
	if err != nil {
		return res, err
	}
	res.Leads = meta.Leads
	return res, nil
}

// replay applies the stream after id start ("-" for all) to gen and returns
// the last id read.
func replay(ctx context.Context, rdb redis.UniversalClient, st *store.Store, gen int64, check bool, start string, res *RebuildResult) (string, error) {
	last := start
	for {
		from := "-"
		if last != "-" {
			from = "(" + last
		}
		msgs, err := rdb.XRangeN(ctx, events.StreamKey, from, "+", replayBatch).Result()
		if err != nil {
			return last, err
		}
		if len(msgs) == 0 {
			return last, nil
		}
		batch := make([]store.Event, 0, len(msgs))
		for _, m := range msgs {
			res.EntriesReplayed++
			ev, err := events.Decode(m.Values)
			if err != nil {
				continue // poison: dead-lettered by the live consumer
			}
			ops, err := domain.Ops(ev)
			if err != nil {
				continue
			}
			batch = append(batch, store.Event{ID: ev.GetId(), LeadID: ev.GetLeadId(), Raw: rawOf(m.Values), StreamID: m.ID, Ops: ops})
		}
		results, err := st.Apply(ctx, gen, check, batch)
		if err != nil {
			return last, err
		}
		for i, r := range results {
			if r.Err != nil {
				return last, fmt.Errorf("apply %s: %w", batch[i].ID, r.Err)
			}
			if r.Status == store.Applied {
				res.EventsApplied++
			}
		}
		last = msgs[len(msgs)-1].ID
	}
}
