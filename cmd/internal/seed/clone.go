package seed

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/events"
)

// EventStream is the lifecycle stream (platform/events), trimmed by time
// (reporting's LEADFLOW_REPORTING_RETENTION), so only a share of the clones'
// events goes into it (CloneOptions.StreamShare).
const EventStream = events.StreamKey

// Streams capped by length: a rep's inbox keeps about 10,000 items
// (routing/store, XADD MAXLEN ~ 10000), so clones fill it up to that only.
var cappedStreams = []struct {
	re  *regexp.Regexp
	cap int64
}{
	{regexp.MustCompile(`^lf:routing:\{team:[^}]*\}:inbox:`), 10000},
}

// Counters kept beside an index: a routing team's load hash counts each
// rep's open leads (the members of …:rep:<rep>), and reporting's meta hash
// counts the events applied (one journey field each).
var (
	repOpenRe = regexp.MustCompile(`^(lf:routing:\{team:[^}]*\}:)rep:(.+)$`)
	journeyRe = regexp.MustCompile(`^(lf:reporting:\{reporting\}:g[0-9]+:)journey:`)
)

// CloneOptions tune Clone.
type CloneOptions struct {
	// Batch is clones per pipeline (default 200); Workers pipelines in
	// flight (default 2).
	Batch, Workers int
	// History is the period over which the clones arrived, evenly, the
	// last one now (0: all now). What lives for a limited time in steady
	// state is written only for the clones that arrived within its
	// lifetime: EventStream entries within Retention, keys with a TTL
	// within their TTL, job queue entries (SLA timers) until they are due.
	History time.Duration
	// Retention is the event stream's (reporting's
	// LEADFLOW_REPORTING_RETENTION; 0: kept for ever).
	Retention time.Duration
	// Progress, when set, is called after each batch with the clones
	// written so far; an error stops the clone.
	Progress func(done int64) error
}

// CloneStats are what Clone wrote.
type CloneStats struct {
	Leads, Keys, IndexEntries, StreamEntries, Commands int64
}

// Clone writes n clones of the snapshot's families, round robin, into rdb.
func (s *Snapshot) Clone(ctx context.Context, rdb *redis.Client, n int, o CloneOptions) (CloneStats, error) {
	var st CloneStats
	if len(s.families) == 0 {
		return st, fmt.Errorf("no template leads (lf:capture:{lead:<id>} keys) in the store")
	}
	if o.Batch <= 0 {
		o.Batch = 200
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	cut, err := s.streamCutoffs(ctx, rdb, n, o)
	if err != nil {
		return st, err
	}
	batches := make(chan int)
	errc := make(chan error, o.Workers)
	var wg sync.WaitGroup
	var done atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			g := newGen(uint64(w) + 1)
			var local CloneStats
			defer func() {
				atomic.AddInt64(&st.Leads, local.Leads)
				atomic.AddInt64(&st.Keys, local.Keys)
				atomic.AddInt64(&st.IndexEntries, local.IndexEntries)
				atomic.AddInt64(&st.StreamEntries, local.StreamEntries)
				atomic.AddInt64(&st.Commands, local.Commands)
			}()
			for from := range batches {
				to := min(from+o.Batch, n)
				if err := s.writeBatch(cctx, rdb, g, from, to, n, o, cut, &local); err != nil {
					errc <- err
					cancel()
					return
				}
				if d := done.Add(int64(to - from)); o.Progress != nil {
					if err := o.Progress(d); err != nil {
						errc <- err
						cancel()
						return
					}
				}
			}
		}(w)
	}
feed:
	for from := 0; from < n; from += o.Batch {
		select {
		case batches <- from:
		case <-cctx.Done():
			break feed
		}
	}
	close(batches)
	wg.Wait()
	select {
	case err := <-errc:
		return st, err
	default:
	}
	return st, ctx.Err()
}

