package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/capture/app"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// TestOnRedisCluster runs capture's scripts and transactions (submit, merge,
// idempotent replay, hand-off, find, erase) through a runtime on a three-node
// Redis Cluster: a key a script or MULTI touches outside its hash tag would
// fail here with CROSSSLOT (or an undeclared-key error), not on one server.
func TestOnRedisCluster(t *testing.T) {
	cl := platformtest.StartRedisCluster(t)
	e := &env{spans: platformtest.Spans(), logs: &platformtest.LogBuffer{}, clock: platformtest.NewClock(consentTime.Add(time.Hour))}
	var addr string
	e.scoring, addr = serveFakeScoring(t)
	base := platformtest.Base("capture", cl.URL())
	base.Peers.Scoring = addr
	e.rt = platformtest.RuntimeWith(t, base, platform.WithSpanExporter(e.spans))
	if _, ok := e.rt.Redis.(*redis.ClusterClient); !ok {
		t.Fatalf("runtime client is %T, want *redis.ClusterClient", e.rt.Redis)
	}
	cfg := app.DefaultConfig()
	cfg.HandoffWorkers = 0
	a, err := app.Build(context.Background(), e.rt, cfg, app.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	e.app = a
	e.client = capturev1.NewCaptureServiceClient(platformtest.Serve(t, e.rt, a.Service))
	ctx := ctxT(t)

	// An anonymous visitor's signal waits for the lead, then is stitched.
	sig := &leadv1.EngagementSignal{Id: "sig-1", VisitorId: "cookie-cluster", Type: leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW, OccurredAt: timestamppb.Now(), Subject: "/pricing"}
	if r, err := e.client.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: sig}); err != nil || !r.GetPendingVisitor() {
		t.Fatalf("anonymous signal: %v %v", r, err)
	}
	sub := submission("cluster@acme.io", "+14155550177")
	sub.VisitorId = "cookie-cluster"
	r1 := submit(t, e, sub, "cluster-1")
	if r1.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED || r1.GetStitchedSignals() != 1 {
		t.Fatalf("new lead: %v", r1)
	}
	sig2 := &leadv1.EngagementSignal{Id: "sig-2", LeadId: r1.GetLeadId(), Type: leadv1.SignalType_SIGNAL_TYPE_EMAIL_CLICK, OccurredAt: timestamppb.Now()}
	if r, err := e.client.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: sig2}); err != nil || r.GetLeadId() != r1.GetLeadId() {
		t.Fatalf("signal of a known lead: %v %v", r, err)
	}
	if r := submit(t, e, sub, "cluster-1"); !r.GetReplayed() || r.GetLeadId() != r1.GetLeadId() {
		t.Fatalf("replay: %v", r)
	}
	// Same person from another address and phone, matched by e-mail: merged.
	r2 := submit(t, e, submission("cluster@acme.io", "+14155550178"), "cluster-2")
	if r2.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_MERGED || r2.GetLeadId() != r1.GetLeadId() {
		t.Fatalf("merge: %v", r2)
	}
	// Another person of the same company: a second lead.
	r3 := submit(t, e, submission("other@acme.io", ""), "cluster-3")
	if r3.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED || r3.GetLeadId() == r1.GetLeadId() {
		t.Fatalf("second lead: %v", r3)
	}
	e.deliverAll(t)
	if l := getLead(t, e, r1.GetLeadId()); l.GetSubmissionCount() != 2 {
		t.Fatalf("submission count %d, want 2", l.GetSubmissionCount())
	}
	found, err := e.client.FindLeads(ctx, &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Email{Email: "cluster@acme.io"}})
	if err != nil || len(found.GetLeads()) != 1 || found.GetLeads()[0].GetId() != r1.GetLeadId() {
		t.Fatalf("find by e-mail: %v %v", found, err)
	}
	if _, err := e.client.EraseLead(ctx, &capturev1.EraseLeadRequest{LeadId: r1.GetLeadId(), Reason: "gdpr-art-17"}); err != nil {
		t.Fatalf("erase: %v", err)
	}
	if l := getLead(t, e, r1.GetLeadId()); !l.GetErased() || l.GetContact().GetEmail() != "" {
		t.Fatalf("not erased: %v", l)
	}
	// One batch read across slots (go-redis splits the pipeline per node).
	batch, err := e.client.BatchGetLeads(ctx, &capturev1.BatchGetLeadsRequest{LeadIds: []string{r1.GetLeadId(), "cluster-unknown", r3.GetLeadId()}})
	if err != nil || len(batch.GetLeads()) != 2 || !batch.GetLeads()[0].GetErased() || batch.GetLeads()[1].GetId() != r3.GetLeadId() ||
		len(batch.GetNotFoundLeadIds()) != 1 {
		t.Fatalf("batch get: %v %v", batch, err)
	}
	found, err = e.client.FindLeads(ctx, &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Email{Email: "cluster@acme.io"}})
	if err != nil || len(found.GetLeads()) != 0 {
		t.Fatalf("erased lead still found: %v %v", found, err)
	}
	n, err := e.rt.Redis.XLen(ctx, events.StreamKey).Result()
	if err != nil || n < 4 {
		t.Fatalf("events: %d %v", n, err)
	}
}
