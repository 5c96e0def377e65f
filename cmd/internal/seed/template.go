package seed

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"sort"
	"strings"
)

// A token is an id that is fresh in every clone: the lead id, and every
// other id of the lead's that names keys of its own (a deal, a routing
// decision, an identity or idempotency hash). b64 tokens are derived: a
// base64 string whose decoded bytes embed plain tokens (scoring keeps the
// capture profile as base64 protobuf inside its JSON record); each clone
// gets the base64 of its own rewritten bytes.
type token struct {
	old  string
	kind tokenKind
	dec  tmpl // b64 only: the decoded bytes, over the plain tokens
}

type tokenKind int

const (
	tokUUID  tokenKind = iota // a fresh UUIDv7
	tokHex64                  // a fresh random 256-bit hex string
	tokB64                    // derived, see token
)

var (
	uuidRe  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	hex64Re = regexp.MustCompile(`[0-9a-f]{64}`)
	b64Re   = regexp.MustCompile(`[A-Za-z0-9+/]{24,}={0,2}`)
)

// ids returns the UUIDs and 256-bit hex strings in s.
func ids(s string) []string {
	out := uuidRe.FindAllString(s, -1)
	return append(out, hex64Re.FindAllString(s, -1)...)
}

// tmpl is a string split at token occurrences: literal parts and token
// references, so a clone is rendered by concatenation.
type tmpl []part

type part struct {
	lit string
	tok int // -1: lit
}

// render appends t with the clone's token values to buf.
func (t tmpl) render(buf []byte, vals []string) []byte {
	for _, p := range t {
		if p.tok < 0 {
			buf = append(buf, p.lit...)
		} else {
			buf = append(buf, vals[p.tok]...)
		}
	}
	return buf
}

// str renders t as a string.
func (t tmpl) str(vals []string) string {
	if len(t) == 1 && t[0].tok < 0 {
		return t[0].lit
	}
	return string(t.render(nil, vals))
}

// tokenSet is a family's tokens (index 0 is the lead id).
type tokenSet struct {
	list  []token
	index map[string]int
}

func newTokenSet() *tokenSet { return &tokenSet{index: map[string]int{}} }

func (ts *tokenSet) add(t token) int {
	if i, ok := ts.index[t.old]; ok {
		return i
	}
	ts.list = append(ts.list, t)
	ts.index[t.old] = len(ts.list) - 1
	return len(ts.list) - 1
}

// compile splits s at the occurrences of the set's tokens. Base64 runs whose
// decoded bytes contain a plain token become derived tokens first.
func (ts *tokenSet) compile(s string) tmpl {
	for _, run := range b64Re.FindAllString(s, -1) {
		if _, ok := ts.index[run]; ok || len(run)%4 != 0 {
			continue
		}
		dec, err := base64.StdEncoding.DecodeString(run)
		if err != nil || !ts.containsPlain(dec) {
			continue
		}
		ts.add(token{old: run, kind: tokB64, dec: ts.split(string(dec), true)})
	}
	return ts.split(s, false)
}

func (ts *tokenSet) containsPlain(b []byte) bool {
	for _, t := range ts.list {
		if t.kind != tokB64 && bytes.Contains(b, []byte(t.old)) {
			return true
		}
	}
	return false
}

// split cuts s at token occurrences (plain tokens only if plainOnly);
// overlapping occurrences: the earlier, then the longer, wins.
func (ts *tokenSet) split(s string, plainOnly bool) tmpl {
	type occ struct{ pos, n, tok int }
	var occs []occ
	for i, t := range ts.list {
		if plainOnly && t.kind == tokB64 {
			continue
		}
		for from := 0; ; {
			j := strings.Index(s[from:], t.old)
			if j < 0 {
				break
			}
			occs = append(occs, occ{from + j, len(t.old), i})
			from += j + len(t.old)
		}
	}
	if len(occs) == 0 {
		return tmpl{{lit: s, tok: -1}}
	}
	sort.Slice(occs, func(a, b int) bool {
		if occs[a].pos != occs[b].pos {
			return occs[a].pos < occs[b].pos
		}
		return occs[a].n > occs[b].n
	})
	var out tmpl
	at := 0
	for _, o := range occs {
		if o.pos < at {
			continue
		}
		if o.pos > at {
			out = append(out, part{lit: s[at:o.pos], tok: -1})
		}
		out = append(out, part{tok: o.tok})
		at = o.pos + o.n
	}
	if at < len(s) {
		out = append(out, part{lit: s[at:], tok: -1})
	}
	return out
}

// fresh returns new values for every token of the set: plain tokens first,
// then the derived base64 ones, which are rendered from them.
func (ts *tokenSet) fresh(g *gen) []string {
	vals := make([]string, len(ts.list))
	for i, t := range ts.list {
		switch t.kind {
		case tokUUID:
			vals[i] = g.uuidV7()
		case tokHex64:
			vals[i] = g.hex64()
		}
	}
	for i, t := range ts.list {
		if t.kind == tokB64 {
			vals[i] = base64.StdEncoding.EncodeToString(t.dec.render(nil, vals))
		}
	}
	return vals
}
