package fault

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/leadflow/leadflow/cmd/internal/apply"
	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/reporting/consumer"
	rstore "github.com/leadflow/leadflow/services/reporting/store"
)

func dialApplied(t *testing.T, addrs client.Addrs, applyCfg bool) *client.Clients {
	t.Helper()
	c, err := client.Dial(addrs, platform.DevToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if applyCfg {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := apply.ApplyText(ctx, c, load.SetupConfig); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// Fault 7: SIGTERM under load: health flips first, in-flight calls finish,
// no failed call that the client would not retry (only Unavailable); every
// lead answered OK is routed once the suite is back.
func TestSIGTERMUnderLoad(t *testing.T) {
	r := platformtest.StartRedis(t)
	ch := startChild(t, r.URL())
	c := dialApplied(t, ch.addrs, true)

	// Watch capture's health as a load balancer would.
	hconn, err := client.DialOne(ch.addrs.Capture, platform.DevToken)
	if err != nil {
		t.Fatal(err)
	}
	defer hconn.Close()
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	flipped := make(chan time.Time, 1)
	stream, err := healthpb.NewHealthClient(hconn).Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			if m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				flipped <- time.Now()
				wcancel() // a balancer stops watching a draining backend
				return
			}
		}
	}()

	d := drive(c, "sigterm", 8, 10*time.Second, 0)
	time.Sleep(2 * time.Second)
	sigAt := time.Now()
	if err := ch.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exitErr := ch.wait(t, 30*time.Second)
	exitAt := time.Now()
	time.Sleep(200 * time.Millisecond)
	rs := d.Stop()
	if exitErr != nil {
		t.Errorf("suite exited with %v after SIGTERM, want 0", exitErr)
	}
	var flipAt time.Time
	select {
	case flipAt = <-flipped:
	default:
		t.Error("health never reported NOT_SERVING before the server went away")
	}
	var inflight, inflightOK, refused int
	var firstRefused time.Time
	for _, res := range rs {
		switch res.code {
		case codes.OK, codes.Unavailable:
		default:
			t.Errorf("a call failed with %s: a client would not retry it", res.code)
		}
		if res.at.Before(sigAt) && res.end.After(sigAt) {
			inflight++
			if res.code == codes.OK {
				inflightOK++
			}
		}
		if res.code == codes.Unavailable {
			refused++
			if firstRefused.IsZero() || res.end.Before(firstRefused) {
				firstRefused = res.end
			}
		}
	}
	if !flipAt.IsZero() && !firstRefused.IsZero() && firstRefused.Before(flipAt) {
		t.Errorf("a call was refused (%s) before health flipped (%s)", firstRefused.Format(time.StampMicro), flipAt.Format(time.StampMicro))
	}
	ids, dups := okIDs(rs)

	// Back up: every lead answered OK is there and routed.
	ch2 := startChild(t, r.URL())
	c2 := dialApplied(t, ch2.addrs, false)
	got := routed(c2, ids, 60*time.Second)
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	dups += extraLeads(dctx, t, r.Client(), "sigterm")
	dead, _ := load.DeadLetters(dctx, r.Client())
	t.Logf("SIGTERM under load: %d calls (%s); health flipped %s after the signal, first call refused %s after the flip; %d in flight at the signal, %d of them OK; exit %s after the signal; %d leads answered OK, %d routed after restart, duplicates %d, dead letters %d",
		len(rs), codeCounts(rs), flipAt.Sub(sigAt).Round(time.Microsecond), firstRefused.Sub(flipAt).Round(time.Millisecond), inflight, inflightOK, exitAt.Sub(sigAt).Round(time.Millisecond), len(ids), got, dups, dead)
	if got != len(ids) || dups != 0 || dead != 0 {
		t.Errorf("conservation: %d answered OK, %d routed, duplicates %d, dead letters %d", len(ids), got, dups, dead)
	}
}

