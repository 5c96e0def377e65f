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
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]bool{}
	for _, s := range slots {
		owners[s.Nodes[0].Addr] = true
	}
	if len(owners) != 3 {
		t.Fatalf("slots owned by %d nodes, want 3: %v", len(owners), slots)
	}
	err = rdb.MSet(ctx, "a", "1", "b", "2").Err()
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("MSET over two slots: err = %v, want CROSSSLOT", err)
	}
	if err := rdb.MSet(ctx, "{t}a", "1", "{t}b", "2").Err(); err != nil {
		t.Fatalf("MSET over one hash tag: %v", err)
	}
}
