// Package store is the Redis adapter of the pipeline domain (domain.Store).
//
// Keys (every key a script or transaction touches together shares a hash tag,
// so the same code runs on Redis Cluster):
//
//	lf:pipeline:{pipelines}:p:<id>        STRING  pipeline (JSON)
//	lf:pipeline:{pipelines}:ids           ZSET    pipeline ids (lex order)
//	lf:pipeline:{deal:<id>}               STRING  deal (JSON) with its stage history
//	lf:pipeline:{deal:<id>}:acts          HASH    activity id → activity (JSON)
//	lf:pipeline:{deal:<id>}:actidx        ZSET    activity ids (lex = time order)
//	lf:pipeline:{deal:<id>}:actreq        HASH    LogActivity request_id → activity id
//	lf:pipeline:{deal:<id>}:quotes        HASH    quote id → quote (JSON)
//	lf:pipeline:{lead:<id>}:open:<pipe>   STRING  the lead's open deal in a pipeline
//	lf:pipeline:{req:<scope>:<request>}   STRING  deal id of an idempotent create (7 days)
//	lf:pipeline:{idx}:all|pipeline:<p>|stage:<s>|owner:<o>|close:<YYYY-MM>
//	                                      ZSET    deal ids (lex = creation order)
//
// The indexes live in another slot than the deal, so on a Cluster they cannot
// change in the deal's write. They are kept as supersets: a deal is added to
// its new index entries before the deal is written and removed from stale ones
// after, and every read re-checks the filter against the deal itself. A crash
// leaves at most a stale entry, never a missing one. On a single Redis the
// entries change in the deal's write itself (one round trip).
package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	json "github.com/segmentio/encoding/json"

	"github.com/leadflow/leadflow/services/pipeline/domain"
)

const (
	prefix        = "lf:pipeline:"
	pipelinesIDs  = prefix + "{pipelines}:ids"
	idxPrefix     = prefix + "{idx}:"
	maxTxAttempts = 16
	scanBatch     = 100
	maxScan       = 5000
)

func pipelineKey(id string) string { return prefix + "{pipelines}:p:" + id }
func dealKey(id string) string     { return prefix + "{deal:" + id + "}" }
func actsKey(id string) string     { return dealKey(id) + ":acts" }
func actIdxKey(id string) string   { return dealKey(id) + ":actidx" }
func actReqKey(id string) string   { return dealKey(id) + ":actreq" }
func quotesKey(id string) string   { return dealKey(id) + ":quotes" }

// SlotKey is the key that holds a lead's open deal in a pipeline.
func SlotKey(leadID, pipelineID string) string {
	return prefix + "{lead:" + leadID + "}:open:" + pipelineID
}

// Store implements domain.Store on Redis.
type Store struct {
	rdb redis.UniversalClient
	// single is a non-Cluster Redis: a deal's index entries then change in
	// the same round trip as the deal (no slot rule), not in their own.
	single bool
}

var _ domain.Store = (*Store)(nil)

// New returns a store on rdb.
func New(rdb redis.UniversalClient) *Store {
	_, cluster := rdb.(*redis.ClusterClient)
	return &Store{rdb: rdb, single: !cluster}
}

// ---- pipelines

// EnsurePipeline implements domain.Store.
func (s *Store) EnsurePipeline(ctx context.Context, p domain.Pipeline) error {
	_, err := s.putPipelineNX(ctx, p)
	return err
}

// CreatePipeline implements domain.Store.
func (s *Store) CreatePipeline(ctx context.Context, p domain.Pipeline) error {
	ok, err := s.putPipelineNX(ctx, p)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: pipeline %q", domain.ErrAlreadyExists, p.ID)
	}
	return nil
}

var putNXScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  return 1
end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 0`)

func (s *Store) putPipelineNX(ctx context.Context, p domain.Pipeline) (bool, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return false, err
	}
	n, err := putNXScript.Run(ctx, s.rdb, []string{pipelineKey(p.ID), pipelinesIDs}, b, p.ID).Int()
	return n == 1, err
}

// GetPipeline implements domain.Store.
func (s *Store) GetPipeline(ctx context.Context, id string) (domain.Pipeline, error) {
	var p domain.Pipeline
	err := getJSON(ctx, s.rdb, pipelineKey(id), &p, "pipeline "+id)
	return p, err
}

// ListPipelines implements domain.Store: the default pipeline first, then
// the others by id (time-ordered).
func (s *Store) ListPipelines(ctx context.Context, pageToken string, limit int) ([]domain.Pipeline, string, error) {
	after, err := decodeToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	var out []domain.Pipeline
	if after == "" {
		p, err := s.GetPipeline(ctx, domain.DefaultPipelineID)
		if err == nil {
			out = append(out, p)
		} else if !errors.Is(err, domain.ErrNotFound) {
			return nil, "", err
		}
	}
	min := "-"
	if after != "" && after != afterDefault {
		min = "(" + after
	}
	ids, err := s.rdb.ZRangeByLex(ctx, pipelinesIDs, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit + 2)}).Result()
	if err != nil {
		return nil, "", err
	}
	last := after
	if last == "" {
		last = afterDefault
	}
	for _, id := range ids {
		if id == domain.DefaultPipelineID {
			continue
		}
		if len(out) == limit {
			return out, encodeToken(last), nil
		}
		p, err := s.GetPipeline(ctx, id)
		if errors.Is(err, domain.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, p)
		last = id
	}
	return out, "", nil
}

// afterDefault is the page position right after the default pipeline (the
// first page held only it); pipeline ids are UUIDs, never "~".
const afterDefault = "~"

// UpdatePipeline implements domain.Store.
func (s *Store) UpdatePipeline(ctx context.Context, id string, fn func(*domain.Pipeline) error) (domain.Pipeline, error) {
	key := pipelineKey(id)
	var out domain.Pipeline
	err := s.watch(ctx, func(tx *redis.Tx) error {
		var p domain.Pipeline
		if err := getJSON(ctx, tx, key, &p, "pipeline "+id); err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pl redis.Pipeliner) error {
			pl.Set(ctx, key, b, 0)
			return nil
		})
		out = p
		return err
	}, key)
	return out, err
}

// ---- open-deal slot

var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return v`)

var swapScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// ClaimOpenSlot implements domain.Store.
func (s *Store) ClaimOpenSlot(ctx context.Context, leadID, pipelineID, dealID string) (string, error) {
	return claimScript.Run(ctx, s.rdb, []string{SlotKey(leadID, pipelineID)}, dealID).Text()
}

// SwapOpenSlot implements domain.Store.
func (s *Store) SwapOpenSlot(ctx context.Context, leadID, pipelineID, old, new string) (bool, error) {
	n, err := swapScript.Run(ctx, s.rdb, []string{SlotKey(leadID, pipelineID)}, old, new).Int()
	return n == 1, err
}

// ReleaseOpenSlot implements domain.Store.
func (s *Store) ReleaseOpenSlot(ctx context.Context, leadID, pipelineID, dealID string) error {
	return releaseScript.Run(ctx, s.rdb, []string{SlotKey(leadID, pipelineID)}, dealID).Err()
}

// ---- idempotency keys

// RequestTTL is how long an idempotency key is remembered.
const RequestTTL = 7 * 24 * time.Hour

var claimRequestScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return v`)

// ClaimRequest implements domain.Store.
func (s *Store) ClaimRequest(ctx context.Context, scope, requestID, id string) (string, error) {
	key := prefix + "{req:" + scope + ":" + requestID + "}"
	return claimRequestScript.Run(ctx, s.rdb, []string{key}, id, RequestTTL.Milliseconds()).Text()
}

// ---- deals

func indexKeys(d *domain.Deal) []string {
	keys := []string{
		idxPrefix + "all",
		idxPrefix + "pipeline:" + d.PipelineID,
		idxPrefix + "stage:" + d.StageID,
	}
	if d.OwnerRepID != "" {
		keys = append(keys, idxPrefix+"owner:"+d.OwnerRepID)
	}
	if m := d.CloseMonth(); m != "" {
		keys = append(keys, idxPrefix+"close:"+m)
	}
	return keys
}

func queueIndexes(ctx context.Context, p redis.Pipeliner, d *domain.Deal) {
	for _, k := range indexKeys(d) {
		p.ZAdd(ctx, k, redis.Z{Member: d.ID})
	}
}

func (s *Store) addIndexes(ctx context.Context, d *domain.Deal) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		queueIndexes(ctx, p, d)
		return nil
	})
	return err
}

// staleIndexes are before's index keys that after no longer has.
func staleIndexes(before, after *domain.Deal) []string {
	keep := indexKeys(after)
	var out []string
	for _, k := range indexKeys(before) {
		if !slices.Contains(keep, k) {
			out = append(out, k)
		}
	}
	return out
}

// removeIndexes drops the deal's entries from keys. Best effort: a
// left-over entry is filtered out on read.
func (s *Store) removeIndexes(ctx context.Context, id string, keys []string) {
	if len(keys) == 0 {
		return
	}
	_, _ = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.ZRem(ctx, k, id)
		}
		return nil
	})
}

// InsertDeal implements domain.Store. On a single Redis the index entries
// and the deal go in one MULTI (one round trip); on a Cluster the entries
// go first, in their own slot.
func (s *Store) InsertDeal(ctx context.Context, d domain.Deal) (domain.Deal, bool, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return domain.Deal{}, false, err
	}
	var set *redis.BoolCmd
	if s.single {
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			queueIndexes(ctx, p, &d)
			set = p.SetNX(ctx, dealKey(d.ID), b, 0)
			return nil
		})
	} else if err = s.addIndexes(ctx, &d); err == nil {
		set = s.rdb.SetNX(ctx, dealKey(d.ID), b, 0)
		err = set.Err()
	}
	if err != nil {
		return domain.Deal{}, false, err
	}
	if set.Val() {
		d.Stored = b
		return d, true, nil
	}
	got, err := s.GetDeal(ctx, d.ID)
	return got, false, err
}

// GetDeal implements domain.Store.
func (s *Store) GetDeal(ctx context.Context, id string) (domain.Deal, error) {
	return decodeDeal(s.rdb.Get(ctx, dealKey(id)), id)
}

// decodeDeal decodes a GET of a deal, keeping its stored form.
func decodeDeal(c *redis.StringCmd, id string) (domain.Deal, error) {
	var d domain.Deal
	b, err := decodeJSON(c, &d, "deal "+id)
	d.Stored = b
	return d, err
}

// GetDealWithPipeline implements domain.Store: one pipelined round trip
// (the two keys are in different slots; a Cluster pipeline splits by node).
func (s *Store) GetDealWithPipeline(ctx context.Context, id, pipelineID string) (domain.Deal, *domain.Pipeline, error) {
	var dc, pc *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		dc = p.Get(ctx, dealKey(id))
		pc = p.Get(ctx, pipelineKey(pipelineID))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return domain.Deal{}, nil, err
	}
	d, err := decodeDeal(dc, id)
	if err != nil {
		return d, nil, err
	}
	var pl domain.Pipeline
	if _, err := decodeJSON(pc, &pl, "pipeline "+pipelineID); errors.Is(err, domain.ErrNotFound) {
		return d, nil, nil
	} else if err != nil {
		return d, nil, err
	}
	return d, &pl, nil
}

// updateDealScript replaces a deal (KEYS[1]) whose stored form is still
// ARGV[1] with ARGV[2]; it adds the deal (ARGV[3]) to the next ARGV[4]
// keys (its index entries) and removes it from the rest (stale ones).
// Returns 0, writing nothing, when the deal changed meanwhile.
var updateDealScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
local add = tonumber(ARGV[4])
for i = 2, 1 + add do redis.call('ZADD', KEYS[i], 0, ARGV[3]) end
for i = 2 + add, #KEYS do redis.call('ZREM', KEYS[i], ARGV[3]) end
return 1`)

