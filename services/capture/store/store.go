// Package store is capture's Redis adapter (domain.Store). Key layout, with
// Redis Cluster in mind (every key a script or MULTI touches together shares
// one hash tag):
//
//	lf:capture:{lead:<id>}              hash: p = Lead (protobuf), rev, fm,
//	                                    k:<kind>:<hash> owned identities,
//	                                    i:<key hash> idempotency records,
//	                                    s:<visitor hash> visitor entries to scrub
//	lf:capture:{email:<sha256>}         lead id owning the e-mail
//	lf:capture:{phone:<sha256>}         lead id owning the phone
//	lf:capture:{idem:<sha256 of key>}   IdempotencyRecord, TTL
//	lf:capture:{org:<domain>}           Organisation (protobuf)
//	lf:capture:{org:<domain>}:leads     sorted set of lead ids (lex order)
//	lf:capture:{visitor:<sha256>}       lead id the visitor was stitched to, TTL
//	lf:capture:{visitor:<sha256>}:signals list of pending signals, TTL
//	lf:capture:{signal:<sha256>}        seen signal id, TTL
//
// No key name holds an e-mail, phone, visitor id or idempotency key in clear.
package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// Redis implements domain.Store.
type Redis struct {
	rdb redis.UniversalClient
	// handoffs is the queue Writes.Handoffs go to.
	handoffs *jobs.Queue
	// MaxTxRetries bounds the optimistic retries of Update.
	MaxTxRetries int
	// shared sends the look-ups and claims of concurrent submissions in one
	// round trip.
	shared *redisx.Coalesced
}

var _ domain.Store = (*Redis)(nil)

// New returns the store on rdb; Writes.Handoffs are scheduled on handoffs.
func New(rdb redis.UniversalClient, handoffs *jobs.Queue) *Redis {
	return &Redis{rdb: rdb, handoffs: handoffs, MaxTxRetries: 20, shared: redisx.NewCoalesced(rdb, 256)}
}

const prefix = "lf:capture:"

// LeadKey is the hash of a lead.
func LeadKey(id string) string { return prefix + "{lead:" + id + "}" }

// IdentityKey is the index entry of an identity.
func IdentityKey(id domain.Identity) string { return prefix + "{" + id.Kind + ":" + id.Hash + "}" }

// IdemKey is the idempotency pointer of a key hash.
func IdemKey(keyHash string) string { return prefix + "{idem:" + keyHash + "}" }

// OrgKey is the organisation of a domain.
func OrgKey(domain string) string { return prefix + "{org:" + domain + "}" }

// OrgLeadsKey indexes the leads of a domain.
func OrgLeadsKey(domain string) string { return OrgKey(domain) + ":leads" }

// VisitorKey maps a visitor to its lead.
func VisitorKey(visitorHash string) string { return prefix + "{visitor:" + visitorHash + "}" }

// VisitorSignalsKey holds a visitor's pending signals.
func VisitorSignalsKey(visitorHash string) string { return VisitorKey(visitorHash) + ":signals" }

// SignalKey remembers a signal id.
func SignalKey(signalID string) string { return prefix + "{signal:" + domain.Hash(signalID) + "}" }

const (
	fLead     = "p"
	fRev      = "rev"
	fFreeMail = "fm"
	pIdentity = "k:"
	pIdem     = "i:"
	pScrub    = "s:"
)

func encode(sl *domain.StoredLead) (map[string]any, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(sl.Lead)
	if err != nil {
		return nil, err
	}
	fm := "0"
	if sl.FreeMail {
		fm = "1"
	}
	m := map[string]any{fLead: b, fRev: strconv.FormatInt(sl.Revision, 10), fFreeMail: fm}
	for _, id := range sl.Identities {
		m[pIdentity+id.Kind+":"+id.Hash] = "1"
	}
	for h, r := range sl.Idem {
		rb, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		m[pIdem+h] = rb
	}
	for _, v := range sl.PendingScrub {
		m[pScrub+v] = "1"
	}
	return m, nil
}

