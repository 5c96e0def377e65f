// Package store keeps reporting's aggregates in Redis: per-lead fact hashes,
// per-lead journeys (which double as the applied-event-id set), the cohort
// index by capture time, and campaign spend. Aggregates live in numbered
// generations so a rebuild can fill a fresh one and swap it in atomically.
//
// Every key shares the hash tag {reporting}: the apply script touches a
// lead's facts, its journey, the cohort index and the generation pointer in
// one atomic step, which Redis Cluster allows only within one slot.
package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/reporting/domain"
)

// Prefix is the prefix of every reporting key.
const Prefix = "lf:reporting:{reporting}:"

const (
	genKey    = Prefix + "gen"
	genSeqKey = Prefix + "gen:seq"
	spendKey  = Prefix + "spend"
	lockKey   = Prefix + "rebuild:lock"
)

// GenPrefix is the key prefix of generation gen.
func GenPrefix(gen int64) string { return Prefix + "g" + strconv.FormatInt(gen, 10) + ":" }

func leadKey(gen int64, id string) string    { return GenPrefix(gen) + "lead:" + id }
func journeyKey(gen int64, id string) string { return GenPrefix(gen) + "journey:" + id }
func cohortKey(gen int64) string             { return GenPrefix(gen) + "cohort" }
func metaKey(gen int64) string               { return GenPrefix(gen) + "meta" }

// Store is the Redis adapter.
type Store struct {
	rdb redis.UniversalClient
}

// New returns a store on rdb.
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// ErrStaleGeneration means the generation the caller applied to is no
// longer current (a rebuild swapped in a new one); reload and retry.
var ErrStaleGeneration = errors.New("stale aggregate generation")

// ErrNotFound is returned for an unknown lead.
var ErrNotFound = errors.New("not found")

// ErrRebuildRunning means another rebuild holds the lock.
var ErrRebuildRunning = errors.New("a rebuild is already running")

var initGen = redis.NewScript(`
local g = redis.call('GET', KEYS[1])
if g then return tonumber(g) end
g = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], g)
return g`)

// Generation returns the generation serving reports, creating the first one.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	return initGen.Run(ctx, s.rdb, []string{genKey, genSeqKey}).Int64()
}

// NewGeneration reserves a fresh, empty generation number.
func (s *Store) NewGeneration(ctx context.Context) (int64, error) {
	if _, err := s.Generation(ctx); err != nil {
		return 0, err
	}
	return s.rdb.Incr(ctx, genSeqKey).Result()
}