// streamCutoffs: clone i adds entries to stream key k only if i >= cut[k].
// The event stream gets the newest StreamShare of the clones; a capped
// stream gets the newest clones that fit in its cap.
func (s *Snapshot) streamCutoffs(ctx context.Context, rdb *redis.Client, n int, o CloneOptions) (map[string]int, error) {
	cut := map[string]int{}
	per := make([]map[string]int64, len(s.families)) // entries per family per capped stream
	for fi, f := range s.families {
		for _, it := range f.shared {
			if it.typ != "stream" {
				continue
			}
			if it.key == EventStream {
				cut[it.key] = o.since(n, o.Retention)
				continue
			}
			if capOf(it.key) > 0 {
				if per[fi] == nil {
					per[fi] = map[string]int64{}
				}
				per[fi][it.key]++
			}
		}
	}
	budget := map[string]int64{}
	for _, m := range per {
		for k := range m {
			if _, ok := budget[k]; ok {
				continue
			}
			l, err := rdb.XLen(ctx, k).Result()
			if err != nil {
				return nil, err
			}
			budget[k] = max(0, capOf(k)-l)
			cut[k] = n
		}
	}
	for i := n - 1; i >= 0 && len(budget) > 0; i-- {
		for k, c := range per[i%len(s.families)] {
			if b, ok := budget[k]; ok {
				if b < c {
					delete(budget, k) // full: older clones add nothing
					continue
				}
				budget[k] = b - c
				cut[k] = i
			}
		}
	}
	return cut, nil
}

// age is how long ago clone i of n arrived.
func (o CloneOptions) age(i, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return time.Duration(float64(o.History) * float64(n-1-i) / float64(n))
}

// shift moves a sorted-set score that is a time near the snapshot (epoch
// ms within a day of it) back by the clone's age: a rep's open leads are
// scored by assignment time, reporting's cohort by capture time, a lead's
// decisions by decision time. Job queues keep their due times (only clones
// within a job's lifetime get one; see History).
func (s *Snapshot) shift(key string, score float64, age time.Duration) float64 {
	at := float64(s.At.UnixMilli())
	if age <= 0 || math.Abs(score-at) > float64(24*time.Hour/time.Millisecond) || strings.HasPrefix(key, "lf:{jobs:") {
		return score
	}
	return score - float64(age/time.Millisecond)
}

// since is the first of n clones that arrived within w of now (clone i
// arrived History·(n-1-i)/n ago).
func (o CloneOptions) since(n int, w time.Duration) int {
	if w <= 0 || o.History <= w || n == 0 {
		return 0
	}
	within := int(math.Ceil(float64(n) * float64(w) / float64(o.History)))
	return max(0, n-within)
}

func capOf(key string) int64 {
	for _, c := range cappedStreams {
		if c.re.MatchString(key) {
			return c.cap
		}
	}
	return 0
}

// agg gathers a batch's entries in shared keys, one variadic command per key.
type agg struct {
	order []string
	zadd  map[string][]redis.Z
	sadd  map[string][]any
	hset  map[string][]any
	rpush map[string][]any
	incr  map[[2]string]int64
}

func (a *agg) key(k string) {
	if _, ok := a.zadd[k]; ok {
		return
	}
	if _, ok := a.sadd[k]; ok {
		return
	}
	if _, ok := a.hset[k]; ok {
		return
	}
	if _, ok := a.rpush[k]; ok {
		return
	}
	a.order = append(a.order, k)
}