func decode(m map[string]string) (*domain.StoredLead, error) {
	raw, ok := m[fLead]
	if !ok {
		return nil, domain.ErrNotFound
	}
	sl := &domain.StoredLead{Lead: &leadv1.Lead{}, Idem: map[string]*capturev1.IdempotencyRecord{}}
	if err := proto.Unmarshal([]byte(raw), sl.Lead); err != nil {
		return nil, fmt.Errorf("decode lead: %w", err)
	}
	sl.Revision, _ = strconv.ParseInt(m[fRev], 10, 64)
	sl.FreeMail = m[fFreeMail] == "1"
	for k, v := range m {
		switch {
		case strings.HasPrefix(k, pIdentity):
			kind, hash, _ := strings.Cut(k[len(pIdentity):], ":")
			sl.Identities = append(sl.Identities, domain.Identity{Kind: kind, Hash: hash})
		case strings.HasPrefix(k, pIdem):
			r := &capturev1.IdempotencyRecord{}
			if err := proto.Unmarshal([]byte(v), r); err != nil {
				return nil, fmt.Errorf("decode idempotency record: %w", err)
			}
			sl.Idem[k[len(pIdem):]] = r
		case strings.HasPrefix(k, pScrub):
			sl.PendingScrub = append(sl.PendingScrub, k[len(pScrub):])
		}
	}
	return sl, nil
}

// Lookup implements domain.Store.
func (s *Redis) Lookup(ctx context.Context, idemKeyHash string, ids []domain.Identity) (*capturev1.IdempotencyRecord, []string, error) {
	var idem *redis.StringCmd
	cmds := make([]*redis.StringCmd, len(ids))
	err := s.shared.Pipelined(ctx, func(pipe redis.Pipeliner) {
		idem = getIdem(ctx, pipe, idemKeyHash)
		for i, id := range ids {
			cmds[i] = pipe.Get(ctx, IdentityKey(id))
		}
	})
	if err != nil {
		return nil, nil, err
	}
	rec, err := idemRecord(idem)
	if err != nil {
		return nil, nil, err
	}
	return rec, replies(cmds), nil
}

// LookupClaim implements domain.Store.
func (s *Redis) LookupClaim(ctx context.Context, idemKeyHash, leadID string, ids []domain.Identity, ttl time.Duration, orgDomain string) (*capturev1.IdempotencyRecord, []string, *leadv1.Organisation, error) {
	var idem, orgCmd *redis.StringCmd
	var cmds []*redis.StatusCmd
	err := s.shared.Pipelined(ctx, func(pipe redis.Pipeliner) {
		idem = getIdem(ctx, pipe, idemKeyHash)
		cmds = claimOn(ctx, pipe, leadID, ids, ttl)
		if orgDomain != "" {
			orgCmd = pipe.Get(ctx, OrgKey(orgDomain))
		}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	var org *leadv1.Organisation
	if orgCmd != nil && orgCmd.Err() == nil {
		if org, err = decodeOrg(orgCmd.Val()); err != nil {
			return nil, nil, nil, err
		}
	}
	rec, err := idemRecord(idem)
	if err != nil {
		return nil, nil, nil, err
	}
	return rec, replies(cmds), org, nil
}

// Claim implements domain.Store.
func (s *Redis) Claim(ctx context.Context, leadID string, ids []domain.Identity, ttl time.Duration, org *leadv1.Organisation) ([]string, *leadv1.Organisation, bool, error) {
	var orgVal []byte
	if org != nil {
		b, err := proto.Marshal(org)
		if err != nil {
			return nil, nil, false, err
		}
		orgVal = b
	}
	var cmds []*redis.StatusCmd
	var orgCmd *redis.StatusCmd
	err := s.shared.Pipelined(ctx, func(pipe redis.Pipeliner) {
		cmds = claimOn(ctx, pipe, leadID, ids, ttl)
		if org != nil {
			orgCmd = pipe.SetArgs(ctx, OrgKey(org.GetDomain()), orgVal, redis.SetArgs{Mode: "NX", Get: true})
		}
	})
	if err != nil {
		return nil, nil, false, err
	}
	if orgCmd == nil {
		return replies(cmds), nil, false, nil
	}
	rec, created, err := orgResult(orgCmd, org)
	return replies(cmds), rec, created, err
}

// getIdem queues the read of the idempotency pointer (nil without a key).
func getIdem(ctx context.Context, pipe redis.Pipeliner, keyHash string) *redis.StringCmd {
	if keyHash == "" {
		return nil
	}
	return pipe.Get(ctx, IdemKey(keyHash))
}

// idemRecord decodes the pointer getIdem read; nil when there is none.
func idemRecord(c *redis.StringCmd) (*capturev1.IdempotencyRecord, error) {
	if c == nil || c.Err() != nil {
		return nil, nil
	}
	rec := &capturev1.IdempotencyRecord{}
	if err := proto.Unmarshal([]byte(c.Val()), rec); err != nil {
		return nil, fmt.Errorf("decode idempotency record: %w", err)
	}
	return rec, nil
}

// claimOn queues the claim of each identity for leadID (SET NX GET,
// expiring after ttl until Create makes it permanent; 0: permanent at
// once); each reply is the owner, or redis.Nil when leadID took it.
func claimOn(ctx context.Context, pipe redis.Pipeliner, leadID string, ids []domain.Identity, ttl time.Duration) []*redis.StatusCmd {
	cmds := make([]*redis.StatusCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.SetArgs(ctx, IdentityKey(id), leadID, redis.SetArgs{Mode: "NX", Get: true, TTL: ttl})
	}
	return cmds
}

// replies is each command's string reply, "" for redis.Nil (an identity
// nobody owned).
func replies[C interface{ Val() string }](cmds []C) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out
}

func orgResult(c *redis.StatusCmd, org *leadv1.Organisation) (*leadv1.Organisation, bool, error) {
	if errors.Is(c.Err(), redis.Nil) {
		return org, true, nil
	}
	rec, err := decodeOrg(c.Val())
	return rec, false, err
}

func decodeOrg(v string) (*leadv1.Organisation, error) {
	rec := &leadv1.Organisation{}
	if err := proto.Unmarshal([]byte(v), rec); err != nil {
		return nil, fmt.Errorf("decode organisation: %w", err)
	}
	return rec, nil
}

// EnsureOrganisation implements domain.Store.
func (s *Redis) EnsureOrganisation(ctx context.Context, org *leadv1.Organisation) (*leadv1.Organisation, bool, error) {
	b, err := proto.Marshal(org)
	if err != nil {
		return nil, false, err
	}
	c := s.rdb.SetArgs(ctx, OrgKey(org.GetDomain()), b, redis.SetArgs{Mode: "NX", Get: true})
	if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, err
	}
	return orgResult(c, org)
}