// Fault 3: the process running routing and reporting SIGKILLed while they
// hold work they have read but not acknowledged (hand-offs claimed under a
// lease, events read from the stream): after a restart the work is claimed
// back and done exactly once in effect: every lead has one assignment, and
// no lead's journey in reporting repeats an event.
func TestKilledBetweenReadAndAck(t *testing.T) {
	r := platformtest.StartRedis(t, platformtest.WithAOF())
	ch := startChild(t, r.URL())
	c := dialApplied(t, ch.addrs, true)

	d := drive(c, "kill-ack", 8, 5*time.Second, 0)
	time.Sleep(3 * time.Second)
	_ = ch.cmd.Process.Signal(syscall.SIGKILL)
	_ = ch.wait(t, 10*time.Second)
	rs := d.Stop()
	ids, dups := okIDs(rs)
	// Work left behind by the killed process: hand-off jobs waiting or
	// claimed (due sets) and stream entries read but not acknowledged.
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	pendingJobs, pendingEvents := leftBehind(pctx, t, r.Client())

	ch2 := startChild(t, r.URL())
	c2 := dialApplied(t, ch2.addrs, false)
	restartAt := time.Now()
	got := routed(c2, ids, 90*time.Second)
	recovery := time.Since(restartAt)

	// Exactly once in effect: one assignment per lead across the reps.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	twice, none := assignmentsPerLead(ctx, t, c2, ids)
	// Reporting: no repeated event in a sample of journeys.
	var repeated, sampled int
	for i, id := range ids {
		if i%10 != 0 {
			continue
		}
		j, err := c2.Reporting.GetLeadJourney(ctx, &reportingv1.GetLeadJourneyRequest{LeadId: id})
		if err != nil {
			continue
		}
		sampled++
		seen := map[string]bool{}
		for _, s := range j.GetSteps() {
			if seen[s.GetEvent().GetId()] {
				repeated++
			}
			seen[s.GetEvent().GetId()] = true
		}
	}
	// A journey is keyed by event id, so it cannot show an event applied
	// twice; the serving generation's count of applied events can. Once
	// reporting has read and acknowledged every event, that count and the
	// funnel must equal a replay of the stream into a fresh generation (the
	// stream is not trimmed here).
	live, replayed := reportingAndReplay(ctx, t, r.Client(), c2)
	dups += extraLeads(ctx, t, r.Client(), "kill-ack")
	dead, _ := load.DeadLetters(ctx, r.Client())
	t.Logf("SIGKILL between read and ack: left behind %d hand-off jobs and %d read-but-unacknowledged events", pendingJobs, pendingEvents)
	t.Logf("SIGKILL between read and ack: %d calls (%s); %d leads answered OK, %d routed after restart (in %s), assigned twice %d, not in any rep's list %d, journeys sampled %d with repeated events %d, duplicates %d, dead letters %d; events applied live %d, by a replay %d",
		len(rs), codeCounts(rs), len(ids), got, recovery.Round(time.Millisecond), twice, none, sampled, repeated, dups, dead, live.applied, replayed.applied)
	if got != len(ids) || twice != 0 || repeated != 0 || dups != 0 || dead != 0 {
		t.Errorf("exactly once in effect violated: %d answered OK, %d routed, twice %d, repeated events %d, duplicates %d, dead letters %d", len(ids), got, twice, repeated, dups, dead)
	}
	if live.applied != replayed.applied || !proto.Equal(live.funnel, replayed.funnel) {
		t.Errorf("reporting's live aggregates differ from a replay of the stream (an event applied twice, or lost): events applied %d, replayed %d; funnel %v, replayed %v",
			live.applied, replayed.applied, live.funnel, replayed.funnel)
	}
}

// aggregates are what reporting serves: the funnel total of the last day
// and the count of events applied to the serving generation.
type aggregates struct {
	funnel  *reportingv1.FunnelRow
	applied int64
}

// reportingAndReplay waits until reporting has read and acknowledged every
// event of the stream, then returns its aggregates as served, and as
// served after RebuildAggregates replayed the stream. Should an event
// arrive meanwhile (the stream grew), it tries again.
func reportingAndReplay(ctx context.Context, t *testing.T, rdb *redis.Client, c *client.Clients) (live, replayed aggregates) {
	t.Helper()
	now := time.Now()
	per := &reportingv1.Period{From: timestamppb.New(now.Add(-24 * time.Hour)), To: timestamppb.New(now.Add(time.Hour))}
	funnel := func() *reportingv1.FunnelRow {
		f, err := c.Reporting.GetFunnel(ctx, &reportingv1.GetFunnelRequest{Period: per})
		if err != nil {
			t.Fatal(err)
		}
		return f.GetTotal()
	}
	for attempt := 0; ; attempt++ {
		n := caughtUp(ctx, t, rdb)
		live.funnel = funnel()
		gen, err := rdb.Get(ctx, rstore.Prefix+"gen").Int64()
		if err != nil {
			t.Fatal(err)
		}
		if live.applied, err = rdb.HGet(ctx, rstore.GenPrefix(gen)+"meta", "events").Int64(); err != nil {
			t.Fatal(err)
		}
		res, err := c.Reporting.RebuildAggregates(ctx, &reportingv1.RebuildAggregatesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		replayed = aggregates{funnel: funnel(), applied: res.GetEventsApplied()}
		if after, err := rdb.XLen(ctx, events.StreamKey).Result(); err != nil || after == n || attempt == 4 {
			return live, replayed
		}
	}
}

// caughtUp waits until reporting's consumer group has been delivered every
// entry of the event stream and acknowledged it; it returns the stream's
// length then.
func caughtUp(ctx context.Context, t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	for {
		n, err := rdb.XLen(ctx, events.StreamKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		info, err := rdb.XInfoStream(ctx, events.StreamKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		groups, err := rdb.XInfoGroups(ctx, events.StreamKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups {
			if g.Name == consumer.Group && g.Pending == 0 && g.LastDeliveredID == info.LastGeneratedID {
				return n
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("reporting did not catch up with the event stream: %v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// leftBehind counts jobs in every lf:{jobs:*}:due set and the pending
// (delivered, unacknowledged) entries of every consumer group of the event
// stream.
func leftBehind(ctx context.Context, t *testing.T, rdb *redis.Client) (jobs, unacked int64) {
	t.Helper()
	iter := rdb.Scan(ctx, 0, "lf:{jobs:*}:due", 100).Iterator()
	for iter.Next(ctx) {
		n, _ := rdb.ZCard(ctx, iter.Val()).Result()
		jobs += n
	}
	groups, _ := rdb.XInfoGroups(ctx, events.StreamKey).Result()
	for _, g := range groups {
		unacked += g.Pending
	}
	return jobs, unacked
}
