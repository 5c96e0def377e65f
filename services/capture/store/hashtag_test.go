package store

import "testing"

// hashTag must agree with Redis Cluster's key hashing rule: the text between
// the first '{' and the next '}' when not empty, else the whole key.
func TestHashTagFollowsTheClusterRule(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"lf:capture:{lead:1}", "lead:1"},
		{"lf:capture:{org:acme.io}:leads", "org:acme.io"},
		{"lf:{events}:stream", "events"},
		{"plain", "plain"},
		{"a{}b{c}", "a{}b{c}"}, // empty first tag: the whole key
		{"a{b{c}d}", "b{c"},    // first '{', then the next '}'
		{"a{b", "a{b"},
		{"a}b{c}", "c"},
	} {
		if got := hashTag(c.key); got != c.want {
			t.Errorf("hashTag(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}