// ClaimFor implements domain.Store.
func (s *Redis) ClaimFor(ctx context.Context, leadID string, ids []domain.Identity) ([]domain.Identity, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := claimOn(ctx, pipe, leadID, ids, 0)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var held []domain.Identity
	for i, c := range cmds {
		if v := c.Val(); v == "" || v == leadID {
			held = append(held, ids[i])
		}
	}
	return held, nil
}

// compareAndDelete deletes KEYS[1] when it holds ARGV[1].
var compareAndDelete = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Release implements domain.Store.
func (s *Redis) Release(ctx context.Context, leadID string, ids []domain.Identity) error {
	for _, id := range ids {
		if err := compareAndDelete.Run(ctx, s.rdb, []string{IdentityKey(id)}, leadID).Err(); err != nil {
			return err
		}
	}
	return nil
}

// addWrites queues w on pipe. Its hand-offs are born claimed for this
// process's direct deliverer when that runs (see jobs.ScheduleDirectOn):
// the caller gives the returned Borns to Hand once pipe has run.
func (s *Redis) addWrites(ctx context.Context, pipe redis.Pipeliner, w domain.Writes) ([]*jobs.Born, error) {
	if w.Idem != nil && w.IdemKeyHash != "" {
		b, err := proto.Marshal(w.Idem)
		if err != nil {
			return nil, err
		}
		pipe.Set(ctx, IdemKey(w.IdemKeyHash), b, w.IdemTTL)
	}
	if w.OrgDomain != "" && w.LeadID != "" {
		pipe.ZAdd(ctx, OrgLeadsKey(w.OrgDomain), redis.Z{Member: w.LeadID})
	}
	for _, ev := range w.Events {
		if err := events.AddToPipe(pipe, ctx, ev); err != nil {
			return nil, err
		}
	}
	var borns []*jobs.Born
	for _, h := range w.Handoffs {
		if s.handoffs == nil {
			return nil, errors.New("capture store: hand-offs written without a hand-off queue")
		}
		b, err := s.handoffs.ScheduleDirectOn(ctx, pipe, jobs.Job{ID: h.ID, Payload: h.Payload, Traceparent: h.Traceparent, LeadID: h.LeadID, Local: h.Profile})
		if err != nil {
			return nil, err
		}
		borns = append(borns, b)
	}
	return borns, nil
}