// UpdateDeal implements domain.Store. The write is a compare-and-write
// script call (the deal as read, byte for byte, or nothing): no WATCH, so
// no connection of its own and no extra round trips. With seen, the first
// attempt does not read the deal at all.
func (s *Store) UpdateDeal(ctx context.Context, id string, seen *domain.Deal, fn func(*domain.Deal) error, hook domain.CommitHook) (domain.Deal, error) {
	var raw []byte
	if seen != nil && seen.ID == id {
		raw = seen.Stored
	}
	for range maxTxAttempts {
		if raw == nil {
			cur, err := s.GetDeal(ctx, id)
			if err != nil {
				return domain.Deal{}, err
			}
			raw = cur.Stored
		}
		var before, after domain.Deal
		if err := json.Unmarshal(raw, &before); err != nil {
			return domain.Deal{}, fmt.Errorf("deal %s: %w", id, err)
		}
		_ = json.Unmarshal(raw, &after) // a deep copy
		if err := fn(&after); err != nil {
			return domain.Deal{}, err
		}
		if hook != nil {
			if err := hook(ctx, &before, &after); err != nil {
				return domain.Deal{}, err
			}
		}
		if after.Version == before.Version {
			after.Stored = raw
			return after, nil
		}
		b, err := json.Marshal(after)
		if err != nil {
			return domain.Deal{}, err
		}
		written, err := s.writeDeal(ctx, raw, b, &before, &after)
		if err != nil {
			return domain.Deal{}, err
		}
		if written {
			after.Stored = b
			return after, nil
		}
		raw = nil // changed since it was read: read it again
	}
	return domain.Deal{}, fmt.Errorf("%w: too many concurrent changes, retry", domain.ErrAborted)
}

// writeDeal replaces the deal stored as old with new; false when it changed
// meanwhile. The indexes stay supersets (see the package comment): on a
// single Redis the script adds and removes the entries with the write; on a
// Cluster the new entries go before it and stale ones after it.
func (s *Store) writeDeal(ctx context.Context, old, new []byte, before, after *domain.Deal) (bool, error) {
	keys := []string{dealKey(after.ID)}
	add, stale := indexKeys(after), staleIndexes(before, after)
	nAdd := 0
	if s.single {
		keys = append(append(keys, add...), stale...)
		nAdd = len(add)
	} else if err := s.addIndexes(ctx, after); err != nil {
		return false, err
	}
	n, err := updateDealScript.Run(ctx, s.rdb, keys, old, new, after.ID, nAdd).Int()
	if err != nil || n == 0 {
		return false, err
	}
	if !s.single {
		s.removeIndexes(ctx, after.ID, stale)
	}
	return true, nil
}

func chooseIndex(f domain.DealFilter) string {
	switch {
	case f.StageID != "":
		return idxPrefix + "stage:" + f.StageID
	case f.CloseMonth != "":
		return idxPrefix + "close:" + f.CloseMonth
	case f.OwnerRepID != "":
		return idxPrefix + "owner:" + f.OwnerRepID
	case f.PipelineID != "":
		return idxPrefix + "pipeline:" + f.PipelineID
	}
	return idxPrefix + "all"
}

