package load

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// EventsBehind counts what a consumer group has not read and what it read
// without acknowledging; Settle waits until both are zero.
func TestEventsBehindAndSettle(t *testing.T) {
	rdb := platformtest.StartRedis(t).Client()
	ctx := context.Background()
	if n, err := EventsBehind(ctx, rdb); err != nil || n != 0 {
		t.Fatalf("before the stream exists: %d, %v; want 0", n, err)
	}
	if err := rdb.XGroupCreateMkStream(ctx, events.StreamKey, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: events.StreamKey, Values: []any{"k", "v"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := EventsBehind(ctx, rdb); n != 5 {
		t.Fatalf("5 entries unread: EventsBehind %d", n)
	}
	read, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{events.StreamKey, ">"}, Count: 3}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := EventsBehind(ctx, rdb); n != 5 {
		t.Fatalf("3 read and not acknowledged, 2 unread: EventsBehind %d, want 5", n)
	}
	if _, err := Settle(ctx, rdb, 100*time.Millisecond); err == nil {
		t.Fatal("Settle returned while the group was behind")
	}
	for _, m := range read[0].Messages {
		rdb.XAck(ctx, events.StreamKey, "g", m.ID)
	}
	if n, _ := EventsBehind(ctx, rdb); n != 2 {
		t.Fatalf("3 acknowledged: EventsBehind %d, want 2", n)
	}
	go func() {
		rest, _ := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{events.StreamKey, ">"}}).Result()
		for _, m := range rest[0].Messages {
			rdb.XAck(ctx, events.StreamKey, "g", m.ID)
		}
	}()
	if _, err := Settle(ctx, rdb, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n, _ := EventsBehind(ctx, rdb); n != 0 {
		t.Fatalf("settled with %d events behind", n)
	}
}