func (s *Snapshot) writeBatch(ctx context.Context, rdb *redis.Client, g *gen, from, to, n int, o CloneOptions, cut map[string]int, st *CloneStats) error {
	pipe := rdb.Pipeline()
	a := &agg{zadd: map[string][]redis.Z{}, sadd: map[string][]any{}, hset: map[string][]any{}, rpush: map[string][]any{}, incr: map[[2]string]int64{}}
	var cmds int64
	// Stream entries go last, after every key they refer to (reporting
	// reads the event stream live and must find the clone's journey).
	var xadds []*redis.XAddArgs
	for i := from; i < to; i++ {
		f := s.families[i%len(s.families)]
		vals := f.tokens.fresh(g)
		age := o.age(i, n)
		for _, k := range f.keys {
			if k.pttl > 0 && i < o.since(n, time.Duration(k.pttl)*time.Millisecond) {
				continue // expired by now in steady state
			}
			name := k.name.str(vals)
			switch k.typ {
			case "string":
				pipe.Set(ctx, name, k.str.str(vals), time.Duration(k.pttl)*time.Millisecond)
				cmds++
			case "hash", "set", "list":
				args := make([]any, len(k.pairs))
				for j, p := range k.pairs {
					args[j] = p.str(vals)
				}
				switch k.typ {
				case "hash":
					pipe.HSet(ctx, name, args...)
					if m := journeyRe.FindStringSubmatch(name); m != nil {
						a.incr[[2]string{m[1] + "meta", "events"}] += int64(len(args) / 2)
					}
				case "set":
					pipe.SAdd(ctx, name, args...)
				case "list":
					pipe.RPush(ctx, name, args...)
				}
				cmds++
			case "zset":
				zs := make([]redis.Z, len(k.zset))
				for j, z := range k.zset {
					zs[j] = redis.Z{Score: s.shift(name, z.score, age), Member: z.m.str(vals)}
				}
				pipe.ZAdd(ctx, name, zs...)
				cmds++
			case "stream":
				for _, e := range k.xs {
					xadds = append(xadds, &redis.XAddArgs{Stream: name, Values: render(e, vals)})
				}
			}
			if k.pttl > 0 && k.typ != "string" {
				pipe.PExpire(ctx, name, time.Duration(k.pttl)*time.Millisecond)
				cmds++
			}
			st.Keys++
		}
		for _, it := range f.shared {
			if it.window > 0 && i < o.since(n, it.window) {
				continue // done by now in steady state
			}
			switch it.typ {
			case "zset":
				a.key(it.key)
				m := it.a.str(vals)
				a.zadd[it.key] = append(a.zadd[it.key], redis.Z{Score: s.shift(it.key, it.score, age), Member: m})
				if r := repOpenRe.FindStringSubmatch(it.key); r != nil {
					a.incr[[2]string{r[1] + "load", r[2]}]++
				}
			case "set":
				a.key(it.key)
				a.sadd[it.key] = append(a.sadd[it.key], it.a.str(vals))
			case "hash":
				a.key(it.key)
				a.hset[it.key] = append(a.hset[it.key], it.a.str(vals), it.b.str(vals))
			case "list":
				a.key(it.key)
				a.rpush[it.key] = append(a.rpush[it.key], it.a.str(vals))
			case "stream":
				if c, ok := cut[it.key]; ok && i < c {
					continue
				}
				args := &redis.XAddArgs{Stream: it.key, Values: render(it.x, vals)}
				if c := capOf(it.key); c > 0 {
					args.MaxLen, args.Approx = c, true
				}
				xadds = append(xadds, args)
				continue
			}
			st.IndexEntries++
		}
		st.Leads++
	}
	for _, k := range a.order {
		switch {
		case len(a.zadd[k]) > 0:
			pipe.ZAdd(ctx, k, a.zadd[k]...)
		case len(a.sadd[k]) > 0:
			pipe.SAdd(ctx, k, a.sadd[k]...)
		case len(a.hset[k]) > 0:
			pipe.HSet(ctx, k, a.hset[k]...)
		case len(a.rpush[k]) > 0:
			pipe.RPush(ctx, k, a.rpush[k]...)
		}
		cmds++
	}
	incrs := make([][2]string, 0, len(a.incr))
	for k := range a.incr {
		incrs = append(incrs, k)
	}
	sort.Slice(incrs, func(i, j int) bool { return incrs[i][0]+incrs[i][1] < incrs[j][0]+incrs[j][1] })
	for _, k := range incrs {
		pipe.HIncrBy(ctx, k[0], k[1], a.incr[k])
		cmds++
	}
	for _, x := range xadds {
		pipe.XAdd(ctx, x)
		cmds++
	}
	st.StreamEntries += int64(len(xadds))
	st.Commands += cmds
	_, err := pipe.Exec(ctx)
	return err
}

func render(e []tmpl, vals []string) []any {
	out := make([]any, len(e))
	for i, x := range e {
		out[i] = x.str(vals)
	}
	return out
}
