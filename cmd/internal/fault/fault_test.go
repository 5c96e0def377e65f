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
	t.Logf("lost reply: %d submissions whose first reply was lost, retried twice each with the same key: %d leads, duplicates %d", lost, n, dup)
}