// ListDeals implements domain.Store. It walks the most selective index
// newest first and re-checks every filter on the deal; one call scans at most
// maxScan index entries (then returns a short page with a next token).
func (s *Store) ListDeals(ctx context.Context, f domain.DealFilter, pageToken string, limit int) ([]domain.Deal, string, error) {
	after, err := decodeToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	if f.LeadID != "" {
		return s.leadDeals(ctx, f, after, limit)
	}
	key := chooseIndex(f)
	max := "+"
	if after != "" {
		max = "(" + after
	}
	var out []domain.Deal
	for scanned := 0; scanned < maxScan; {
		ids, err := s.rdb.ZRevRangeByLex(ctx, key, &redis.ZRangeBy{Min: "-", Max: max, Count: scanBatch}).Result()
		if err != nil {
			return nil, "", err
		}
		if len(ids) == 0 {
			return out, "", nil
		}
		deals, err := s.getDeals(ctx, ids)
		if err != nil {
			return nil, "", err
		}
		for i, id := range ids {
			scanned++
			if d := deals[i]; d != nil && f.Match(d) {
				out = append(out, *d)
				if len(out) == limit {
					return out, encodeToken(id), nil
				}
			}
		}
		if len(ids) < scanBatch {
			return out, "", nil
		}
		max = "(" + ids[len(ids)-1]
	}
	return out, encodeToken(strings.TrimPrefix(max, "(")), nil
}

// leadDeals answers a lead filter from the lead's open-deal slots (one key
// per pipeline: SlotKey), not from an index: the slots (with the pipeline
// ids when f has no pipeline) and then the deals they name, newest first,
// in two round trips when the lead's pipelines are the default one only
// (its slot is read with the ids), three otherwise. A slot whose deal is
// closed (its release was lost) or not written yet (a hand-off in flight)
// is skipped.
func (s *Store) leadDeals(ctx context.Context, f domain.DealFilter, after string, limit int) ([]domain.Deal, string, error) {
	pipes := []string{f.PipelineID}
	var slots []*redis.StringCmd
	if f.PipelineID == "" {
		var idsCmd *redis.StringSliceCmd
		var defSlot *redis.StringCmd
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			idsCmd = p.ZRange(ctx, pipelinesIDs, 0, -1)
			defSlot = p.Get(ctx, SlotKey(f.LeadID, domain.DefaultPipelineID))
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, "", err
		}
		pipes = slices.DeleteFunc(idsCmd.Val(), func(id string) bool { return id == domain.DefaultPipelineID })
		slots = append(slots, defSlot)
	}
	if len(pipes) > 0 {
		more := make([]*redis.StringCmd, len(pipes))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, pid := range pipes {
				more[i] = p.Get(ctx, SlotKey(f.LeadID, pid))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, "", err
		}
		slots = append(slots, more...)
	}
	var ids []string
	for _, c := range slots {
		if id, err := c.Result(); err == nil && id != "" && (after == "" || id < after) {
			ids = append(ids, id)
		}
	}
	// Deal ids are time-ordered (UUIDv7): descending is newest first.
	slices.Sort(ids)
	slices.Reverse(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil, "", nil
	}
	deals, err := s.getDeals(ctx, ids)
	if err != nil {
		return nil, "", err
	}
	var out []domain.Deal
	for i, id := range ids {
		if d := deals[i]; d != nil && f.Match(d) {
			out = append(out, *d)
			if len(out) == limit && i < len(ids)-1 {
				return out, encodeToken(id), nil
			}
		}
	}
	return out, "", nil
}

// getDeals loads deals by id (nil for a missing one), pipelined so it also
// works across cluster slots.
func (s *Store) getDeals(ctx context.Context, ids []string) ([]*domain.Deal, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, dealKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]*domain.Deal, len(ids))
	for i, c := range cmds {
		b, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var d domain.Deal
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("deal %s: %w", ids[i], err)
		}
		out[i] = &d
	}
	return out, nil
}

// DealsClosingIn implements domain.Store.
func (s *Store) DealsClosingIn(ctx context.Context, months []string) ([]domain.Deal, error) {
	var out []domain.Deal
	for _, m := range months {
		ids, err := s.rdb.ZRange(ctx, idxPrefix+"close:"+m, 0, -1).Result()
		if err != nil {
			return nil, err
		}
		for start := 0; start < len(ids); start += scanBatch {
			batch := ids[start:min(start+scanBatch, len(ids))]
			deals, err := s.getDeals(ctx, batch)
			if err != nil {
				return nil, err
			}
			for _, d := range deals {
				if d != nil && d.CloseMonth() == m {
					out = append(out, *d)
				}
			}
		}
	}
	return out, nil
}

