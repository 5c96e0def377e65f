package seed

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// value is one key read back: its type, TTL and content.
type value struct {
	name string
	typ  string
	pttl int64 // ms; <= 0: none
	str  string
	hash map[string]string
	set  []string
	zset []redis.Z
	list []string
	xs   []redis.XMessage
}

// texts are every string of v (for finding ids).
func (v *value) texts() []string {
	out := []string{v.str}
	for f, x := range v.hash {
		out = append(out, f, x)
	}
	out = append(out, v.set...)
	for _, z := range v.zset {
		out = append(out, z.Member.(string))
	}
	out = append(out, v.list...)
	for _, m := range v.xs {
		for f, x := range m.Values {
			out = append(out, f, fmt.Sprint(x))
		}
	}
	return out
}

// A family is one template lead: its tokens and the keys that belong to it
// alone (their names contain one of its tokens), compiled.
type family struct {
	lead   string
	tokens *tokenSet
	keys   []famKey
	shared []sharedItem // its entries in shared keys (indexes, queues, streams)
}

type famKey struct {
	name  tmpl
	typ   string
	pttl  int64 // ms; also the key's window (see sharedItem.window)
	str   tmpl
	pairs []tmpl // hash: field, value, …; set, list: members
	zset  []zmember
	xs    [][]tmpl // stream entries: field, value, …
}

type zmember struct {
	m     tmpl
	score float64
}

// sharedItem is a template's entry in a key other leads share: a sorted-set
// or set member, a hash field, a list element or a stream entry.
type sharedItem struct {
	key   string
	typ   string
	a, b  tmpl // member / field, value
	score float64
	x     []tmpl // stream entry: field, value, …
	// window is how long such an entry lives in steady state (0: for
	// ever): a job queue entry until its job is due. Clone writes it only
	// for the clones that arrived within it (CloneOptions.History).
	window time.Duration
}

// Snapshot is the template store, read and compiled.
type Snapshot struct {
	// At is when the store was read: sorted-set scores within a day of it
	// are times (assigned at, captured at, decided at), which Clone moves
	// back by each clone's age.
	At       time.Time
	Keys     int // keys read
	families []*family
	// Shared keys with entries of the templates (for the report).
	SharedKeys int
	// Skipped names keys that two templates both claimed (left out).
	Skipped []string
}

// Templates is the number of template leads.
func (s *Snapshot) Templates() int { return len(s.families) }

var captureLeadRe = regexp.MustCompile(`^lf:capture:\{lead:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}$`)

// maxSnapshotKeys bounds the template store: the snapshot reads every key.
const maxSnapshotKeys = 200_000

// Read reads every key of the store (SCAN) and compiles one family per
// stored capture lead.
func Read(ctx context.Context, rdb *redis.Client) (*Snapshot, error) {
	n, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return nil, err
	}
	if n > maxSnapshotKeys {
		return nil, fmt.Errorf("the store holds %d keys: seed reads the template journeys' keys and expects a small store (at most %d); seed a fresh store", n, maxSnapshotKeys)
	}
	var names []string
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		names = append(names, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	sort.Strings(names)
	vals, err := readAll(ctx, rdb, names)
	if err != nil {
		return nil, err
	}
	return compile(vals), nil
}

