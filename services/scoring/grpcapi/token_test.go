package grpcapi

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestPageTokenRoundTrip(t *testing.T) {
	for _, n := range []int64{1, 50, 1 << 40} {
		got, err := parseToken(pageToken(n))
		if err != nil || got != n {
			t.Fatalf("round trip %d: %d %v", n, got, err)
		}
	}
	if pageToken(0) != "" {
		t.Fatal("end of list must have an empty token")
	}
	for _, bad := range []string{"x", "bzE6LTE", "bzE6YWJj", "!!"} {
		if _, err := parseToken(bad); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("token %q: %v", bad, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(pageToken(10))
	f.Add("")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, tok string) {
		n, err := parseToken(tok)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("bad token gave %v", err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("negative offset %d", n)
		}
		if tok != "" && pageToken(n) == "" && n != 0 {
			t.Fatal("valid token did not round-trip")
		}
	})
}