// Create implements domain.Store: one MULTI on a single Redis (one per hash
// tag on a Cluster, see txPerTag).
func (s *Redis) Create(ctx context.Context, sl *domain.StoredLead, w domain.Writes) error {
	m, err := encode(sl)
	if err != nil {
		return err
	}
	var borns []*jobs.Born
	err = txPerTag(ctx, s.rdb, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, LeadKey(sl.Lead.GetId()), m)
		for _, id := range sl.Identities {
			pipe.Persist(ctx, IdentityKey(id))
		}
		borns, err = s.addWrites(ctx, pipe, w)
		return err
	})
	if err == nil {
		s.handoffs.Hand(ctx, borns...)
	}
	return err
}

// txPerTag runs the commands fn queues in one MULTI/EXEC on a single Redis.
// A Redis Cluster has no cross-slot transactions (go-redis refuses such a
// TxPipeline with CROSSSLOT), so there the commands are grouped by the hash
// tag of their key and each group runs as its own MULTI/EXEC, one group after
// the other in the order fn first named them (the lead's hash first, so a
// crash part-way leaves what a retry repairs). Every command fn queues must
// have its key as its first argument, or be an EVAL/EVALSHA (first key).
func txPerTag(ctx context.Context, rdb redis.UniversalClient, fn func(redis.Pipeliner) error) error {
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		_, err := rdb.TxPipelined(ctx, fn)
		return err
	}
	queue := rdb.Pipeline() // only collects the commands; never executed
	defer queue.Discard()
	if err := fn(queue); err != nil {
		return err
	}
	var order []string
	groups := map[string][]redis.Cmder{}
	for _, c := range queue.Cmds() {
		tag := ""
		args := c.Args()
		switch name := c.Name(); {
		case (name == "eval" || name == "evalsha") && len(args) > 3:
			tag = hashTag(fmt.Sprint(args[3]))
		case len(args) > 1:
			tag = hashTag(fmt.Sprint(args[1]))
		}
		if _, ok := groups[tag]; !ok {
			order = append(order, tag)
		}
		groups[tag] = append(groups[tag], c)
	}
	for _, tag := range order {
		tx := rdb.TxPipeline()
		if err := tx.BatchProcess(ctx, groups[tag]...); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// hashTag is the part of key Redis Cluster hashes: the text between the first
// '{' and the next '}' when that is not empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// Apply implements domain.Store.
func (s *Redis) Apply(ctx context.Context, w domain.Writes) error {
	pipe := s.rdb.Pipeline()
	borns, err := s.addWrites(ctx, pipe, w)
	if err != nil {
		return err
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	s.handoffs.Hand(ctx, borns...)
	return nil
}

// Update implements domain.Store with WATCH/MULTI on the lead's key.
func (s *Redis) Update(ctx context.Context, leadID string, fn func(*domain.StoredLead) error) (*domain.StoredLead, error) {
	key := LeadKey(leadID)
	var out *domain.StoredLead
	txf := func(tx *redis.Tx) error {
		m, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return err
		}
		sl, err := decode(m)
		if err != nil {
			return err
		}
		if err := fn(sl); err != nil {
			if errors.Is(err, domain.ErrNoChange) {
				out = sl
				return nil
			}
			return err
		}
		nm, err := encode(sl)
		if err != nil {
			return err
		}
		var gone []string
		for k := range m {
			if _, ok := nm[k]; !ok {
				gone = append(gone, k)
			}
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, key, nm)
			if len(gone) > 0 {
				pipe.HDel(ctx, key, gone...)
			}
			return nil
		})
		if err == nil {
			out = sl
		}
		return err
	}
	for i := 0; i < s.MaxTxRetries; i++ {
		err := s.rdb.Watch(ctx, txf, key)
		if errors.Is(err, redis.TxFailedErr) {
			// Lost the race: back off a little (jittered, growing) so that
			// many writers of one hot lead do not keep colliding.
			d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(i, 6)))
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, domain.ErrConflict
}

