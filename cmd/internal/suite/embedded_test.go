package suite

// The embedded server must run every Redis command form the services use,
// including the ones only timers reach (claiming a dead consumer's entries,
// trimming the stream, the consumer-group gauges), which a demo run never
// exercises. The forms below are the services' own calls (see the comments);
// the end-to-end tests cover everything on the journey's path.

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func embedded(t *testing.T) *redis.Client {
	t.Helper()
	e, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	opt, err := redis.ParseURL(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestEmbeddedStreamsAsReportingUsesThem(t *testing.T) {
	ctx := context.Background()
	c := embedded(t)
	const stream, group = "lf:{events}:stream", "reporting"
	if err := c.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 5; i++ {
		id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"e": []byte{byte(i)}}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// A consumer reads and dies without acknowledging.
	got, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "dead", Streams: []string{stream, ">"}, Count: 10}).Result()
	if err != nil || len(got) != 1 || len(got[0].Messages) != 5 {
		t.Fatalf("XREADGROUP = %v, %v", got, err)
	}
	// consumer.go deliveries: XPENDING with range, count and consumer.
	pend, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: group, Start: ids[0], End: ids[4], Count: 10, Consumer: "dead"}).Result()
	if err != nil || len(pend) != 5 || pend[0].RetryCount != 1 {
		t.Fatalf("XPENDING = %v, %v", pend, err)
	}
	// consumer.go ClaimOnce: XAUTOCLAIM from 0-0 with a minimum idle time.
	time.Sleep(20 * time.Millisecond)
	msgs, next, err := c.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: stream, Group: group, MinIdle: 10 * time.Millisecond, Start: "0-0", Count: 10, Consumer: "alive"}).Result()
	if err != nil || len(msgs) != 5 || next != "0-0" {
		t.Fatalf("XAUTOCLAIM = %d messages, next %q, %v", len(msgs), next, err)
	}
	if n, err := c.XAck(ctx, stream, group, ids...).Result(); err != nil || n != 5 {
		t.Fatalf("XACK = %d, %v", n, err)
	}
	// consumer.go / metrics.go: XINFO GROUPS (pending, last delivered id).
	groups, err := c.XInfoGroups(ctx, stream).Result()
	if err != nil || len(groups) != 1 || groups[0].Name != group || groups[0].Pending != 0 || groups[0].LastDeliveredID != ids[4] {
		t.Fatalf("XINFO GROUPS = %+v, %v", groups, err)
	}
	// consumer.go trim: XTRIM MINID ~ with no limit.
	if _, err := c.XTrimMinIDApprox(ctx, stream, ids[3], 0).Result(); err != nil {
		t.Fatalf("XTRIM MINID ~: %v", err)
	}
	if n, err := c.XLen(ctx, stream).Result(); err != nil || n < 2 || n > 5 {
		t.Fatalf("XLEN after trim = %d, %v", n, err)
	}
}