// ---- activities

var addActivityScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
if ARGV[3] ~= '' then
  local prev = redis.call('HGET', KEYS[4], ARGV[3])
  if prev then return {2, redis.call('HGET', KEYS[2], prev)} end
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return {1, ARGV[2]}`)

// AddActivity implements domain.Store.
func (s *Store) AddActivity(ctx context.Context, a domain.Activity, requestID string) (domain.Activity, bool, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return domain.Activity{}, false, err
	}
	res, err := addActivityScript.Run(ctx, s.rdb,
		[]string{dealKey(a.DealID), actsKey(a.DealID), actIdxKey(a.DealID), actReqKey(a.DealID)},
		a.ID, b, requestID).Slice()
	if err != nil {
		return domain.Activity{}, false, err
	}
	code, _ := res[0].(int64)
	body, _ := res[1].(string)
	if code == 0 {
		return domain.Activity{}, false, fmt.Errorf("%w: deal %s", domain.ErrNotFound, a.DealID)
	}
	var got domain.Activity
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		return domain.Activity{}, false, err
	}
	return got, code == 1, nil
}

// UpdateActivity implements domain.Store.
func (s *Store) UpdateActivity(ctx context.Context, dealID, activityID string, fn func(*domain.Activity) error) (domain.Activity, error) {
	key := actsKey(dealID)
	var out domain.Activity
	err := s.watch(ctx, func(tx *redis.Tx) error {
		raw, err := tx.HGet(ctx, key, activityID).Bytes()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("%w: activity %s on deal %s", domain.ErrNotFound, activityID, dealID)
		}
		if err != nil {
			return err
		}
		var a domain.Activity
		if err := json.Unmarshal(raw, &a); err != nil {
			return err
		}
		if err := fn(&a); err != nil {
			return err
		}
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		out = a
		if string(b) == string(raw) {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, activityID, b)
			return nil
		})
		return err
	}, key)
	return out, err
}

// ListActivities implements domain.Store.
func (s *Store) ListActivities(ctx context.Context, dealID, pageToken string, limit int) ([]domain.Activity, string, error) {
	after, err := decodeToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	if n, err := s.rdb.Exists(ctx, dealKey(dealID)).Result(); err != nil {
		return nil, "", err
	} else if n == 0 {
		return nil, "", fmt.Errorf("%w: deal %s", domain.ErrNotFound, dealID)
	}
	min := "-"
	if after != "" {
		min = "(" + after
	}
	ids, err := s.rdb.ZRangeByLex(ctx, actIdxKey(dealID), &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = encodeToken(ids[limit-1])
	}
	if len(ids) == 0 {
		return nil, "", nil
	}
	vals, err := s.rdb.HMGet(ctx, actsKey(dealID), ids...).Result()
	if err != nil {
		return nil, "", err
	}
	out := make([]domain.Activity, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var a domain.Activity
		if err := json.Unmarshal([]byte(str), &a); err != nil {
			return nil, "", err
		}
		out = append(out, a)
	}
	return out, next, nil
}

// ---- quotes

// AddQuote implements domain.Store.
func (s *Store) AddQuote(ctx context.Context, dealID string, build func(*domain.Deal, int32) (domain.Quote, error)) (domain.Quote, error) {
	dk, qk := dealKey(dealID), quotesKey(dealID)
	var out domain.Quote
	err := s.watch(ctx, func(tx *redis.Tx) error {
		var d domain.Deal
		if err := getJSON(ctx, tx, dk, &d, "deal "+dealID); err != nil {
			return err
		}
		n, err := tx.HLen(ctx, qk).Result()
		if err != nil {
			return err
		}
		q, err := build(&d, int32(n)+1)
		if err != nil {
			return err
		}
		b, err := json.Marshal(q)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, qk, q.ID, b)
			return nil
		})
		out = q
		return err
	}, dk, qk)
	return out, err
}

// UpdateQuote implements domain.Store.
func (s *Store) UpdateQuote(ctx context.Context, dealID, quoteID string, fn func(*domain.Deal, *domain.Quote) error, keep func(error) bool) (domain.Deal, domain.Quote, error) {
	dk, qk := dealKey(dealID), quotesKey(dealID)
	var outD domain.Deal
	var outQ domain.Quote
	var kept error
	err := s.watch(ctx, func(tx *redis.Tx) error {
		kept = nil
		var d domain.Deal
		if err := getJSON(ctx, tx, dk, &d, "deal "+dealID); err != nil {
			return err
		}
		raw, err := tx.HGet(ctx, qk, quoteID).Bytes()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("%w: quote %s on deal %s", domain.ErrNotFound, quoteID, dealID)
		}
		if err != nil {
			return err
		}
		var q domain.Quote
		if err := json.Unmarshal(raw, &q); err != nil {
			return err
		}
		version := d.Version
		if err := fn(&d, &q); err != nil {
			if keep == nil || !keep(err) {
				return err
			}
			kept = err
		}
		qb, err := json.Marshal(q)
		if err != nil {
			return err
		}
		db, err := json.Marshal(d)
		if err != nil {
			return err
		}
		outD, outQ = d, q
		if string(qb) == string(raw) && d.Version == version {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, qk, quoteID, qb)
			if d.Version != version {
				p.Set(ctx, dk, db, 0)
			}
			return nil
		})
		return err
	}, dk, qk)
	if err != nil {
		return domain.Deal{}, domain.Quote{}, err
	}
	return outD, outQ, kept
}

// ListQuotes implements domain.Store.
func (s *Store) ListQuotes(ctx context.Context, dealID string) ([]domain.Quote, error) {
	if n, err := s.rdb.Exists(ctx, dealKey(dealID)).Result(); err != nil {
		return nil, err
	} else if n == 0 {
		return nil, fmt.Errorf("%w: deal %s", domain.ErrNotFound, dealID)
	}
	vals, err := s.rdb.HVals(ctx, quotesKey(dealID)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]domain.Quote, 0, len(vals))
	for _, v := range vals {
		var q domain.Quote
		if err := json.Unmarshal([]byte(v), &q); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b domain.Quote) int { return int(a.Version - b.Version) })
	return out, nil
}

// ---- helpers

// watch runs fn in a WATCH transaction on keys, retrying when a concurrent
// write to the keys makes EXEC fail; ErrAborted after maxTxAttempts.
func (s *Store) watch(ctx context.Context, fn func(*redis.Tx) error, keys ...string) error {
	for range maxTxAttempts {
		err := s.rdb.Watch(ctx, fn, keys...)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return err
	}
	return fmt.Errorf("%w: too many concurrent changes, retry", domain.ErrAborted)
}

type getter interface {
	Get(ctx context.Context, key string) *redis.StringCmd
}

func getJSON(ctx context.Context, c getter, key string, v any, what string) error {
	_, err := decodeJSON(c.Get(ctx, key), v, what)
	return err
}

// decodeJSON decodes a GET's JSON value into v and returns the raw value;
// ErrNotFound when the key is missing.
func decodeJSON(c *redis.StringCmd, v any, what string) ([]byte, error) {
	b, err := c.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", domain.ErrNotFound, what)
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// ErrBadPageToken means a page token was not issued by this service.
var ErrBadPageToken = &domain.ValidationError{Violations: []domain.Violation{{Field: "page_token", Description: "invalid page token"}}}

func encodeToken(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func decodeToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) == 0 || len(b) > 128 {
		return "", ErrBadPageToken
	}
	return string(b), nil
}
