// Package store is the Redis adapter of the scoring domain.
//
// Keys (every key of one lead shares the hash tag {lead:<id>}, so a lead's
// write is one script call, also on Redis Cluster):
//
//	lf:scoring:{lead:<id>}:rec        the record (JSON of domain.Record), compare-and-write
//	lf:scoring:{lead:<id>}:outbox     hash effect key → effect (events and hand-offs not delivered yet)
//	lf:scoring:{lead:<id>}:pending    hash signal id → signal, for a lead not seen yet (TTL)
//	lf:scoring:{lead:<id>}:scores     list of past scores, newest first (capped)
//	lf:scoring:{lead:<id>}:idx        set of the list keys the lead is a member of
//	lf:scoring:{lead:<id>}:delivered  set of hand-off job ids already delivered
//	lf:scoring:{list:<status>}:all    zset lead → total score, one per status
//	lf:scoring:{list:<status>}:owner:<rep> / :grade:<g> / :heat:<h>   filtered lists
//	lf:scoring:{flush}:leads          zset lead → record revision with effects to deliver
//	lf:scoring:{models}:seq|active|versions|activated|m:<v>   the model versions
package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	json "github.com/segmentio/encoding/json"

	"github.com/leadflow/leadflow/services/platform/coalesce"
	"github.com/leadflow/leadflow/services/platform/redisx"
	"github.com/leadflow/leadflow/services/scoring/domain"
)

// Options tune the store.
type Options struct {
	// PendingTTL is how long signals of an unknown lead are kept (default 30 days).
	PendingTTL time.Duration
	// HistoryLimit is how many past scores are kept per lead (default 500).
	HistoryLimit int64
}

// Store implements domain.Store on Redis.
type Store struct {
	rdb redis.UniversalClient
	// single is a non-Cluster Redis: UpdateLead then writes the flush mark
	// and the status lists in its one script call.
	single bool
	o      Options

	mu      sync.RWMutex
	models  map[int32]domain.Model // versions are immutable: cached forever
	ensured bool

	// active coalesces the reads of the active version: every upsert needs
	// it, and concurrent ones share one GET.
	active *coalesce.Group[struct{}, int32]
	// shared sends the reads and writes of concurrent lead updates in one
	// round trip.
	shared *redisx.Coalesced
}

var _ domain.Store = (*Store)(nil)

// New returns a store on rdb.
func New(rdb redis.UniversalClient, o Options) *Store {
	if o.PendingTTL <= 0 {
		o.PendingTTL = 30 * 24 * time.Hour
	}
	if o.HistoryLimit <= 0 {
		o.HistoryLimit = 500
	}
	_, cluster := rdb.(*redis.ClusterClient)
	s := &Store{rdb: rdb, o: o, models: map[int32]domain.Model{}, single: !cluster}
	s.active = coalesce.NewFlights(1024, 2, s.readActiveVersion)
	s.shared = redisx.NewCoalesced(rdb, 256)
	return s
}

func leadKey(id, suffix string) string { return "lf:scoring:{lead:" + id + "}:" + suffix }

const flushKey = "lf:scoring:{flush}:leads"

func listKey(s domain.Status, filter string) string {
	return "lf:scoring:{list:" + s.String() + "}:" + filter
}

const maxTxAttempts = 16

