package fault

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
	"github.com/leadflow/leadflow/cmd/internal/suitetest"
	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	opsv1 "github.com/leadflow/leadflow/gen/go/leadflow/ops/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// Fault 6: malformed, oversized, missing-deadline and unauthorised requests
// get the right status and change nothing in Redis.
func TestBadInputChangesNothing(t *testing.T) {
	r := platformtest.StartRedis(t)
	s, c := suitetest.Boot(t, r.URL(), suitetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	noToken, err := client.Dial(client.FromPeers(s.Peers()), "")
	if err != nil {
		t.Fatal(err)
	}
	defer noToken.Close()
	badToken, err := client.Dial(client.FromPeers(s.Peers()), "not-a-token")
	if err != nil {
		t.Fatal(err)
	}
	defer badToken.Close()

	good := func() *capturev1.LeadSubmission { return load.Submission("bad-input", 1) }
	badEmail := good()
	badEmail.Contact.Email = "not an e-mail"
	noContact := good()
	noContact.Contact = nil
	huge := good()
	huge.Contact.JobTitle = strings.Repeat("x", 5<<20) // over the 4 MiB message limit

	cases := []struct {
		name string
		call func(ctx context.Context) error
		want codes.Code
	}{
		{"submit without submission", func(ctx context.Context) error {
			_, err := c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{})
			return err
		}, codes.InvalidArgument},
		{"submit with malformed e-mail", func(ctx context.Context) error {
			_, err := c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: badEmail})
			return err
		}, codes.InvalidArgument},
		{"submit without contact", func(ctx context.Context) error {
			_, err := c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: noContact})
			return err
		}, codes.InvalidArgument},
		{"submit with a control character in the idempotency key", func(ctx context.Context) error {
			_, err := c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: good(), IdempotencyKey: "a b\n"})
			return err
		}, codes.InvalidArgument},
		{"oversized submission (5 MiB)", func(ctx context.Context) error {
			_, err := c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: huge})
			return err
		}, codes.ResourceExhausted},
		{"submit without a bearer token", func(ctx context.Context) error {
			_, err := noToken.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: good()})
			return err
		}, codes.Unauthenticated},
		{"submit with an unknown bearer token", func(ctx context.Context) error {
			_, err := badToken.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: good()})
			return err
		}, codes.Unauthenticated},
		{"accept an unknown lead", func(ctx context.Context) error {
			_, err := c.Routing.AcceptLead(ctx, &routingv1.AcceptLeadRequest{LeadId: "0190d4b2-0000-7000-8000-000000000000", RepId: "load-rep-0"})
			return err
		}, codes.NotFound},
		{"accept without a lead id", func(ctx context.Context) error {
			_, err := c.Routing.AcceptLead(ctx, &routingv1.AcceptLeadRequest{RepId: "load-rep-0"})
			return err
		}, codes.InvalidArgument},
		{"record engagement without a signal", func(ctx context.Context) error {
			_, err := c.Capture.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{})
			return err
		}, codes.InvalidArgument},
		{"record engagement of an unknown type", func(ctx context.Context) error {
			_, err := c.Capture.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: &leadv1.EngagementSignal{Id: "s1", Type: leadv1.SignalType(999)}})
			return err
		}, codes.InvalidArgument},
	}

	rdb := r.Client()
	// Let the services' start-up writes settle, then snapshot.
	time.Sleep(500 * time.Millisecond)
	before := Snapshot(ctx, t, rdb)
	for _, tc := range cases {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := tc.call(cctx)
		ccancel()
		if got := status.Code(err); got != tc.want {
			t.Errorf("%s: status %s (%v), want %s", tc.name, got, err, tc.want)
		}
	}
	after := Snapshot(ctx, t, rdb)
	if d := Diff(before, after); len(d) > 0 {
		t.Errorf("bad requests changed Redis: %v", d)
	}
	t.Logf("bad input: %d requests, each with its expected status; Redis keys before %d, after %d, changed %d", len(cases), len(before), len(after), len(Diff(before, after)))

	// Missing deadline: the server caps it (LEADFLOW_MAX_DEADLINE) and serves
	// the call; it is not refused.
	resp, err := c.Capture.SubmitLead(context.Background(), &capturev1.SubmitLeadRequest{Submission: good(), IdempotencyKey: "no-deadline"})
	if err != nil {
		t.Fatalf("submit without a deadline: %v (the server should cap the deadline and serve)", err)
	}
	if resp.GetLeadId() == "" {
		t.Fatal("submit without a deadline: no lead id")
	}
}