// Swap makes gen the serving generation and returns the previous one.
func (s *Store) Swap(ctx context.Context, gen int64) (int64, error) {
	prev, err := s.rdb.SetArgs(ctx, genKey, gen, redis.SetArgs{Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(prev, 10, 64)
}

//go:embed apply.lua
var applySrc string

var applyScript = redis.NewScript(applySrc)

// Event is one event ready to apply.
type Event struct {
	ID, LeadID string
	// Raw is the encoded LeadEvent, kept as the lead's journey entry.
	Raw []byte
	// StreamID is the stream entry id the event came from.
	StreamID string
	Ops      []domain.Op
}

// Status of one apply.
type Status int

const (
	// Applied: the event changed the aggregates.
	Applied Status = iota + 1
	// Duplicate: the event id was applied before; nothing changed.
	Duplicate
)

// Result of one apply.
type Result struct {
	Status Status
	// FirstGroups are the fact groups this event set for the first time
	// (e.g. "cap", "mql", "won"): the headline counters.
	FirstGroups []string
	Err         error
}

// applyChunk is how many events one script call applies. Chunks amortise
// the per-call work (generation check, event counter, smallest stream id)
// while a call still runs for well under a millisecond: a script blocks
// every other Redis client while it runs.
const applyChunk = 20

// Apply applies events to generation gen, in order, each atomically with its
// idempotency record, in one round trip (one script call per chunk of
// events). With check, an event is refused with ErrStaleGeneration when gen
// is no longer serving. An event a command fails on gets that error alone.
func (s *Store) Apply(ctx context.Context, gen int64, check bool, evs []Event) ([]Result, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	out, err := s.apply(ctx, gen, check, evs)
	if err == nil && out[0].Err != nil && redis.HasErrorPrefix(out[0].Err, "NOSCRIPT") {
		// First use, or Redis restarted/flushed its script cache: load and
		// send again (safe: the apply is idempotent by event id).
		if err := applyScript.Load(ctx, s.rdb).Err(); err != nil {
			return nil, err
		}
		return s.apply(ctx, gen, check, evs)
	}
	return out, err
}

// apply sends one script call per chunk of events in one pipeline. A
// chunk's error reply becomes the Err of each of its events.
func (s *Store) apply(ctx context.Context, gen int64, check bool, evs []Event) ([]Result, error) {
	chk := "0"
	if check {
		chk = "1"
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, 0, (len(evs)+applyChunk-1)/applyChunk)
	for start := 0; start < len(evs); start += applyChunk {
		part := evs[start:min(start+applyChunk, len(evs))]
		keys := make([]string, 0, 3+2*len(part))
		keys = append(keys, genKey, cohortKey(gen), metaKey(gen))
		args := make([]any, 0, 3+len(part)*16)
		ordered := "0"
		if inStreamOrder(part) {
			ordered = "1"
		}
		args = append(args, gen, chk, ordered)
		for _, ev := range part {
			keys = append(keys, leadKey(gen, ev.LeadID), journeyKey(gen, ev.LeadID))
			args = append(args, ev.ID, ev.Raw, ev.LeadID, ev.StreamID, 0)
			n := len(args)
			for _, op := range ev.Ops {
				switch op.Kind {
				case domain.OpIncr:
					args = append(args, string(op.Kind), op.Group, op.Delta)
				default:
					args = append(args, string(op.Kind), op.Group, op.Key, len(op.Fields)/2)
					for _, f := range op.Fields {
						args = append(args, f)
					}
				}
			}
			args[n-1] = len(args) - n
		}
		cmds = append(cmds, applyScript.EvalSha(ctx, pipe, keys, args...))
	}
	_, err := pipe.Exec(ctx)
	if err != nil && !isReplyError(err) {
		return nil, err
	}
	out := make([]Result, len(evs))
	for c, cmd := range cmds {
		part := out[c*applyChunk : min((c+1)*applyChunk, len(evs))]
		if err := chunkResults(cmd, part); err != nil {
			for i := range part {
				part[i] = Result{Err: err}
			}
		}
	}
	return out, nil
}

// inStreamOrder reports whether every event has a stream entry id, each
// larger than the one before (a consumer's read, a replay).
func inStreamOrder(evs []Event) bool {
	for i, ev := range evs {
		if _, _, ok := ParseStreamID(ev.StreamID); !ok || (i > 0 && !LessStreamID(evs[i-1].StreamID, ev.StreamID)) {
			return false
		}
	}
	return true
}

// LessStreamID reports whether stream entry id a comes before b, comparing
// numerically (an id that is not "<ms>-<seq>" counts as 0-0).
func LessStreamID(a, b string) bool {
	am, as, _ := ParseStreamID(a)
	bm, bs, _ := ParseStreamID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

// ParseStreamID splits a stream entry id "<ms>-<seq>".
func ParseStreamID(id string) (ms, seq uint64, ok bool) {
	m, s, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(m, 10, 64)
	seq, err2 := strconv.ParseUint(s, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// chunkResults reads one script call's reply into the results of its events.
func chunkResults(cmd *redis.Cmd, out []Result) error {
	v, err := cmd.Result()
	if err != nil {
		return err
	}
	if code, ok := v.(int64); ok && code == -1 {
		return ErrStaleGeneration
	}
	vals, ok := v.([]any)
	if !ok || len(vals) != len(out) {
		return fmt.Errorf("apply script: %d results for %d events", len(vals), len(out))
	}
	for i, r := range vals {
		fields, applied := r.([]any)
		if !applied {
			out[i].Status = Duplicate
			continue
		}
		if code, _ := fields[0].(int64); code == -2 {
			out[i].Err = fmt.Errorf("apply script: %v", fields[1])
			continue
		}
		out[i].Status = Applied
		for _, f := range fields[1:] {
			if g, ok := f.(string); ok {
				out[i].FirstGroups = append(out[i].FirstGroups, g)
			}
		}
	}
	return nil
}

// isReplyError reports whether a pipeline error is a Redis error reply of one
// command (the others still ran), rather than a connection failure.
func isReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !strings.HasPrefix(err.Error(), "LOADING")
}

// Meta is what a generation knows about itself.
type Meta struct {
	Events int64
	Leads  int64
	// MinStreamID is the smallest stream entry id applied; "" when none.
	MinStreamID string
}

// Meta reads the meta of gen.
func (s *Store) Meta(ctx context.Context, gen int64) (Meta, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, metaKey(gen))
	n := pipe.ZCard(ctx, cohortKey(gen))
	if _, err := pipe.Exec(ctx); err != nil {
		return Meta{}, err
	}
	m := Meta{Leads: n.Val()}
	m.Events, _ = strconv.ParseInt(h.Val()["events"], 10, 64)
	m.MinStreamID = h.Val()["min_sid"]
	return m, nil
}

// factBatch bounds the HGETALLs sent in one pipeline.
const factBatch = 500

// CohortFacts returns the facts of the leads captured in [from, to) in the
// serving generation.
func (s *Store) CohortFacts(ctx context.Context, from, to time.Time) ([]domain.Fact, error) {
	gen, err := s.Generation(ctx)
	if err != nil {
		return nil, err
	}
	return s.CohortFactsIn(ctx, gen, from, to)
}

// CohortFactsIn is CohortFacts for a given generation.
func (s *Store) CohortFactsIn(ctx context.Context, gen int64, from, to time.Time) ([]domain.Fact, error) {
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: cohortKey(gen), ByScore: true,
		Start: strconv.FormatInt(from.UnixMilli(), 10), Stop: "(" + strconv.FormatInt(to.UnixMilli(), 10),
	}).Result()
	if err != nil {
		return nil, err
	}
	facts := make([]domain.Fact, 0, len(ids))
	for lo := 0; lo < len(ids); lo += factBatch {
		hi := min(lo+factBatch, len(ids))
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, 0, hi-lo)
		for _, id := range ids[lo:hi] {
			cmds = append(cmds, pipe.HGetAll(ctx, leadKey(gen, id)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
		for i, c := range cmds {
			facts = append(facts, domain.ParseFact(ids[lo+i], c.Val()))
		}
	}
	return facts, nil
}

// Fact returns one lead's facts in the serving generation.
func (s *Store) Fact(ctx context.Context, leadID string) (domain.Fact, error) {
	gen, err := s.Generation(ctx)
	if err != nil {
		return domain.Fact{}, err
	}
	h, err := s.rdb.HGetAll(ctx, leadKey(gen, leadID)).Result()
	if err != nil {
		return domain.Fact{}, err
	}
	if len(h) == 0 {
		return domain.Fact{}, ErrNotFound
	}
	return domain.ParseFact(leadID, h), nil
}

// Journey returns the encoded events of a lead (unordered); ErrNotFound
// when there is none.
func (s *Store) Journey(ctx context.Context, leadID string) ([][]byte, error) {
	gen, err := s.Generation(ctx)
	if err != nil {
		return nil, err
	}
	vals, err := s.rdb.HVals(ctx, journeyKey(gen, leadID)).Result()
	if err != nil {
		return nil, err
	}
	if len(vals) == 0 {
		return nil, ErrNotFound
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}

const sep = "\x1f"

func spendField(sp domain.Spend) string {
	return strings.Join([]string{sp.Campaign, strconv.FormatInt(sp.From.UnixMilli(), 10),
		strconv.FormatInt(sp.To.UnixMilli(), 10), sp.Currency}, sep)
}

// RecordSpend records (or replaces) a spend; replaced reports an earlier
// record for the same campaign, period and currency.
func (s *Store) RecordSpend(ctx context.Context, sp domain.Spend) (replaced bool, err error) {
	n, err := s.rdb.HSet(ctx, spendKey, spendField(sp), sp.Minor).Result()
	if err != nil {
		return false, err
	}
	return n == 0, nil
}

// Spends returns every spend record. Spend is outside the generations: it
// is not derived from events and survives rebuilds.
func (s *Store) Spends(ctx context.Context) ([]domain.Spend, error) {
	h, err := s.rdb.HGetAll(ctx, spendKey).Result()
	if err != nil {
		return nil, err
	}
	out := make([]domain.Spend, 0, len(h))
	for k, v := range h {
		parts := strings.Split(k, sep)
		if len(parts) != 4 {
			return nil, fmt.Errorf("spend record %q: malformed", k)
		}
		from, err1 := strconv.ParseInt(parts[1], 10, 64)
		to, err2 := strconv.ParseInt(parts[2], 10, 64)
		amt, err3 := strconv.ParseInt(v, 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("spend record %q: %w", k, err)
		}
		out = append(out, domain.Spend{Campaign: parts[0], From: time.UnixMilli(from).UTC(), To: time.UnixMilli(to).UTC(),
			Money: domain.Money{Currency: parts[3], Minor: amt}})
	}
	return out, nil
}

// Lock takes the rebuild lock for ttl; the returned func releases it.
func (s *Store) Lock(ctx context.Context, token string, ttl time.Duration) (func(context.Context), error) {
	ok, err := s.rdb.SetNX(ctx, lockKey, token, ttl).Result()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrRebuildRunning
	}
	return func(ctx context.Context) { _ = unlock.Run(ctx, s.rdb, []string{lockKey}, token).Err() }, nil
}

var unlock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// DropGeneration deletes every key of gen (a generation no longer serving).
func (s *Store) DropGeneration(ctx context.Context, gen int64) error {
	return s.forEachKey(ctx, GenPrefix(gen)+"*", func(c redis.UniversalClient, keys []string) error {
		return c.Unlink(ctx, keys...).Err()
	})
}

// Dump returns every key of gen (without the generation prefix) with a
// canonical rendering of its value: what "identical aggregates" compares.
func (s *Store) Dump(ctx context.Context, gen int64) (map[string]string, error) {
	out := map[string]string{}
	p := GenPrefix(gen)
	err := s.forEachKey(ctx, p+"*", func(c redis.UniversalClient, keys []string) error {
		for _, k := range keys {
			typ, err := c.Type(ctx, k).Result()
			if err != nil {
				return err
			}
			var v string
			switch typ {
			case "hash":
				h, err := c.HGetAll(ctx, k).Result()
				if err != nil {
					return err
				}
				v = canonical(h)
			case "zset":
				z, err := c.ZRangeWithScores(ctx, k, 0, -1).Result()
				if err != nil {
					return err
				}
				m := map[string]string{}
				for _, e := range z {
					m[fmt.Sprint(e.Member)] = strconv.FormatFloat(e.Score, 'f', -1, 64)
				}
				v = canonical(m)
			default:
				v = typ
			}
			out[strings.TrimPrefix(k, p)] = v
		}
		return nil
	})
	return out, err
}

func canonical(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q;", k, m[k])
	}
	return b.String()
}

// forEachKey scans keys matching pattern on every master (Cluster) or the
// one server, calling fn with batches.
func (s *Store) forEachKey(ctx context.Context, pattern string, fn func(redis.UniversalClient, []string) error) error {
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, pattern, 500).Iterator()
		batch := make([]string, 0, 500)
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == cap(batch) {
				if err := fn(c, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if len(batch) > 0 {
			return fn(c, batch)
		}
		return nil
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, s.rdb)
}