// Get implements domain.Store.
func (s *Redis) Get(ctx context.Context, leadID string) (*domain.StoredLead, error) {
	m, err := s.rdb.HGetAll(ctx, LeadKey(leadID)).Result()
	if err != nil {
		return nil, err
	}
	return decode(m)
}

// GetMany implements domain.Store.
func (s *Redis) GetMany(ctx context.Context, ids []string) ([]*domain.StoredLead, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, LeadKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]*domain.StoredLead, 0, len(ids))
	for _, c := range cmds {
		sl, err := decode(c.Val())
		if errors.Is(err, domain.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sl)
	}
	return out, nil
}

// Owner implements domain.Store.
func (s *Redis) Owner(ctx context.Context, id domain.Identity) (string, error) {
	v, err := s.rdb.Get(ctx, IdentityKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// LeadsOfDomain implements domain.Store.
func (s *Redis) LeadsOfDomain(ctx context.Context, domainName, after string, limit int) ([]string, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	return s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: OrgLeadsKey(domainName), Start: start, Stop: "+", ByLex: true, Count: int64(limit)}).Result()
}

// MarkSignal implements domain.Store.
func (s *Redis) MarkSignal(ctx context.Context, signalID string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, SignalKey(signalID), "1", ttl).Result()
}

// addVisitorSignal: KEYS[1] visitor→lead, KEYS[2] pending signals.
var addVisitorSignal = redis.NewScript(`
local lead = redis.call('GET', KEYS[1])
if lead then return lead end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return ''`)

// AddVisitorSignal implements domain.Store: the check and the append are one
// script, so a signal can never slip in after the visitor was stitched.
func (s *Redis) AddVisitorSignal(ctx context.Context, visitorHash string, signal []byte, ttl time.Duration) (string, error) {
	return addVisitorSignal.Run(ctx, s.rdb, []string{VisitorKey(visitorHash), VisitorSignalsKey(visitorHash)}, signal, ttl.Milliseconds()).Text()
}

var stitchVisitor = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('LRANGE', KEYS[2], 0, -1)`)

// StitchVisitor implements domain.Store.
func (s *Redis) StitchVisitor(ctx context.Context, visitorHash, leadID string, ttl time.Duration) ([][]byte, error) {
	vals, err := stitchVisitor.Run(ctx, s.rdb, []string{VisitorKey(visitorHash), VisitorSignalsKey(visitorHash)}, leadID, ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}

// ClearVisitor implements domain.Store.
func (s *Redis) ClearVisitor(ctx context.Context, visitorHash string) error {
	return s.rdb.Del(ctx, VisitorSignalsKey(visitorHash)).Err()
}

// Scrub implements domain.Store.
func (s *Redis) Scrub(ctx context.Context, sl *domain.StoredLead) error {
	id := sl.Lead.GetId()
	for _, ident := range sl.Identities {
		if err := compareAndDelete.Run(ctx, s.rdb, []string{IdentityKey(ident)}, id).Err(); err != nil {
			return err
		}
	}
	for _, v := range sl.PendingScrub {
		if err := compareAndDelete.Run(ctx, s.rdb, []string{VisitorKey(v)}, id).Err(); err != nil {
			return err
		}
	}
	pipe := s.rdb.Pipeline()
	for h := range sl.Idem {
		pipe.Del(ctx, IdemKey(h))
	}
	for _, v := range sl.PendingScrub {
		pipe.Del(ctx, VisitorSignalsKey(v))
	}
	if d := sl.Lead.GetOrganisation().GetDomain(); d != "" {
		pipe.ZRem(ctx, OrgLeadsKey(d), id)
	}
	var fields []string
	for _, ident := range sl.Identities {
		fields = append(fields, pIdentity+ident.Kind+":"+ident.Hash)
	}
	for h := range sl.Idem {
		fields = append(fields, pIdem+h)
	}
	for _, v := range sl.PendingScrub {
		fields = append(fields, pScrub+v)
	}
	if len(fields) > 0 {
		pipe.HDel(ctx, LeadKey(id), fields...)
	}
	_, err := pipe.Exec(ctx)
	return err
}