// Fault 2: a reply lost (delayed past the client's deadline) and retried
// with the same idempotency key: no duplicate lead, the retry gets the
// identical answer.
func TestLostReplyRetriedWithIdempotencyKey(t *testing.T) {
	r := platformtest.StartRedis(t)
	s, c := suitetest.Boot(t, r.URL(), suitetest.Options{})
	p := StartProxy(t, "capture", s.Addr("capture"))
	conn, err := client.DialOne(p.Addr(), platform.DevToken)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	viaProxy := capturev1.NewCaptureServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const n = 20
	var lost, dup int
	for i := 0; i < n; i++ {
		sub := load.Submission("lost-reply", i)
		key := "lost-reply-" + string(rune('a'+i))
		// Warm the connection, then delay every reply past the deadline.
		p.AddToxic(t, `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":1500}}`)
		cctx, ccancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := viaProxy.SubmitLead(cctx, &capturev1.SubmitLeadRequest{Submission: sub, IdempotencyKey: key})
		ccancel()
		p.RemoveToxic(t, "slow")
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("lead %d: first attempt: %v, want DeadlineExceeded (reply lost)", i, err)
		}
		lost++
		// The client retries with the same key (twice) and gets one answer.
		var first *capturev1.SubmitLeadResponse
		for attempt := 0; attempt < 2; attempt++ {
			var resp *capturev1.SubmitLeadResponse
			ok := suitetest.Eventually(10*time.Second, func() bool {
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				defer ccancel()
				resp, err = viaProxy.SubmitLead(cctx, &capturev1.SubmitLeadRequest{Submission: load.Submission("lost-reply", i), IdempotencyKey: key})
				return err == nil
			})
			if !ok {
				t.Fatalf("lead %d retry %d: %v", i, attempt, err)
			}
			if first == nil {
				first = resp
				continue
			}
			if resp.GetLeadId() != first.GetLeadId() || resp.GetOutcome() != first.GetOutcome() || resp.GetTraceId() != first.GetTraceId() {
				t.Errorf("lead %d: retries answered differently: %v vs %v", i, resp, first)
			}
			if !resp.GetReplayed() {
				t.Errorf("lead %d: second retry not marked replayed", i)
			}
		}
		// One lead for the e-mail, however many attempts.
		f, err := c.Capture.FindLeads(ctx, &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Email{Email: sub.GetContact().GetEmail()}, PageSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(f.GetLeads()); got != 1 {
			dup += got - 1
			t.Errorf("lead %d: %d leads with its e-mail, want 1", i, got)
		}
	}
	if extra := extraLeads(ctx, t, r.Client(), "lost-reply"); extra != 0 {
		dup += extra
		t.Errorf("%d submissions stored more than once", extra)
	}
	t.Logf("lost reply: %d submissions whose first reply was lost, retried twice each with the same key: %d leads, duplicates %d", lost, n, dup)
}