// backoff waits a random time that grows with the attempt (at most about
// 2 ms per attempt), or until ctx ends.
func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(mrand.Int64N(int64(attempt+1) * int64(2*time.Millisecond))))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// UpdateLead runs fn on the lead's record and pending signals and writes its
// result with one compare-and-write script call: the write happens only if
// the record is still the one fn saw (byte for byte, or still absent) and
// the pending signals are as many as it saw (they are only added, or all
// cleared with a record write). Reads and writes go in the pipelines shared
// with concurrent updates of other leads (one round trip each for them
// all), where a WATCH/MULTI needed a connection and two round trips of its
// own per update. When the record moved in the status lists, they are
// updated in the same call on a single Redis, and right after it on a
// Cluster (their keys are in other slots). It retries when a concurrent
// writer wins and gives up with domain.ErrConflict after maxTxAttempts.
//
// The outbox is not compared: besides these writes, only AckEffects changes
// it, by removing delivered effects, and a write never adds back an effect
// it read (it adds only new ones and removes only ones it read).
func (s *Store) UpdateLead(ctx context.Context, id string, fn domain.LeadFunc) (*domain.LeadWrite, error) {
	for attempt := range maxTxAttempts {
		w, done, err := s.tryUpdate(ctx, id, fn)
		if err != nil {
			return w, err
		}
		if done {
			return w, nil
		}
		// Lost to a concurrent writer of this lead (a burst of signals):
		// back off a little, jittered, so the writers spread out instead of
		// colliding again until the attempts run out.
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
	return nil, domain.ErrConflict
}

// casScript writes a lead when its record and pending count are still what
// the writer read. KEYS[1] record, KEYS[2] pending, KEYS[3..] the other keys
// written. ARGV[1] "1" when the record existed, ARGV[2] its value, ARGV[3]
// the pending count, then the commands: argument count, command, arguments.
// Returns 1 when written, 0 when the lead changed meanwhile.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
if redis.call('HLEN', KEYS[2]) ~= tonumber(ARGV[3]) then return 0 end
local i = 4
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1`)

// tryUpdate is one attempt of UpdateLead; done is false when a concurrent
// writer changed the lead between the read and the write.
func (s *Store) tryUpdate(ctx context.Context, id string, fn domain.LeadFunc) (w *domain.LeadWrite, done bool, err error) {
	recK, pendK, outK := leadKey(id, "rec"), leadKey(id, "pending"), leadKey(id, "outbox")
	var recCmd *redis.StringCmd
	var pendCmd, outCmd *redis.MapStringStringCmd
	if err := s.shared.Pipelined(ctx, func(p redis.Pipeliner) {
		recCmd = p.Get(ctx, recK)
		pendCmd = p.HGetAll(ctx, pendK)
		outCmd = p.HGetAll(ctx, outK)
	}); err != nil {
		return nil, false, err
	}
	cur, err := decodeRecord(recCmd, outCmd.Val())
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		return nil, false, err
	}
	pending := make([]domain.Signal, 0, len(pendCmd.Val()))
	for _, v := range pendCmd.Val() {
		var sg domain.Signal
		if json.Unmarshal([]byte(v), &sg) == nil {
			pending = append(pending, sg)
		}
	}
	slices.SortFunc(pending, func(a, b domain.Signal) int { return cmp.Compare(a.ID, b.ID) })
	var rev int64
	var before string
	stored := map[string]bool{}
	oldIndex := []string{}
	if cur != nil {
		rev, before = cur.Rev, indexSig(cur)
		oldIndex = indexKeys(cur)
		for _, e := range cur.Outbox {
			stored[e.Key] = true
		}
	}
	w, err = fn(cur, pending)
	if err != nil || w == nil {
		return w, true, err
	}
	var data []byte
	var effects []any
	var mark, reindex bool
	var drop []string
	if w.Record != nil {
		w.Record.Rev = rev + 1
		if data, err = json.Marshal(w.Record); err != nil {
			return nil, false, err
		}
		reindex = cur == nil || indexSig(w.Record) != before
		keep := map[string]bool{}
		for i := range w.Record.Outbox {
			e := &w.Record.Outbox[i]
			keep[e.Key] = true
			if stored[e.Key] {
				continue
			}
			e.Seq = w.Record.Rev*1000 + int64(i)
			b, err := json.Marshal(e)
			if err != nil {
				return nil, false, err
			}
			effects = append(effects, e.Key, b)
		}
		for k := range stored {
			if !keep[k] {
				drop = append(drop, k)
			}
		}
		mark = w.Flush || len(effects) > 0
	}
	// Marked before the write, so that if we die after it the sweeper still
	// finds the lead (GT keeps the highest revision). On a single Redis the
	// mark goes in the write (no slot rule there): the mark and the write
	// are then one.
	markLead := func(c redis.Cmdable) *redis.IntCmd {
		return c.ZAddGT(ctx, flushKey, redis.Z{Score: float64(w.Record.Rev), Member: id})
	}
	if mark && !s.single {
		if err := markLead(s.rdb).Err(); err != nil {
			return nil, false, err
		}
	}
	// The write's commands are queued on a pipeline that is never sent:
	// the script runs them.
	p := s.rdb.Pipeline()
	if mark && s.single {
		markLead(p)
	}
	if w.AddPending != nil {
		b, _ := json.Marshal(w.AddPending)
		p.HSet(ctx, pendK, w.AddPending.ID, b)
		p.Expire(ctx, pendK, s.o.PendingTTL)
	}
	if w.ClearPending {
		p.Del(ctx, pendK)
	}
	if data != nil {
		p.Set(ctx, recK, data, 0)
	}
	if len(effects) > 0 {
		p.HSet(ctx, outK, effects...)
	}
	if len(drop) > 0 {
		p.HDel(ctx, outK, drop...)
	}
	if reindex && s.single {
		// No slot rule on a single Redis: the lists move with the record,
		// in the same call.
		queueReindex(ctx, p, w.Record, oldIndex)
	}
	if len(w.History) > 0 {
		hk := leadKey(id, "scores")
		vals := make([]any, len(w.History))
		for i, h := range w.History {
			b, _ := json.Marshal(h)
			vals[i] = b
		}
		p.LPush(ctx, hk, vals...)
		p.LTrim(ctx, hk, 0, s.o.HistoryLimit-1)
	}
	keys, args := casArgs(recCmd, len(pendCmd.Val()), recK, pendK, p.Cmds())
	written, err := s.shared.Eval(ctx, casScript, keys, args...).Int()
	if err != nil || written == 0 {
		return nil, false, err
	}
	if reindex && !s.single {
		if err := s.reindex(ctx, w.Record, oldIndex); err != nil {
			return w, true, err
		}
	}
	return w, true, nil
}

// casArgs are casScript's keys and arguments: what the writer read and the
// commands to run (each names its key first).
func casArgs(rec *redis.StringCmd, pending int, recK, pendK string, cmds []redis.Cmder) ([]string, []any) {
	keys := []string{recK, pendK}
	seen := map[string]bool{recK: true, pendK: true}
	existed := "0"
	if rec.Err() == nil {
		existed = "1"
	}
	args := []any{existed, rec.Val(), pending}
	for _, c := range cmds {
		a := c.Args()
		if k, ok := a[1].(string); ok && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		args = append(args, len(a))
		args = append(args, a...)
	}
	return keys, args
}

// indexSig is what the status lists depend on.
func indexSig(r *domain.Record) string {
	return strconv.Itoa(int(r.Status)) + "|" + r.Owner + "|" + strconv.Itoa(int(r.Score.Grade)) + "|" +
		strconv.Itoa(int(r.Score.Heat)) + "|" + strconv.Itoa(int(r.Score.Total))
}

// AckEffects removes delivered effects, remembers delivered hand-offs and
// clears the flush mark of each ack's revision (as FlushDone), in one round
// trip.
func (s *Store) AckEffects(ctx context.Context, acks ...domain.Ack) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, a := range acks {
			if len(a.Keys) > 0 {
				p.HDel(ctx, leadKey(a.LeadID, "outbox"), a.Keys...)
				if a.Delivered {
					queueMarkDelivered(ctx, p, a.LeadID, a.Keys...)
				}
			}
			if a.Rev > 0 {
				// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT.
				flushDoneScript.Eval(ctx, p, []string{flushKey}, a.LeadID, a.Rev)
			}
		}
		return nil
	})
	return err
}

func decodeRecord(recCmd *redis.StringCmd, outbox map[string]string) (*domain.Record, error) {
	b, err := recCmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var r domain.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode record of lead: %w", err)
	}
	for _, v := range outbox {
		var e domain.Effect
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			return nil, fmt.Errorf("decode outbox effect: %w", err)
		}
		r.Outbox = append(r.Outbox, e)
	}
	slices.SortFunc(r.Outbox, func(a, b domain.Effect) int { return cmp.Compare(a.Seq, b.Seq) })
	return &r, nil
}

// GetLead returns the lead's record (with its outbox) or domain.ErrNotFound.
func (s *Store) GetLead(ctx context.Context, id string) (*domain.Record, error) {
	rec, _, err := s.getLead(ctx, id, "")
	return rec, err
}

// LeadDelivered returns the lead's record (domain.ErrNotFound when there is
// none) and whether the hand-off key was delivered, in one round trip.
func (s *Store) LeadDelivered(ctx context.Context, id, key string) (*domain.Record, bool, error) {
	return s.getLead(ctx, id, key)
}

// LeadsDelivered implements domain.Store.
func (s *Store) LeadsDelivered(ctx context.Context, hs []domain.Handoff) ([]*domain.Record, []bool, []error, error) {
	recs, delivered := make([]*domain.Record, len(hs)), make([]bool, len(hs))
	errs := make([]error, len(hs))
	reads := make([]func() (*domain.Record, bool, error), len(hs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hs {
			reads[i] = queueLeadRead(ctx, p, h.LeadID, h.Key)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, nil, err
	}
	for i, read := range reads {
		recs[i], delivered[i], errs[i] = read()
	}
	return recs, delivered, errs, nil
}

// getLead reads the record and its outbox and, when deliveredKey is set,
// whether that hand-off was delivered, in one pipeline.
func (s *Store) getLead(ctx context.Context, id, deliveredKey string) (*domain.Record, bool, error) {
	var read func() (*domain.Record, bool, error)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		read = queueLeadRead(ctx, p, id, deliveredKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, err
	}
	return read()
}

// queueLeadRead queues the reads of getLead on p; the returned func decodes
// them after p ran.
func queueLeadRead(ctx context.Context, p redis.Pipeliner, id, deliveredKey string) func() (*domain.Record, bool, error) {
	recCmd := p.Get(ctx, leadKey(id, "rec"))
	outCmd := p.HGetAll(ctx, leadKey(id, "outbox"))
	var delCmd *redis.BoolCmd
	if deliveredKey != "" {
		delCmd = p.SIsMember(ctx, leadKey(id, "delivered"), deliveredKey)
	}
	return func() (*domain.Record, bool, error) {
		rec, err := decodeRecord(recCmd, outCmd.Val())
		return rec, delCmd != nil && delCmd.Val(), err
	}
}

// ScoreHistory returns past scores, newest first, and whether there are more.
func (s *Store) ScoreHistory(ctx context.Context, id string, offset, limit int64) ([]domain.HistoryEntry, bool, error) {
	hk := leadKey(id, "scores")
	var lr *redis.StringSliceCmd
	var ln *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		lr = p.LRange(ctx, hk, offset, offset+limit-1)
		ln = p.LLen(ctx, hk)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	out := make([]domain.HistoryEntry, 0, len(lr.Val()))
	for _, v := range lr.Val() {
		var h domain.HistoryEntry
		if err := json.Unmarshal([]byte(v), &h); err != nil {
			return nil, false, fmt.Errorf("decode score history: %w", err)
		}
		out = append(out, h)
	}
	return out, ln.Val() > offset+limit, nil
}

// indexKeys are the lists a record belongs to.
func indexKeys(r *domain.Record) []string {
	ks := []string{
		listKey(r.Status, "all"),
		listKey(r.Status, "grade:"+strconv.Itoa(int(r.Score.Grade))),
		listKey(r.Status, "heat:"+strconv.Itoa(int(r.Score.Heat))),
	}
	if r.Owner != "" {
		ks = append(ks, listKey(r.Status, "owner:"+r.Owner))
	}
	return ks
}

// Reindex makes the status lists reflect the stored record.
func (s *Store) Reindex(ctx context.Context, id string) error {
	r, err := s.GetLead(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.reindex(ctx, r, nil)
}

// reindex converges the lists: record the union of old and new memberships
// first, add to the wanted lists, remove from the others, then record the
// wanted set. Each step is idempotent, so a crash anywhere is repaired by
// the next reindex (the sweeper runs one for every lead marked for flush).
// Readers also check every listed record against the filter.
//
// old, when not nil, are the lists of the record this write replaced (the
// write path knows them), which saves reading the membership set; a
// membership left by an earlier crash is then cleaned by the next full
// reindex (old == nil) that the sweeper runs.
func (s *Store) reindex(ctx context.Context, r *domain.Record, old []string) error {
	if old == nil {
		var err error
		if old, err = s.rdb.SMembers(ctx, leadKey(r.LeadID, "idx")).Result(); err != nil {
			return err
		}
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		queueReindex(ctx, p, r, old)
		return nil
	})
	return err
}

// queueReindex queues on p the moves of r in the status lists, from the
// lists old. A pipeline runs in order: membership first, then the lists,
// then the clean-up of the membership.
func queueReindex(ctx context.Context, p redis.Pipeliner, r *domain.Record, old []string) {
	mk := leadKey(r.LeadID, "idx")
	want := indexKeys(r)
	wantSet := map[string]bool{}
	members := make([]any, 0, len(want))
	for _, k := range want {
		wantSet[k] = true
		members = append(members, k)
	}
	var stale []any
	for _, k := range old {
		if !wantSet[k] {
			stale = append(stale, k)
		}
	}
	p.SAdd(ctx, mk, members...)
	for _, k := range want {
		p.ZAdd(ctx, k, redis.Z{Score: float64(r.Score.Total), Member: r.LeadID})
	}
	for _, k := range stale {
		p.ZRem(ctx, k.(string), r.LeadID)
	}
	if len(stale) > 0 {
		p.SRem(ctx, mk, stale...)
	}
}

// ListLeads returns leads of one status, highest total first. It walks the
// most selective list (owner, grade, heat, else all) and checks every
// record against the whole query.
func (s *Store) ListLeads(ctx context.Context, q domain.ListQuery) ([]*domain.Record, int64, error) {
	key := listKey(q.Status, "all")
	switch {
	case q.Owner != "":
		key = listKey(q.Status, "owner:"+q.Owner)
	case q.Grade != domain.GradeUnspecified:
		key = listKey(q.Status, "grade:"+strconv.Itoa(int(q.Grade)))
	case q.Heat != domain.HeatUnspecified:
		key = listKey(q.Status, "heat:"+strconv.Itoa(int(q.Heat)))
	}
	out := make([]*domain.Record, 0, q.Limit)
	pos := q.Offset
	chunk := max(q.Limit, 50)
	for int64(len(out)) < q.Limit {
		ids, err := s.rdb.ZRevRange(ctx, key, pos, pos+chunk-1).Result()
		if err != nil {
			return nil, 0, err
		}
		if len(ids) == 0 {
			return out, 0, nil
		}
		cmds := make([]*redis.StringCmd, len(ids))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.Get(ctx, leadKey(id, "rec"))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, 0, err
		}
		for i := range ids {
			pos++
			b, err := cmds[i].Bytes()
			if err != nil {
				continue // deleted or not yet written: skip
			}
			var r domain.Record
			if json.Unmarshal(b, &r) != nil || !matches(&r, q) {
				continue
			}
			out = append(out, &r)
			if int64(len(out)) == q.Limit {
				break
			}
		}
		if int64(len(ids)) < chunk && int64(len(out)) < q.Limit {
			return out, 0, nil
		}
	}
	// More may follow; an empty last page is possible and harmless.
	n, err := s.rdb.ZCard(ctx, key).Result()
	if err != nil {
		return nil, 0, err
	}
	if pos >= n {
		return out, 0, nil
	}
	return out, pos, nil
}

func matches(r *domain.Record, q domain.ListQuery) bool {
	return r.Status == q.Status && (q.Owner == "" || r.Owner == q.Owner) &&
		(q.Grade == domain.GradeUnspecified || r.Score.Grade == q.Grade) &&
		(q.Heat == domain.HeatUnspecified || r.Score.Heat == q.Heat)
}

// FlushPending lists leads with effects to deliver, lowest revision first.
func (s *Store) FlushPending(ctx context.Context, limit int64) ([]domain.FlushMark, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, flushKey, 0, limit-1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]domain.FlushMark, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i] = domain.FlushMark{LeadID: id, Rev: int64(z.Score)}
	}
	return out, nil
}

var flushDoneScript = redis.NewScript(`
local v = redis.call('ZSCORE', KEYS[1], ARGV[1])
if v and tonumber(v) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) return 1 end
return 0`)

// FlushDone clears the lead's mark unless a later revision marked it again.
func (s *Store) FlushDone(ctx context.Context, id string, rev int64) error {
	return flushDoneScript.Run(ctx, s.rdb, []string{flushKey}, id, rev).Err()
}

// MarkDelivered remembers delivered hand-off jobs, in one round trip.
func (s *Store) MarkDelivered(ctx context.Context, hs ...domain.Handoff) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, h := range hs {
			queueMarkDelivered(ctx, p, h.LeadID, h.Key)
		}
		return nil
	})
	return err
}

// queueMarkDelivered queues the remembering of a lead's delivered hand-off
// keys on p.
func queueMarkDelivered(ctx context.Context, p redis.Pipeliner, leadID string, keys ...string) {
	members := make([]any, len(keys))
	for i, k := range keys {
		members[i] = k
	}
	p.SAdd(ctx, leadKey(leadID, "delivered"), members...)
}

// Delivered reports whether a hand-off job was delivered already.
func (s *Store) Delivered(ctx context.Context, id, key string) (bool, error) {
	return s.rdb.SIsMember(ctx, leadKey(id, "delivered"), key).Result()
}