func TestEmbeddedSortedSetsAndStrings(t *testing.T) {
	ctx := context.Background()
	c := embedded(t)
	// scoring store: ZADD GT keeps the highest revision.
	for _, rev := range []float64{3, 1, 5} {
		if err := c.ZAddGT(ctx, "z:gt", redis.Z{Score: rev, Member: "lead"}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := c.ZScore(ctx, "z:gt", "lead").Result(); err != nil || s != 5 {
		t.Fatalf("ZADD GT kept %v, %v; want 5", s, err)
	}
	// reporting store: ZRANGE BYSCORE with an exclusive stop.
	c.ZAdd(ctx, "z:score", redis.Z{Score: 100, Member: "a"}, redis.Z{Score: 200, Member: "b"}, redis.Z{Score: 300, Member: "c"})
	ids, err := c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: "z:score", ByScore: true, Start: "100", Stop: "(300"}).Result()
	if err != nil || len(ids) != 2 {
		t.Fatalf("ZRANGE BYSCORE = %v, %v", ids, err)
	}
	// capture store: ZRANGE BYLEX with LIMIT; pipeline store: ZRANGEBYLEX / ZREVRANGEBYLEX with LIMIT.
	c.ZAdd(ctx, "z:lex", redis.Z{Member: "a"}, redis.Z{Member: "b"}, redis.Z{Member: "c"})
	if ids, err := c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: "z:lex", Start: "(a", Stop: "+", ByLex: true, Count: 1}).Result(); err != nil || len(ids) != 1 || ids[0] != "b" {
		t.Fatalf("ZRANGE BYLEX LIMIT = %v, %v", ids, err)
	}
	//lint:ignore SA1019 pipeline's store calls this very form
	if ids, err := c.ZRangeByLex(ctx, "z:lex", &redis.ZRangeBy{Min: "-", Max: "+", Count: 2}).Result(); err != nil || len(ids) != 2 {
		t.Fatalf("ZRANGEBYLEX LIMIT = %v, %v", ids, err)
	}
	//lint:ignore SA1019 pipeline's store calls this very form
	if ids, err := c.ZRevRangeByLex(ctx, "z:lex", &redis.ZRangeBy{Min: "-", Max: "(c", Count: 5}).Result(); err != nil || len(ids) != 2 || ids[0] != "b" {
		t.Fatalf("ZREVRANGEBYLEX LIMIT = %v, %v", ids, err)
	}
	// capture and routing stores: SET NX GET (with and without a TTL); reporting: SET GET.
	if old, err := c.SetArgs(ctx, "k", "v1", redis.SetArgs{Mode: "NX", Get: true, TTL: time.Minute}).Result(); err != redis.Nil || old != "" {
		t.Fatalf("SET NX GET on a new key = %q, %v; want redis.Nil", old, err)
	}
	if old, err := c.SetArgs(ctx, "k", "v2", redis.SetArgs{Mode: "NX", Get: true}).Result(); err != nil || old != "v1" {
		t.Fatalf("SET NX GET on an existing key = %q, %v; want v1", old, err)
	}
	if old, err := c.SetArgs(ctx, "k", "v3", redis.SetArgs{Get: true}).Result(); err != nil || old != "v1" {
		t.Fatalf("SET GET = %q, %v; want v1", old, err)
	}
}

func TestEmbeddedScriptsWithCJSON(t *testing.T) {
	ctx := context.Background()
	c := embedded(t)
	// routing's team script decodes its arguments and encodes its answer
	// with cjson and unpacks argument lists; scripts run as EVALSHA with
	// EVAL on NOSCRIPT (redis.Script).
	s := redis.NewScript(`
local a = cjson.decode(ARGV[1])
local ids = {}
for i, r in ipairs(a.reps) do ids[i] = r end
redis.call('HSET', KEYS[1], unpack({ids[1], 1, ids[2], 2}))
local v = redis.call('HMGET', KEYS[1], unpack(ids))
return cjson.encode({st = 'OK', n = #v, first = v[1], prio = string.format('%.0f', math.max(0, tonumber(a.p)))})
`)
	for i := 0; i < 2; i++ { // the second run is an EVALSHA hit
		out, err := s.Run(ctx, c, []string{"lf:routing:{team:t}:load"}, `{"reps":["r1","r2"],"p":"42.4"}`).Text()
		if err != nil {
			t.Fatalf("script: %v", err)
		}
		if out != `{"first":"1","n":2,"prio":"42","st":"OK"}` && out != `{"st":"OK","n":2,"first":"1","prio":"42"}` {
			t.Fatalf("script answered %s", out)
		}
	}
}

func TestEmbeddedTTLsFollowTheWallClock(t *testing.T) {
	ctx := context.Background()
	c := embedded(t)
	if err := c.Set(ctx, "claim", "x", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Exists(ctx, "claim").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key with a 300ms TTL still exists after 10s: the embedded clock does not move")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