// Fault 4: a service (scoring) unreachable for a while: capture keeps
// answering, its hand-offs wait and all complete when scoring returns; none
// lost, no dead letters.
func TestServiceDownHandoffsWait(t *testing.T) {
	outage := 30 * time.Second
	if testing.Short() {
		outage = 10 * time.Second
	}
	// A short backoff makes the hand-offs find scoring soon after it is
	// back. The attempts must then outlast the outage: 10 attempts (the
	// default) with backoff capped at 5 s give up after about 30 s, which
	// is the outage itself; 20 wait about 80 s. (The defaults, 10 attempts
	// with backoff up to 1 min, wait about 3 min.)
	t.Setenv("LEADFLOW_CAPTURE_HANDOFF_MAX_BACKOFF", "5s")
	t.Setenv("LEADFLOW_SCORING_HANDOFF_MAX_BACKOFF", "5s")
	t.Setenv("LEADFLOW_CAPTURE_HANDOFF_MAX_ATTEMPTS", "20")
	t.Setenv("LEADFLOW_SCORING_HANDOFF_MAX_ATTEMPTS", "20")
	r := platformtest.StartRedis(t)
	scoring, c, _ := bootWithPeerProxy(t, r, "scoring")

	scoring.Stop()
	downAt := time.Now()
	d := drive(c, "down-during", 2, 5*time.Second, 50*time.Millisecond)
	time.Sleep(outage)
	during := d.Stop()
	ids, dups := okIDs(during)
	if len(ids) == 0 {
		t.Fatalf("capture answered nothing while scoring was down: %s", codeCounts(during))
	}
	for _, res := range during {
		if res.code != codes.OK {
			t.Errorf("SubmitLead while scoring was down: %s (capture should answer and hand off later)", res.code)
			break
		}
	}
	if err := scoring.Start(); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	got := routed(c, ids, 60*time.Second)
	recovered := time.Since(upAt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dups += extraLeads(ctx, t, r.Client(), "down-during")
	dead, note := load.DeadLetters(ctx, r.Client())
	t.Logf("service down %s: %d leads accepted during the outage (%s), %d routed after scoring returned (in %s), duplicates %d, dead letters %d",
		upAt.Sub(downAt).Round(time.Millisecond), len(ids), codeCounts(during), got, recovered.Round(time.Millisecond), dups, dead)
	if got != len(ids) {
		t.Errorf("%d of %d leads accepted during the outage were routed after it", got, len(ids))
	}
	if dups != 0 {
		t.Errorf("duplicates: %d", dups)
	}
	if dead != 0 {
		t.Errorf("dead letters: %d (%s)", dead, note)
	}
}

// bootWithPeerProxy boots the suite with a fault proxy in front of peer
// (every service dials peer through it), then drives a second of load and
// checks every lead of it is routed: the suite works before the fault. It
// returns the proxy, the clients and the warm-up's lead ids.
func bootWithPeerProxy(t *testing.T, r *platformtest.Redis, peer string) (*Proxy, *client.Clients, []string) {
	t.Helper()
	var p *Proxy
	_, c := suitetest.BootProxied(t, func(string) string { return r.URL() }, func(name, addr string) string {
		if name != peer {
			return addr
		}
		p = StartProxy(t, peer, addr)
		return p.Addr()
	}, suitetest.Options{})
	d := drive(c, peer+"-before", 2, 5*time.Second, 50*time.Millisecond)
	time.Sleep(time.Second)
	ids, _ := okIDs(d.Stop())
	if got := routed(c, ids, 30*time.Second); got != len(ids) {
		t.Fatalf("before the fault: %d of %d leads routed", got, len(ids))
	}
	return p, c, ids
}

// Fault 4b: routing blackholed for scoring (packets dropped, connections
// held) under load. Scoring hands MQLs to routing directly; here those calls
// time out, the hand-offs fall back to the scoring-routing job queue, and
// every lead is routed once after the blackhole: none lost, none assigned
// twice (a request routing received late and its job both arrive), no dead
// letters.
func TestRoutingBlackholeHandoffsFallBackToJobs(t *testing.T) {
	blackholeFor := 10 * time.Second
	// The jobs retry soon after the blackhole (attempts outlast it).
	t.Setenv("LEADFLOW_SCORING_HANDOFF_MAX_BACKOFF", "2s")
	t.Setenv("LEADFLOW_SCORING_HANDOFF_MAX_ATTEMPTS", "20")
	r := platformtest.StartRedis(t)
	routing, c, beforeIDs := bootWithPeerProxy(t, r, "routing")

	routing.Blackhole(t)
	d := drive(c, "rbh-during", 2, 5*time.Second, 50*time.Millisecond)
	time.Sleep(blackholeFor)
	during := d.Stop()
	ids, dups := okIDs(during)
	if len(ids) == 0 {
		t.Fatalf("capture answered nothing while routing was blackholed: %s", codeCounts(during))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The hand-offs wait as jobs, not in the memory of scoring's deliverer.
	waiting := int64(0)
	qs, err := c.Jobs["scoring"].ListQueues(ctx, &opsv1.ListQueuesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs.GetQueues() {
		if q.GetName() == "scoring-routing" {
			waiting = q.GetDepth()
		}
	}
	routing.Heal(t)
	healedAt := time.Now()
	got := routed(c, ids, 90*time.Second)
	recovered := time.Since(healedAt)
	twice, none := assignmentsPerLead(ctx, t, c, append(beforeIDs, ids...))
	dups += extraLeads(ctx, t, r.Client(), "rbh-during")
	dead, note := load.DeadLetters(ctx, r.Client())
	t.Logf("routing blackholed %s: %d leads accepted (%s), %d route hand-offs waiting as jobs at the end, %d routed after it healed (in %s), assigned twice %d, in no rep's list %d, duplicates %d, dead letters %d",
		blackholeFor, len(ids), codeCounts(during), waiting, got, recovered.Round(time.Millisecond), twice, none, dups, dead)
	if waiting == 0 {
		t.Errorf("no route hand-off waited in the scoring-routing queue during the blackhole: the fallback to the job queue did not happen")
	}
	if got != len(ids) || twice != 0 || none != 0 || dups != 0 || dead != 0 {
		t.Errorf("%d of %d leads routed after the blackhole; assigned twice %d, in no rep's list %d, duplicates %d, dead letters %d (%s)", got, len(ids), twice, none, dups, dead, note)
	}
}

// Fault 1: Redis SIGKILLed under load and restarted from its AOF: every lead
// answered OK is found afterwards, callers saw Unavailable (never Unknown or
// Internal) while it was down, and service resumes within 2 s of Redis being
// ready.
func TestRedisKilledUnderLoad(t *testing.T) {
	r := platformtest.StartRedis(t, platformtest.WithAOF())
	_, c := suitetest.Boot(t, r.URL(), suitetest.Options{})

	d := drive(c, "redis-kill", 8, 2*time.Second, 0)
	time.Sleep(2 * time.Second)
	r.Kill()
	killedAt := time.Now()
	time.Sleep(3 * time.Second)
	r.Start()
	readyAt := time.Now()
	time.Sleep(3 * time.Second)
	rs := d.Stop()

	// Recovery: the first call started after Redis was ready that succeeded.
	var firstOK time.Time
	var bad []string
	for _, res := range rs {
		if res.code == codes.OK && res.at.After(readyAt) && (firstOK.IsZero() || res.end.Before(firstOK)) {
			firstOK = res.end
		}
		if res.code == codes.Unknown || res.code == codes.Internal {
			bad = append(bad, res.code.String())
		}
	}
	var outage []result
	for _, res := range rs {
		if res.at.After(killedAt.Add(200*time.Millisecond)) && res.end.Before(readyAt) {
			outage = append(outage, res)
		}
	}
	ids, dups := okIDs(rs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var missing int
	for _, id := range ids {
		if _, err := c.Capture.GetLead(ctx, &capturev1.GetLeadRequest{LeadId: id}); err != nil {
			missing++
			if missing <= 3 {
				t.Errorf("lead %s answered OK before the kill is not found after the restart: %v", id, err)
			}
		}
	}
	got := routed(c, ids, 45*time.Second)
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	dups += extraLeads(dctx, t, r.Client(), "redis-kill")
	dead, _ := load.DeadLetters(dctx, r.Client())
	recovery := time.Duration(-1)
	if !firstOK.IsZero() {
		recovery = firstOK.Sub(readyAt)
	}
	t.Logf("redis SIGKILL: %d calls (%s); during the outage: %s; %d leads answered OK, %d found after restart, %d routed, duplicates %d, dead letters %d; recovery %s after Redis was ready",
		len(rs), codeCounts(rs), codeCounts(outage), len(ids), len(ids)-missing, got, dups, dead, recovery.Round(time.Millisecond))
	if len(bad) > 0 {
		t.Errorf("callers saw %d Unknown/Internal errors: %v", len(bad), bad[:min(len(bad), 5)])
	}
	for _, res := range outage {
		if res.code != codes.Unavailable && res.code != codes.OK {
			t.Errorf("during the outage a caller saw %s, want Unavailable", res.code)
			break
		}
	}
	if firstOK.IsZero() {
		t.Fatal("no call succeeded after Redis was ready")
	}
	// Requirement: resumes within 2 s of Redis being ready (CI margin: 5 s).
	if recovery > 5*time.Second {
		t.Errorf("service resumed %s after Redis was ready; the requirement is 2 s", recovery)
	}
	if got != len(ids) || dups != 0 || dead != 0 {
		t.Errorf("conservation: %d answered OK, %d routed, duplicates %d, dead letters %d", len(ids), got, dups, dead)
	}
}
