package seed

import (
	"encoding/base64"
	"strings"
	"testing"
)

// A value's ids are replaced in place, also inside base64 (scoring keeps
// capture's protobuf profile as base64 in its JSON record).
func TestCompileRendersFreshIDs(t *testing.T) {
	lead := "01a20cb4-f4ed-781f-a4d5-f9f50e70a528"
	hash := strings.Repeat("ab", 32)
	raw := "\x0a\x24" + lead + "\x12\x03xyz"
	v := `{"lead_id":"` + lead + `","raw":"` + base64.StdEncoding.EncodeToString([]byte(raw)) + `","k":"email:` + hash + `"}`

	ts := newTokenSet()
	ts.add(token{old: lead, kind: tokUUID})
	ts.add(token{old: hash, kind: tokHex64})
	tm := ts.compile(v)
	g := newGen(1)
	vals := ts.fresh(g)
	got := tm.str(vals)

	if strings.Contains(got, lead) || strings.Contains(got, hash) {
		t.Fatalf("template ids left in %s", got)
	}
	if len(vals[0]) != 36 || vals[0][14] != '7' || len(vals[1]) != 64 {
		t.Fatalf("fresh ids %q, %q: want a UUIDv7 and 64 hex digits", vals[0], vals[1])
	}
	want := `{"lead_id":"` + vals[0] + `","raw":"` + base64.StdEncoding.EncodeToString([]byte("\x0a\x24"+vals[0]+"\x12\x03xyz")) + `","k":"email:` + vals[1] + `"}`
	if got != want {
		t.Fatalf("rendered\n%s\nwant\n%s", got, want)
	}
	if again := ts.fresh(g); again[0] == vals[0] || again[1] == vals[1] {
		t.Fatalf("two clones got the same ids")
	}
}
