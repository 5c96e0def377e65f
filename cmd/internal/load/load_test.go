package load_test

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
	"github.com/leadflow/leadflow/cmd/internal/suitetest"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// The load tool against the suite booted in this process (as leadflow dev
// boots it): a bounded run whose conservation check holds. With
// -cpuprofile this is also how the suite's hot spots are found (see
// the README (Performance and reliability)).
func TestRunAgainstSuite(t *testing.T) {
	r := platformtest.StartRedis(t)
	s, _ := suitetest.Boot(t, r.URL(), suitetest.Options{})
	var log bytes.Buffer
	d := 3 * time.Second
	if testing.Short() {
		d = time.Second
	}
	cfg := load.Config{
		Addrs: client.FromPeers(s.Peers()), Token: platform.DevToken, RedisURL: r.URL(),
		Concurrency: 16, Duration: d, Further: 0.1, CloseDeals: true, Baseline: 500 * time.Millisecond,
		InboxView: routingv1.InboxView_INBOX_VIEW_BASIC, // leadflow load's default
	}
	// The tool's own profile (--cpuprofile), unless go test is profiling:
	// a process has one CPU profile at a time.
	var prof bytes.Buffer
	if f := flag.Lookup("test.cpuprofile"); f == nil || f.Value.String() == "" {
		cfg.CPUProfile = &prof
	}
	rep, err := load.Run(context.Background(), cfg, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if cfg.CPUProfile != nil && !bytes.HasPrefix(prof.Bytes(), []byte{0x1f, 0x8b}) {
		t.Errorf("--cpuprofile wrote %d bytes, not a gzipped profile", prof.Len())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log("\n" + out.String())
	if !rep.OK() {
		t.Errorf("conservation check failed")
	}
	// Every lead is assigned (20 reps with room for all): journeys learn it
	// from the reps' inbox streams (BASIC items), not by polling. A journey whose item
	// comes after the grace (a slow -race run) is polled, so "most", not all.
	if rep.InboxStreams != 20 || rep.InboxView != routingv1.InboxView_INBOX_VIEW_BASIC || rep.ByInbox == 0 || rep.ByInbox < 9*rep.ByPoll || rep.ByInbox+rep.ByPoll != int64(rep.EndToEnd.N()) {
		t.Errorf("inbox path not used: %d streams (view %v), %d observed through the inbox, %d by polling, %d routed", rep.InboxStreams, rep.InboxView, rep.ByInbox, rep.ByPoll, rep.EndToEnd.N())
	}
	// The further share goes on to a won deal: one per QUALIFIED lead.
	if rep.Further == 0 || rep.Closed != rep.Further {
		t.Errorf("deals closed %d, taken further %d", rep.Closed, rep.Further)
	}
	if rep.EchoRate <= 0 || rep.RedisRate <= 0 || rep.CommandsPerLead <= 0 || rep.RoundTripsPerLead <= 0 {
		t.Errorf("baselines or round trips missing: echo %.0f/s, redis %.0f/s, commands per lead %.1f, round trips per lead %.1f",
			rep.EchoRate, rep.RedisRate, rep.CommandsPerLead, rep.RoundTripsPerLead)
	}
	// The CPU split is read (in this test the suite runs inside the load
	// process, so "load tool" holds it and the rest is near zero).
	if rep.CPU.Total <= 0 || rep.CPU.Redis <= 0 || rep.CPU.Load <= 0 || rep.CPU.Budget <= 0 {
		t.Errorf("CPU per lead missing: %+v", rep.CPU)
	}
	if rep.DeadLetters != 0 {
		t.Errorf("dead letters %d: %s", rep.DeadLetters, rep.DeadLetterNote)
	}

	// A hand-off capture cannot deliver (an undecodable payload) is counted
	// through the API, naming its service and queue.
	ctx := context.Background()
	if _, err := jobs.New(r.Client(), "capture-to-scoring", jobs.Options{}).Schedule(ctx, jobs.Job{ID: "upsert:broken:1", Payload: []byte{0xff}}); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.FromPeers(s.Peers()), platform.DevToken)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n int64
	var note string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n, note = load.DeadLettersAPI(ctx, c); n != 0 {
			break
		}
	}
	if n != 1 || !strings.Contains(note, "capture/capture-to-scoring=1") {
		t.Errorf("dead letters through the API = %d (%s), want 1 in capture/capture-to-scoring", n, note)
	}
}

// --targets: the second run is paced at half the journeys/s the first
// reached, with leads of its own, and both keep the conservation check.
func TestRunTargetsPacesTheSecondRunAtHalfTheFirst(t *testing.T) {
	r := platformtest.StartRedis(t)
	s, _ := suitetest.Boot(t, r.URL(), suitetest.Options{})
	cfg := load.Config{
		Addrs: client.FromPeers(s.Peers()), Token: platform.DevToken, RedisURL: r.URL(), RunID: "targets",
		Concurrency: 8, Duration: time.Second, Baseline: 200 * time.Millisecond,
	}
	ctx := context.Background()
	var log bytes.Buffer
	paced := cfg
	paced.Rate = 50
	if _, _, err := load.RunTargets(ctx, paced, &log); err == nil || !strings.Contains(err.Error(), "leave --rate out") {
		t.Fatalf("a paced config was taken for the targets' maximum run: %v", err)
	}
	maximum, half, err := load.RunTargets(ctx, cfg, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if maximum.Rate != 0 || maximum.Sustained <= 0 || half.Rate != maximum.Sustained/2 {
		t.Fatalf("runs at --rate %v (%.1f journeys/s sustained) then --rate %v, want 0 then half", maximum.Rate, maximum.Sustained, half.Rate)
	}
	// The sustained rate counts the wait for the suite to be idle.
	if !maximum.CaughtUp || maximum.Sustained > maximum.Throughput {
		t.Errorf("caught up %v; sustained %.1f journeys/s above the run's own %.1f", maximum.CaughtUp, maximum.Sustained, maximum.Throughput)
	}
	if !maximum.OK() || !half.OK() || half.Accepted == 0 || half.Duplicates != 0 {
		t.Errorf("conservation: maximum run OK %v, half run OK %v with %d accepted, %d duplicates", maximum.OK(), half.OK(), half.Accepted, half.Duplicates)
	}
	var out bytes.Buffer
	load.PrintTargets(&out, maximum, half)
	if !strings.Contains(out.String(), "SubmitLead p99 < 25 ms") || !strings.Contains(out.String(), "throughput ≥ 1/30 of the echo") {
		t.Errorf("the pair's verdict lacks a target:\n%s", out.String())
	}
}

func TestCheckAddrsRefusesRemote(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"127.0.0.1:7001", false, true},
		{"localhost:7001", false, true},
		{"[::1]:7001", false, true},
		{"redis://127.0.0.1:6379/0", false, true},
		{"10.0.0.5:7001", false, false},
		{"redis://user:pw@db.example.com:6379/0", false, false},
		{"example.com:7001", false, false},
		{"example.com:7001", true, true},
	} {
		err := load.CheckAddrs([]string{tc.addr}, tc.allow)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddrs(%q, allow=%t) = %v, want ok=%t", tc.addr, tc.allow, err, tc.ok)
		}
	}
}
