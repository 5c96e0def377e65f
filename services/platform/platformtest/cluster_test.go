package platformtest

import (
	"context"
	"strings"
	"testing"
)

// The harness builds a real cluster: keys spread over the nodes, a
// multi-key command over two slots is refused with CROSSSLOT, and the same
// command over hash-tagged keys is accepted.
func TestStartRedisClusterIsARealCluster(t *testing.T) {
	c := StartRedisCluster(t)
	ctx := context.Background()
	rdb := c.Client()
	if !strings.HasPrefix(c.URL(), "redis+cluster://127.0.0.1:") || len(c.Addrs()) != 3 {
		t.Fatalf("url %q addrs %v", c.URL(), c.Addrs())
	}
	shards, err := rdb.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	owners := 0
	for _, s := range shards {
		if len(s.Slots) > 0 {
			owners++
		}
	}
	if owners != 3 {
		t.Fatalf("slots owned by %d shards, want 3: %+v", owners, shards)
	}
	err = rdb.MSet(ctx, "a", "1", "b", "2").Err()
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("MSET over two slots: err = %v, want CROSSSLOT", err)
	}
	if err := rdb.MSet(ctx, "{t}a", "1", "{t}b", "2").Err(); err != nil {
		t.Fatalf("MSET over one hash tag: %v", err)
	}
}