func readAll(ctx context.Context, rdb *redis.Client, names []string) ([]*value, error) {
	var out []*value
	for from := 0; from < len(names); from += 500 {
		chunk := names[from:min(from+500, len(names))]
		pipe := rdb.Pipeline()
		types := make([]*redis.StatusCmd, len(chunk))
		ttls := make([]*redis.DurationCmd, len(chunk))
		for i, k := range chunk {
			types[i] = pipe.Type(ctx, k)
			ttls[i] = pipe.PTTL(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
		pipe = rdb.Pipeline()
		cmds := make([]redis.Cmder, len(chunk))
		vs := make([]*value, len(chunk))
		for i, k := range chunk {
			v := &value{name: k, typ: types[i].Val()}
			if d := ttls[i].Val(); d > 0 {
				v.pttl = d.Milliseconds()
			}
			vs[i] = v
			switch v.typ {
			case "string":
				cmds[i] = pipe.Get(ctx, k)
			case "hash":
				cmds[i] = pipe.HGetAll(ctx, k)
			case "set":
				cmds[i] = pipe.SMembers(ctx, k)
			case "zset":
				cmds[i] = pipe.ZRangeWithScores(ctx, k, 0, -1)
			case "list":
				cmds[i] = pipe.LRange(ctx, k, 0, -1)
			case "stream":
				cmds[i] = pipe.XRange(ctx, k, "-", "+")
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, err
		}
		for i, v := range vs {
			switch c := cmds[i].(type) {
			case *redis.StringCmd:
				v.str = c.Val()
			case *redis.MapStringStringCmd:
				v.hash = c.Val()
			case *redis.StringSliceCmd:
				if v.typ == "set" {
					v.set = c.Val()
					sort.Strings(v.set)
				} else {
					v.list = c.Val()
				}
			case *redis.ZSliceCmd:
				v.zset = c.Val()
			case *redis.XMessageSliceCmd:
				v.xs = c.Val()
			default:
				continue // gone meanwhile, or a type seed does not know
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// compile builds the families. A family starts from a capture lead id and
// takes every key whose name contains one of its tokens; an id found in
// those keys (names, fields, members, values) that itself names keys becomes
// a token of the family too (a deal id, a decision id, the identity and
// idempotency hashes), until nothing is added. Every other key is shared:
// its entries that mention a family's token are that family's shared items.
func compile(vals []*value) *Snapshot {
	s := &Snapshot{Keys: len(vals), At: time.Now()}
	byName := map[string]int{}
	named := map[string][]int{} // id → keys whose name contains it
	leads := map[string]bool{}
	var leadOrder []string
	for i, v := range vals {
		byName[v.name] = i
		for _, id := range ids(v.name) {
			named[id] = append(named[id], i)
		}
		if m := captureLeadRe.FindStringSubmatch(v.name); m != nil {
			leads[m[1]] = true
			leadOrder = append(leadOrder, m[1])
		}
	}
	owner := make([]int, len(vals)) // family index + 1; 0 = shared
	conflict := map[int]bool{}
	var fams []*family
	var famVals [][]int
	for _, lead := range leadOrder {
		f := &family{lead: lead, tokens: newTokenSet()}
		fi := len(fams) + 1
		var mine []int
		queue := []string{lead}
		f.tokens.add(token{old: lead, kind: tokUUID})
		for len(queue) > 0 {
			t := queue[0]
			queue = queue[1:]
			for _, k := range named[t] {
				switch owner[k] {
				case fi:
					continue
				case 0:
				default:
					conflict[k] = true
					continue
				}
				owner[k] = fi
				mine = append(mine, k)
				for _, txt := range append(vals[k].texts(), vals[k].name) {
					for _, id := range ids(txt) {
						if _, ok := f.tokens.index[id]; ok || len(named[id]) == 0 || (leads[id] && id != lead) {
							continue
						}
						kind := tokUUID
						if len(id) == 64 {
							kind = tokHex64
						}
						f.tokens.add(token{old: id, kind: kind})
						queue = append(queue, id)
					}
				}
			}
		}
		fams = append(fams, f)
		famVals = append(famVals, mine)
	}
	for k := range conflict {
		s.Skipped = append(s.Skipped, vals[k].name)
		owner[k] = -1
	}
	sort.Strings(s.Skipped)
	// Compile each family's own keys.
	for fi, f := range fams {
		for _, k := range famVals[fi] {
			if owner[k] != fi+1 {
				continue
			}
			f.keys = append(f.keys, compileKey(f.tokens, vals[k]))
		}
	}
	// Shared keys: find each entry's family by the ids it mentions.
	tokOwner := map[string]int{}
	for fi, f := range fams {
		for _, t := range f.tokens.list {
			if t.kind != tokB64 {
				tokOwner[t.old] = fi
			}
		}
	}
	famOf := func(texts ...string) *family {
		for _, txt := range texts {
			for _, id := range ids(txt) {
				if fi, ok := tokOwner[id]; ok {
					return fams[fi]
				}
			}
		}
		return nil
	}
	for k, v := range vals {
		if owner[k] != 0 {
			continue
		}
		used := false
		add := func(f *family, it sharedItem) {
			it.key, it.typ = v.name, v.typ
			f.shared = append(f.shared, it)
			used = true
		}
		switch v.typ {
		case "hash":
			fields := make([]string, 0, len(v.hash))
			for fld := range v.hash {
				fields = append(fields, fld)
			}
			sort.Strings(fields)
			for _, fld := range fields {
				if f := famOf(fld, v.hash[fld]); f != nil {
					add(f, sharedItem{a: f.tokens.compile(fld), b: f.tokens.compile(v.hash[fld])})
				}
			}
		case "set":
			for _, m := range v.set {
				if f := famOf(m); f != nil {
					add(f, sharedItem{a: f.tokens.compile(m)})
				}
			}
		case "zset":
			for _, z := range v.zset {
				m := z.Member.(string)
				if f := famOf(m); f != nil {
					add(f, sharedItem{a: f.tokens.compile(m), score: z.Score})
				}
			}
		case "list":
			for _, m := range v.list {
				if f := famOf(m); f != nil {
					add(f, sharedItem{a: f.tokens.compile(m)})
				}
			}
		case "stream":
			for _, m := range v.xs {
				fv := streamFields(m)
				if f := famOf(fv...); f != nil {
					it := sharedItem{}
					for _, x := range fv {
						it.x = append(it.x, f.tokens.compile(x))
					}
					add(f, it)
				}
			}
		}
		if used {
			s.SharedKeys++
		}
	}
	// A job queue entry lives until its job is due: the queue's window is
	// its latest due time from now.
	window := map[string]time.Duration{} // "lf:{jobs:<q>}:" → window
	nowMs := float64(time.Now().UnixMilli())
	for _, v := range vals {
		if m := jobsDueRe.FindStringSubmatch(v.name); m != nil {
			for _, z := range v.zset {
				window[m[1]] = max(window[m[1]], time.Duration(z.Score-nowMs)*time.Millisecond, time.Millisecond)
			}
		}
	}
	for _, f := range fams {
		for i, it := range f.shared {
			for prefix, w := range window {
				if strings.HasPrefix(it.key, prefix) {
					f.shared[i].window = w
				}
			}
		}
	}
	s.families = fams
	return s
}

var jobsDueRe = regexp.MustCompile(`^(lf:\{jobs:[^}]*\}:)due$`)

// streamFields are an entry's field/value pairs, fields sorted.
func streamFields(m redis.XMessage) []string {
	fields := make([]string, 0, len(m.Values))
	for f := range m.Values {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	out := make([]string, 0, 2*len(fields))
	for _, f := range fields {
		out = append(out, f, fmt.Sprint(m.Values[f]))
	}
	return out
}

func compileKey(ts *tokenSet, v *value) famKey {
	k := famKey{name: ts.compile(v.name), typ: v.typ, pttl: v.pttl}
	switch v.typ {
	case "string":
		k.str = ts.compile(v.str)
	case "hash":
		fields := make([]string, 0, len(v.hash))
		for f := range v.hash {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		for _, f := range fields {
			k.pairs = append(k.pairs, ts.compile(f), ts.compile(v.hash[f]))
		}
	case "set":
		for _, m := range v.set {
			k.pairs = append(k.pairs, ts.compile(m))
		}
	case "list":
		for _, m := range v.list {
			k.pairs = append(k.pairs, ts.compile(m))
		}
	case "zset":
		for _, z := range v.zset {
			k.zset = append(k.zset, zmember{m: ts.compile(z.Member.(string)), score: z.Score})
		}
	case "stream":
		for _, m := range v.xs {
			var e []tmpl
			for _, x := range streamFields(m) {
				e = append(e, ts.compile(x))
			}
			k.xs = append(k.xs, e)
		}
	}
	return k
}
