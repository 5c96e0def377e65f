package app_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/capture/app"
	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/capture/store"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

func submit(t *testing.T, e *env, sub *capturev1.LeadSubmission, key string) *capturev1.SubmitLeadResponse {
	t.Helper()
	resp, err := e.client.SubmitLead(ctxT(t), &capturev1.SubmitLeadRequest{Submission: sub, IdempotencyKey: key})
	if err != nil {
		t.Fatalf("SubmitLead: %v", err)
	}
	return resp
}

func getLead(t *testing.T, e *env, id string) *leadv1.Lead {
	t.Helper()
	resp, err := e.client.GetLead(ctxT(t), &capturev1.GetLeadRequest{LeadId: id})
	if err != nil {
		t.Fatalf("GetLead: %v", err)
	}
	return resp.GetLead()
}

// streamEvents reads every LeadEvent on the lifecycle stream.
func streamEvents(t *testing.T, e *env) []*eventsv1.LeadEvent {
	t.Helper()
	msgs, err := e.redis.Client().XRange(ctxT(t), events.StreamKey, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.LeadEvent
	for _, m := range msgs {
		ev, err := events.Decode(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func TestSubmitCreatesThenMergesByEmailAndByPhone(t *testing.T) {
	e := newEnv(t, envOpt{})
	first := submission(" Annika.L@Acme.se ", "")
	first.Company.Industry = ""
	r1 := submit(t, e, first, "")
	if r1.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED || !r1.GetNewOrganisation() || r1.GetOrganisationId() == "" || len(r1.GetTraceId()) != 32 {
		t.Fatalf("first submission: %v", r1)
	}

	// Same e-mail, differently written: merged; fills phone and industry.
	second := submission("annika.l@ACME.se", "+46 8 123 456 78")
	second.Touch = &leadv1.Touch{Channel: leadv1.Channel_CHANNEL_EVENT, Source: "booth", OccurredAt: timestamppb.New(time.Now())}
	r2 := submit(t, e, second, "")
	if r2.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_MERGED || r2.GetLeadId() != r1.GetLeadId() || r2.GetMatchedOn() != "email" {
		t.Fatalf("second submission: %v", r2)
	}
	if !slices.Contains(r2.GetFilledFields(), "contact.phone") || !slices.Contains(r2.GetFilledFields(), "organisation.industry") {
		t.Fatalf("filled fields: %v", r2.GetFilledFields())
	}

	// The merge's first round trip claimed the new phone for a fresh id and
	// gave it back; the lead now holds it for good.
	phone := store.IdentityKey(domain.NewIdentity("phone", "+46812345678"))
	if o := e.redis.Client().Get(ctxT(t), phone).Val(); o != r1.GetLeadId() {
		t.Fatalf("phone owned by %q, want the merged lead %s", o, r1.GetLeadId())
	}
	if ttl := e.redis.Client().PTTL(ctxT(t), phone).Val(); ttl != -1 {
		t.Fatalf("phone claim expires (%v): the merge did not make it permanent", ttl)
	}

	// Only the phone, written differently: found by the phone.
	third := submission("", "+46 (0)8-123 456 78")
	r3 := submit(t, e, third, "")
	if r3.GetLeadId() != r1.GetLeadId() || r3.GetMatchedOn() != "phone" {
		t.Fatalf("third submission: %v", r3)
	}

	l := getLead(t, e, r1.GetLeadId())
	if l.GetContact().GetEmail() != "annika.l@acme.se" || l.GetContact().GetPhone() != "+46812345678" {
		t.Fatalf("contact: %v", l.GetContact())
	}
	if l.GetSubmissionCount() != 3 || l.GetAttribution().GetFirstTouch().GetSource() != "google" || len(l.GetAttribution().GetTouches()) != 3 {
		t.Fatalf("count %d, attribution %v", l.GetSubmissionCount(), l.GetAttribution())
	}
	if l.GetOrganisation().GetProspectStatus() != leadv1.ProspectStatus_PROSPECT_STATUS_POTENTIAL || l.GetOrganisation().GetDomain() != "acme.se" {
		t.Fatalf("organisation: %v", l.GetOrganisation())
	}
	if l.GetTraceId() != r1.GetTraceId() || l.GetTraceparent() == "" {
		t.Fatalf("trace: %s %s", l.GetTraceId(), l.GetTraceparent())
	}

	// A second lead of the same domain joins the organisation.
	r4 := submit(t, e, submission("bo@acme.se", ""), "")
	if r4.GetNewOrganisation() || r4.GetOrganisationId() != r1.GetOrganisationId() {
		t.Fatalf("second lead of the domain: %v", r4)
	}

	var kinds []string
	for _, ev := range streamEvents(t, e) {
		switch ev.GetPayload().(type) {
		case *eventsv1.LeadEvent_LeadCaptured:
			kinds = append(kinds, "captured")
			if ev.GetLeadId() == r1.GetLeadId() && (ev.GetTraceId() != r1.GetTraceId() || !ev.GetLeadCaptured().GetNewOrganisation()) {
				t.Errorf("LeadCaptured: %v", ev)
			}
		case *eventsv1.LeadEvent_LeadMerged:
			kinds = append(kinds, "merged:"+ev.GetLeadMerged().GetMatchedOn())
			if ev.GetTraceId() != r1.GetTraceId() {
				t.Errorf("LeadMerged outside the lead's trace: %v", ev)
			}
		}
	}
	if want := []string{"captured", "merged:email", "merged:phone", "captured"}; !slices.Equal(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
}

func TestInvalidSubmissionNamesEveryFieldAndStoresNothing(t *testing.T) {
	e := newEnv(t, envOpt{})
	sub := submission("not-an-e-mail", "12")
	sub.Company.Country = "Atlantis"
	_, err := e.client.SubmitLead(ctxT(t), &capturev1.SubmitLeadRequest{Submission: sub, IdempotencyKey: "k1"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v", err)
	}
	var fields []string
	for _, v := range platform.FieldViolations(err) {
		fields = append(fields, v.Field)
	}
	if want := []string{"submission.contact.email", "submission.contact.phone", "submission.company.country"}; !slices.Equal(fields, want) {
		t.Fatalf("fields %v, want %v", fields, want)
	}
	// Contract violations are caught by the interceptor, every field at once.
	long := strings.Repeat("x", 400)
	_, err = e.client.SubmitLead(ctxT(t), &capturev1.SubmitLeadRequest{Submission: &capturev1.LeadSubmission{
		Contact: &leadv1.Contact{FirstName: long, Email: long}, Touch: &leadv1.Touch{}}})
	if status.Code(err) != codes.InvalidArgument || len(platform.FieldViolations(err)) != 2 {
		t.Fatalf("contract violation: %v %v", err, platform.FieldViolations(err))
	}
	keys, err := e.redis.Client().Keys(ctxT(t), "lf:*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("something was stored: %v %v", keys, err)
	}
}

// Many goroutines on two replicas (two runtimes, one Redis) submit the same
// new e-mail at once: exactly one lead, every other submission merged into it.
func TestConcurrentSubmitsOfOneNewEmailMakeOneLead(t *testing.T) {
	e1 := newEnv(t, envOpt{})
	e2 := newEnv(t, envOpt{redis: e1.redis})
	const n = 40
	var wg sync.WaitGroup
	ids := make([]string, n)
	outcomes := make([]capturev1.SubmitOutcome, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e1.client
			if i%2 == 1 {
				c = e2.client
			}
			sub := submission("race@newco.io", "")
			if i%3 == 0 {
				sub.Contact.Phone = "+1 415 555 2671" // some carry the phone too
			}
			r, err := c.SubmitLead(context.Background(), &capturev1.SubmitLeadRequest{Submission: sub})
			ids[i], outcomes[i], errs[i] = r.GetLeadId(), r.GetOutcome(), err
		}()
	}
	wg.Wait()
	created := 0
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("submission %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("two leads: %s and %s", ids[0], ids[i])
		}
		if outcomes[i] == capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d submissions say created", created)
	}
	l := getLead(t, e1, ids[0])
	if l.GetSubmissionCount() != n {
		t.Fatalf("submission_count = %d, want %d", l.GetSubmissionCount(), n)
	}
	leadKeys, _ := e1.redis.Client().Keys(ctxT(t), "lf:capture:{lead:*").Result()
	orgKeys, _ := e1.redis.Client().Keys(ctxT(t), "lf:capture:{org:newco.io}").Result()
	if len(leadKeys) != 1 || len(orgKeys) != 1 {
		t.Fatalf("leads in Redis: %v, organisations: %v", leadKeys, orgKeys)
	}
	r, err := e2.client.FindLeads(ctxT(t), &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Phone{Phone: "(415) 555-2671"}})
	if err != nil || len(r.GetLeads()) != 1 || r.GetLeads()[0].GetId() != ids[0] {
		t.Fatalf("find by phone: %v %v", r, err)
	}
}

func TestIdempotencyKeyReplaysAndRefusesADifferentPayload(t *testing.T) {
	e := newEnv(t, envOpt{})
	sub := submission("idem@acme.io", "")
	r1 := submit(t, e, sub, "form-post-1")
	r2 := submit(t, e, sub, "form-post-1")
	if !r2.GetReplayed() || r2.GetLeadId() != r1.GetLeadId() || r2.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED {
		t.Fatalf("replay: %v", r2)
	}
	if l := getLead(t, e, r1.GetLeadId()); l.GetSubmissionCount() != 1 {
		t.Fatalf("replay merged: count %d", l.GetSubmissionCount())
	}

	other := proto.Clone(sub).(*capturev1.LeadSubmission)
	other.Contact.JobTitle = "CEO"
	_, err := e.client.SubmitLead(ctxT(t), &capturev1.SubmitLeadRequest{Submission: other, IdempotencyKey: "form-post-1"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "form-post-1") {
		t.Fatalf("different payload: %v", err)
	}

	// A crash after the lead was written but before the idempotency pointer
	// was: the record kept in the lead's own hash still replays.
	r3 := submit(t, e, submission("idem@acme.io", "+14155550100"), "form-post-2")
	if r3.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_MERGED {
		t.Fatalf("r3: %v", r3)
	}
	if err := e.redis.Client().Del(ctxT(t), store.IdemKey(domain.Hash("form-post-2"))).Err(); err != nil {
		t.Fatal(err)
	}
	r4 := submit(t, e, submission("idem@acme.io", "+14155550100"), "form-post-2")
	if !r4.GetReplayed() || r4.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_MERGED || r4.GetLeadId() != r1.GetLeadId() {
		t.Fatalf("replay from the lead's record: %v", r4)
	}
	if l := getLead(t, e, r1.GetLeadId()); l.GetSubmissionCount() != 2 {
		t.Fatalf("count %d, want 2", l.GetSubmissionCount())
	}

	// Keys expire: after the TTL the same key is a new request.
	ttl, err := e.redis.Client().PTTL(ctxT(t), store.IdemKey(domain.Hash("form-post-1"))).Result()
	if err != nil || ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("idempotency ttl %v %v", ttl, err)
	}
	e.clock.Advance(25 * time.Hour)
	if err := e.redis.Client().Del(ctxT(t), store.IdemKey(domain.Hash("form-post-1"))).Err(); err != nil { // what Redis expiry does
		t.Fatal(err)
	}
	r5 := submit(t, e, other, "form-post-1")
	if r5.GetReplayed() || r5.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_MERGED {
		t.Fatalf("expired key: %v", r5)
	}

	// A replay re-schedules the hand-off: it reaches scoring even if the
	// first attempt died before scheduling it (here: its job is removed).
	r6 := submit(t, e, submission("crash@acme.io", ""), "crash-key")
	if ok, err := e.app.Queue.Cancel(ctxT(t), domain.HandoffJobID(r6.GetLeadId(), 1)); err != nil || !ok {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	e.deliverAll(t)
	if e.scoring.upserts[r6.GetLeadId()] != 0 {
		t.Fatal("cancelled job delivered")
	}
	if r7 := submit(t, e, submission("crash@acme.io", ""), "crash-key"); !r7.GetReplayed() {
		t.Fatalf("not a replay: %v", r7)
	}
	e.deliverAll(t)
	if e.scoring.upserts[r6.GetLeadId()] != 1 || e.scoring.upserts[r1.GetLeadId()] == 0 {
		t.Fatalf("hand-offs after replay: %v", e.scoring.upserts)
	}
}

func TestAnonymousVisitorIsStitchedWhenIdentified(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx := ctxT(t)
	sig := func(id string, typ leadv1.SignalType) *leadv1.EngagementSignal {
		return &leadv1.EngagementSignal{Id: id, VisitorId: "cookie-42", Type: typ, OccurredAt: timestamppb.Now(), Subject: "/pricing"}
	}
	for i, typ := range []leadv1.SignalType{leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW, leadv1.SignalType_SIGNAL_TYPE_PRICING_PAGE_VIEW} {
		r, err := e.client.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: sig(fmt.Sprintf("s%d", i), typ)})
		if err != nil || !r.GetPendingVisitor() || r.GetLeadId() != "" {
			t.Fatalf("anonymous signal: %v %v", r, err)
		}
	}
	r, err := e.client.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: sig("s0", leadv1.SignalType_SIGNAL_TYPE_PAGE_VIEW)})
	if err != nil || !r.GetDuplicate() {
		t.Fatalf("repeated signal: %v %v", r, err)
	}
	e.deliverAll(t)
	if len(e.scoring.signals) != 0 {
		t.Fatal("anonymous signals reached scoring")
	}

	sub := submission("visitor@acme.io", "")
	sub.VisitorId = "cookie-42"
	lr := submit(t, e, sub, "")
	if lr.GetStitchedSignals() != 2 {
		t.Fatalf("stitched %d", lr.GetStitchedSignals())
	}
	// Later signals of the visitor go to the lead directly.
	r, err = e.client.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: sig("s9", leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST)})
	if err != nil || r.GetLeadId() != lr.GetLeadId() || r.GetPendingVisitor() {
		t.Fatalf("signal after identification: %v %v", r, err)
	}
	// And signals of a known lead.
	r, err = e.client.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: &leadv1.EngagementSignal{Id: "s10", LeadId: lr.GetLeadId(), Type: leadv1.SignalType_SIGNAL_TYPE_EMAIL_CLICK, OccurredAt: timestamppb.Now()}})
	if err != nil || r.GetLeadId() != lr.GetLeadId() {
		t.Fatalf("lead signal: %v %v", r, err)
	}
	_, err = e.client.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: &leadv1.EngagementSignal{Id: "s11", LeadId: "nope", Type: leadv1.SignalType_SIGNAL_TYPE_EMAIL_CLICK, OccurredAt: timestamppb.Now()}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown lead: %v", err)
	}

	e.deliverAll(t)
	for _, id := range []string{"s0", "s1", "s9", "s10"} {
		s := e.scoring.signals[id]
		if s.GetLeadId() != lr.GetLeadId() || s.GetVisitorId() != "" {
			t.Fatalf("signal %s at scoring: %v", id, s)
		}
	}
	if len(e.scoring.signals) != 4 {
		t.Fatalf("scoring got %d signals", len(e.scoring.signals))
	}
	recorded := 0
	for _, ev := range streamEvents(t, e) {
		if ev.GetEngagementRecorded() != nil {
			recorded++
			if ev.GetLeadId() != lr.GetLeadId() || ev.GetTraceId() != lr.GetTraceId() {
				t.Errorf("EngagementRecorded: %v", ev)
			}
		}
	}
	if recorded != 4 {
		t.Fatalf("%d EngagementRecorded events", recorded)
	}
	if l := getLead(t, e, lr.GetLeadId()); !slices.Equal(l.GetVisitorIds(), []string{"cookie-42"}) {
		t.Fatalf("visitor ids %v", l.GetVisitorIds())
	}
}

func TestEraseRemovesPersonalDataAndKeepsTheFacts(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx := ctxT(t)
	sub := submission("erase.me@acme.io", "+14155550123")
	sub.VisitorId = "cookie-erase"
	sub.Answers = map[string]string{"What do you need?": "call Annika at home"}
	r := submit(t, e, sub, "erase-key")

	resp, err := e.client.EraseLead(ctx, &capturev1.EraseLeadRequest{LeadId: r.GetLeadId(), Reason: "gdpr-art-17"})
	if err != nil {
		t.Fatal(err)
	}
	l := resp.GetLead()
	if !l.GetErased() || resp.GetErasedAt() == nil || l.GetContact().GetEmail() != "" || len(l.GetAnswers()) != 0 || len(l.GetVisitorIds()) != 0 {
		t.Fatalf("erased lead: %v", l)
	}
	if l.GetAttribution().GetFirstTouch().GetSource() != "google" || l.GetCreatedAt() == nil || l.GetOrganisation().GetDomain() != "acme.io" {
		t.Fatalf("non-personal facts lost: %v", l)
	}
	// Nothing in Redis holds the personal data or its index entries any more.
	rdb := e.redis.Client()
	for _, k := range []string{
		store.IdentityKey(domain.NewIdentity("email", "erase.me@acme.io")), store.IdentityKey(domain.NewIdentity("phone", "+14155550123")),
		store.IdemKey(domain.Hash("erase-key")), store.VisitorKey(domain.Hash("cookie-erase")),
	} {
		if n, _ := rdb.Exists(ctx, k).Result(); n != 0 {
			t.Errorf("%s still exists", k)
		}
	}
	keys, _ := rdb.Keys(ctx, "lf:capture:*").Result()
	for _, k := range keys {
		dump := dumpKey(t, rdb, k)
		for _, pii := range []string{"erase.me@acme.io", "+14155550123", "Annika", "Lindqvist", "cookie-erase", "call Annika"} {
			if strings.Contains(dump, pii) {
				t.Errorf("key %s still holds %q", k, pii)
			}
		}
	}
	found, err := e.client.FindLeads(ctx, &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Email{Email: "erase.me@acme.io"}})
	if err != nil || len(found.GetLeads()) != 0 {
		t.Fatalf("find after erase: %v %v", found, err)
	}
	// Erasing again is a no-op; the erasure was recorded once (same event id).
	if _, err := e.client.EraseLead(ctx, &capturev1.EraseLeadRequest{LeadId: r.GetLeadId(), Reason: "gdpr-art-17"}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, ev := range streamEvents(t, e) {
		if ev.GetLeadErased() != nil {
			ids[ev.GetId()] = true
			if ev.GetLeadErased().GetReason() != "gdpr-art-17" || ev.GetTraceId() != r.GetTraceId() {
				t.Errorf("LeadErased: %v", ev)
			}
		}
	}
	if len(ids) != 1 {
		t.Fatalf("LeadErased events with %d distinct ids", len(ids))
	}
	// The same person submitting again is a new lead.
	r2 := submit(t, e, submission("erase.me@acme.io", ""), "")
	if r2.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED || r2.GetLeadId() == r.GetLeadId() {
		t.Fatalf("after erasure: %v", r2)
	}
	// A claim that raced the erasure (an index entry still naming the erased
	// lead) is dropped, and the submission makes a new lead.
	if err := rdb.Set(ctx, store.IdentityKey(domain.NewIdentity("email", "raced@acme.io")), r.GetLeadId(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	r3 := submit(t, e, submission("raced@acme.io", ""), "")
	if r3.GetOutcome() != capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED || r3.GetLeadId() == r.GetLeadId() {
		t.Fatalf("index entry of an erased lead: %v", r3)
	}
	if _, err := e.client.EraseLead(ctx, &capturev1.EraseLeadRequest{LeadId: "missing", Reason: "x"}); status.Code(err) != codes.NotFound {
		t.Fatalf("erase missing: %v", err)
	}
}

func dumpKey(t *testing.T, rdb *redis.Client, k string) string {
	ctx := ctxT(t)
	switch rdb.Type(ctx, k).Val() {
	case "string":
		return rdb.Get(ctx, k).Val()
	case "hash":
		return fmt.Sprint(rdb.HGetAll(ctx, k).Val())
	case "list":
		return fmt.Sprint(rdb.LRange(ctx, k, 0, -1).Val())
	case "zset":
		return fmt.Sprint(rdb.ZRange(ctx, k, 0, -1).Val())
	}
	return ""
}

// Scoring is down while leads are submitted: SubmitLead still answers OK,
// deliveries fail and back off, and once scoring is back every lead reaches
// it, each exactly once in effect (its latest profile), none lost.
func TestHandoffSurvivesScoringDownAndComesBack(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.scoring.setDown(true)
	var ids []string
	for i := 0; i < 12; i++ {
		r := submit(t, e, submission(fmt.Sprintf("lead%d@corp%d.com", i, i), ""), "")
		ids = append(ids, r.GetLeadId())
	}
	// One of them is merged again while scoring is down: two revisions.
	submit(t, e, submission("lead0@corp0.com", "+14155550199"), "")

	for round := 0; round < 4; round++ {
		e.deliverAll(t)
		e.clock.Advance(2 * time.Minute) // past the backoff
	}
	if e.scoring.failures == 0 || len(e.scoring.upserts) != 0 {
		t.Fatalf("scoring down: failures %d, upserts %d", e.scoring.failures, len(e.scoring.upserts))
	}
	depth, err := e.app.Queue.Depth(ctxT(t))
	if err != nil || depth != 13 {
		t.Fatalf("queue depth %d %v (want every hand-off waiting)", depth, err)
	}

	e.scoring.setDown(false)
	e.clock.Advance(2 * time.Minute)
	e.deliverAll(t)
	for _, id := range ids {
		if e.scoring.upserts[id] == 0 {
			t.Fatalf("lead %s never reached scoring", id)
		}
		if got := e.scoring.profiles[id]; got.GetLeadId() != id || got.GetOrganisation().GetDomain() == "" {
			t.Fatalf("profile %v", got)
		}
	}
	if len(e.scoring.upserts) != len(ids) {
		t.Fatalf("scoring knows %d leads, want %d", len(e.scoring.upserts), len(ids))
	}
	// One successful delivery per lead revision (12 creations + 1 merge).
	total := 0
	for _, n := range e.scoring.upserts {
		total += n
	}
	if total != 13 {
		t.Fatalf("%d successful deliveries, want 13", total)
	}
	if depth, _ := e.app.Queue.Depth(ctxT(t)); depth != 0 {
		t.Fatalf("queue depth %d after recovery", depth)
	}
	// Delivering again changes nothing at scoring (same profile, same state):
	// the latest profile of the merged lead carries its phone-merge revision.
	if p := e.scoring.profiles[ids[0]]; p.GetLeadId() != ids[0] {
		t.Fatal("merged lead profile missing")
	}
	// Each delivered call came in the lead's own trace.
	for _, id := range ids {
		l := getLead(t, e, id)
		if !e.scoring.traces[id][l.GetTraceId()] {
			t.Fatalf("delivery of %s not in the lead's trace %s: %v", id, l.GetTraceId(), e.scoring.traces[id])
		}
	}
}

func TestHandoffDeadLettersAfterMaxAttempts(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	e := newEnv(t, envOpt{cfg: func(c *app.Config) { c.HandoffMaxAttempts = 3 }, metrics: reader})
	e.scoring.setDown(true)
	r := submit(t, e, submission("dead@letter.io", ""), "")
	for i := 0; i < 5; i++ {
		e.deliverAll(t)
		e.clock.Advance(5 * time.Minute)
	}
	dead, err := e.app.Queue.DeadLetters(ctxT(t), 10)
	if err != nil || len(dead) != 1 || dead[0].LeadID != r.GetLeadId() || dead[0].Attempt != 3 {
		t.Fatalf("dead letters %v %v", dead, err)
	}
	// Visible in metrics: two retries, one dead letter, one lead created.
	if r, d := metricSum(t, reader, "leadflow.jobs.retries", "queue", "capture-to-scoring"), metricSum(t, reader, "leadflow.jobs.dead_letters", "queue", "capture-to-scoring"); r != 2 || d != 1 {
		t.Fatalf("metrics: retries %d, dead letters %d", r, d)
	}
	if n := metricSum(t, reader, "leadflow.capture.submissions", "outcome", "created"); n != 1 {
		t.Fatalf("submissions{created} = %d", n)
	}
	// Each attempt is one or more calls (the client retries Unavailable).
	if e.scoring.failures < 3 {
		t.Fatalf("%d failed calls, want at least 3", e.scoring.failures)
	}
}

func TestImportLeadsReportsEveryRecord(t *testing.T) {
	e := newEnv(t, envOpt{})
	stream, err := e.client.ImportLeads(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	bad := submission("broken", "")
	tooLong := submission("ok@fine.io", "")
	tooLong.Contact.FirstName = strings.Repeat("n", 300)
	recs := []*capturev1.ImportLeadsRequest{
		{Submission: submission("imp1@acme.io", ""), RecordRef: "row-1", IdempotencyKey: "file-1:1"},
		{Submission: bad, RecordRef: "row-2"},
		{Submission: submission("IMP1@acme.io", "+14155550111"), RecordRef: "row-3"},
		{Submission: tooLong, RecordRef: "row-4"},
		{RecordRef: "row-5"},
		{Submission: submission("imp2@other.io", ""), RecordRef: "row-6"},
	}
	for _, r := range recs {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.GetResults() {
		got = append(got, r.GetRecordRef()+":"+strings.TrimPrefix(r.GetOutcome().String(), "IMPORT_OUTCOME_"))
	}
	want := []string{"row-1:CREATED", "row-2:REJECTED", "row-3:MERGED", "row-4:REJECTED", "row-5:REJECTED", "row-6:CREATED"}
	if !slices.Equal(got, want) {
		t.Fatalf("results %v, want %v", got, want)
	}
	if v := resp.GetResults()[1].GetViolations(); len(v) != 1 || v[0].GetField() != "submission.contact.email" {
		t.Fatalf("row-2 violations %v", v)
	}
	if v := resp.GetResults()[3].GetViolations(); len(v) != 1 || v[0].GetField() != "submission.contact.first_name" {
		t.Fatalf("row-4 violations %v", v)
	}
	s := resp.GetSummary()
	if s.GetReceived() != 6 || s.GetCreated() != 2 || s.GetMerged() != 1 || s.GetRejected() != 3 || s.GetFailed() != 0 {
		t.Fatalf("summary %v", s)
	}
	if l := getLead(t, e, resp.GetResults()[0].GetLeadId()); l.GetAttribution().GetFirstTouch().GetChannel() != leadv1.Channel_CHANNEL_WEB_FORM {
		t.Fatalf("channel %v", l.GetAttribution().GetFirstTouch())
	}
}

func TestFindLeadsByDomainPages(t *testing.T) {
	e := newEnv(t, envOpt{})
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, submit(t, e, submission(fmt.Sprintf("p%d@paging.io", i), ""), "").GetLeadId())
	}
	var got []string
	tok := ""
	for pages := 0; ; pages++ {
		r, err := e.client.FindLeads(ctxT(t), &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Domain{Domain: "https://WWW.paging.io/"}, PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range r.GetLeads() {
			got = append(got, l.GetId())
		}
		if tok = r.GetNextPageToken(); tok == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging never ends")
		}
	}
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("paged %v, want %v", got, ids)
	}
	r, err := e.client.FindLeads(ctxT(t), &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Email{Email: "  P3@Paging.IO"}})
	if err != nil || len(r.GetLeads()) != 1 || r.GetLeads()[0].GetContact().GetEmail() != "p3@paging.io" {
		t.Fatalf("find by e-mail: %v %v", r, err)
	}
	_, err = e.client.FindLeads(ctxT(t), &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Email{Email: "nope"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad e-mail query: %v", err)
	}
	_, err = e.client.FindLeads(ctxT(t), &capturev1.FindLeadsRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty query: %v", err)
	}
}

// Personal data never appears in a log line or a span the tests capture,
// while the journey is one trace: the capture span, the merge, the engagement
// and the hand-off delivery share the lead's trace id.
func TestNoPersonalDataInLogsOrSpansAndOneJourneyTrace(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx := ctxT(t)
	sub := submission("secret.person@pii-corp.com", "+1 415 555 0142")
	sub.Contact.FirstName, sub.Contact.LastName = "Zebulon", "Quixotefield"
	sub.VisitorId = "visitor-pii-77"
	r := submit(t, e, sub, "pii-key")
	submit(t, e, sub, "pii-key") // replay
	sub2 := proto.Clone(sub).(*capturev1.LeadSubmission)
	sub2.Contact.JobTitle = "CTO"
	_, _ = e.client.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: sub2, IdempotencyKey: "pii-key"}) // conflict
	bad := submission("secret.person@", "+1 415 555 0142x")
	_, _ = e.client.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: bad})
	submit(t, e, submission("SECRET.person@pii-corp.com", ""), "")
	if _, err := e.client.RecordEngagement(ctx, &capturev1.RecordEngagementRequest{Signal: &leadv1.EngagementSignal{Id: "sig-1", LeadId: r.GetLeadId(), Type: leadv1.SignalType_SIGNAL_TYPE_DEMO_REQUEST, OccurredAt: timestamppb.Now()}}); err != nil {
		t.Fatal(err)
	}
	_, _ = e.client.FindLeads(ctx, &capturev1.FindLeadsRequest{Query: &capturev1.FindLeadsRequest_Email{Email: "secret.person@pii-corp.com"}})
	e.scoring.setDown(true)
	e.deliverAll(t) // failing deliveries log warnings
	e.scoring.setDown(false)
	e.clock.Advance(time.Minute)
	e.deliverAll(t)
	if _, err := e.client.EraseLead(ctx, &capturev1.EraseLeadRequest{LeadId: r.GetLeadId(), Reason: "ticket-1"}); err != nil {
		t.Fatal(err)
	}

	spans := e.spans.GetSpans()
	if len(spans) == 0 || len(e.logs.String()) == 0 {
		t.Fatal("nothing captured")
	}
	pii := []string{"secret.person", "pii-corp.com", "4155550142", "415 555 0142", "Zebulon", "Quixotefield", "visitor-pii-77"}
	for _, p := range pii {
		if strings.Contains(strings.ToLower(e.logs.String()), strings.ToLower(p)) {
			t.Errorf("logs contain %q", p)
		}
	}
	journey := map[string]int{}
	for _, s := range spans {
		var b strings.Builder
		fmt.Fprint(&b, s.Name, s.Attributes, s.Status, s.Links)
		for _, ev := range s.Events {
			fmt.Fprint(&b, ev.Name, ev.Attributes)
		}
		for _, p := range pii {
			if strings.Contains(strings.ToLower(b.String()), strings.ToLower(p)) {
				t.Errorf("span %q contains %q: %s", s.Name, p, b.String())
			}
		}
		if s.SpanContext.TraceID().String() == r.GetTraceId() {
			journey[s.Name]++
		}
	}
	for _, name := range []string{"capture.lead", "capture.replay", "capture.merge", "capture.engagement", "capture.handoff", "jobs capture-to-scoring", "capture.erase"} {
		if journey[name] == 0 {
			t.Errorf("no %q span in the lead's trace; spans in it: %v", name, journey)
		}
	}
	if t.Failed() {
		t.Log(e.logs.String())
	}
}

// BatchGetLeads answers each id once: found leads as GetLead returns them
// (erased ones included), unknown ids listed, all in one Redis round trip.
func TestBatchGetLeads(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx := ctxT(t)
	a := submit(t, e, submission("batch.a@acme.io", ""), "").GetLeadId()
	b := submit(t, e, submission("batch.b@acme.io", "+14155550131"), "").GetLeadId()
	c := submit(t, e, submission("", "+14155550132"), "").GetLeadId()
	if _, err := e.client.EraseLead(ctx, &capturev1.EraseLeadRequest{LeadId: b, Reason: "gdpr-art-17"}); err != nil {
		t.Fatal(err)
	}
	reads := &pipelineReads{}
	e.rt.Redis.AddHook(reads)
	resp, err := e.client.BatchGetLeads(ctx, &capturev1.BatchGetLeadsRequest{LeadIds: []string{c, "0193-unknown", b, a}})
	if err != nil {
		t.Fatal(err)
	}
	if single, piped := reads.counts(); single != 0 || piped != 1 {
		t.Fatalf("lead reads: %d single HGETALLs and %d pipelines, want one pipeline", single, piped)
	}
	var got []string
	for _, l := range resp.GetLeads() {
		got = append(got, l.GetId())
		if want := getLead(t, e, l.GetId()); !proto.Equal(l, want) {
			t.Fatalf("lead %s differs from GetLead:\n%v\n%v", l.GetId(), l, want)
		}
	}
	if !slices.Equal(got, []string{c, b, a}) || !slices.Equal(resp.GetNotFoundLeadIds(), []string{"0193-unknown"}) {
		t.Fatalf("leads %v, not found %v", got, resp.GetNotFoundLeadIds())
	}
	if l := resp.GetLeads()[1]; !l.GetErased() || l.GetContact().GetEmail() != "" {
		t.Fatalf("erased lead: %v", l)
	}
	if l := resp.GetLeads()[2]; l.GetErased() || l.GetContact().GetEmail() != "batch.a@acme.io" {
		t.Fatalf("lead a: %v", l)
	}
	resp, err = e.client.BatchGetLeads(ctx, &capturev1.BatchGetLeadsRequest{LeadIds: []string{"nope-1", "nope-2"}})
	if err != nil || len(resp.GetLeads()) != 0 || len(resp.GetNotFoundLeadIds()) != 2 {
		t.Fatalf("only unknown ids: %v %v", resp, err)
	}

	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("lead-%d", i)
	}
	for _, c := range []struct {
		name  string
		ids   []string
		field string
	}{
		{"no ids", nil, "lead_ids"},
		{"more than 100", many, "lead_ids"},
		{"empty id", []string{a, ""}, "lead_ids[1]"},
		{"id too long", []string{strings.Repeat("x", 65)}, "lead_ids[0]"},
		{"repeated id", []string{a, b, a}, "lead_ids"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.client.BatchGetLeads(ctx, &capturev1.BatchGetLeadsRequest{LeadIds: c.ids})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			var fields []string
			for _, v := range platform.FieldViolations(err) {
				fields = append(fields, v.Field)
			}
			if !slices.Equal(fields, []string{c.field}) {
				t.Fatalf("violations on %v, want %s", fields, c.field)
			}
		})
	}
}

// BatchGetLeads with a read mask answers only the fields named, with id and
// erased; a name that is not a field of Lead is refused, naming its path.
func TestBatchGetLeadsReadMask(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx := ctxT(t)
	a := submit(t, e, submission("mask.a@acme.io", ""), "").GetLeadId()
	b := submit(t, e, submission("mask.b@acme.io", ""), "").GetLeadId()
	if _, err := e.client.EraseLead(ctx, &capturev1.EraseLeadRequest{LeadId: b, Reason: "gdpr-art-17"}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.BatchGetLeads(ctx, &capturev1.BatchGetLeadsRequest{LeadIds: []string{a, b, "0193-unknown"},
		ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"contact", "organisation"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetLeads()) != 2 || !slices.Equal(resp.GetNotFoundLeadIds(), []string{"0193-unknown"}) {
		t.Fatalf("leads %v, not found %v", resp.GetLeads(), resp.GetNotFoundLeadIds())
	}
	full := getLead(t, e, a)
	want := &leadv1.Lead{Id: a, Contact: full.GetContact(), Organisation: full.GetOrganisation()}
	if got := resp.GetLeads()[0]; !proto.Equal(got, want) || got.GetContact().GetEmail() != "mask.a@acme.io" {
		t.Fatalf("masked lead:\n%v\nwant\n%v", got, want)
	}
	if got := resp.GetLeads()[1]; got.GetId() != b || !got.GetErased() || got.GetContact().GetEmail() != "" || got.GetCreatedAt() != nil {
		t.Fatalf("masked erased lead: %v", got)
	}

	_, err = e.client.BatchGetLeads(ctx, &capturev1.BatchGetLeadsRequest{LeadIds: []string{a},
		ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"contact", "contact.email", "salary"}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	var fields []string
	for _, v := range platform.FieldViolations(err) {
		fields = append(fields, v.Field)
	}
	if !slices.Equal(fields, []string{"read_mask.paths[1]", "read_mask.paths[2]"}) {
		t.Fatalf("violations on %v, want read_mask.paths[1] and [2]", fields)
	}
}

// pipelineReads counts the HGETALLs sent alone and the pipelines that hold
// at least one.
type pipelineReads struct {
	mu            sync.Mutex
	single, piped int
}

func (h *pipelineReads) counts() (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.single, h.piped
}

func (h *pipelineReads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *pipelineReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hgetall" {
			h.mu.Lock()
			h.single++
			h.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (h *pipelineReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "hgetall" }) {
			h.mu.Lock()
			h.piped++
			h.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// A caller the policy lets read leads (routing) may call BatchGetLeads as it
// may GetLead; a caller without GetLead (capture itself) is refused both.
func TestBatchGetLeadsAuthorisation(t *testing.T) {
	e := newEnv(t, envOpt{base: func(b *platform.Base) {
		b.ClientToken = "operator-token-1"
		b.AuthTokens = `{"callers":[
		  {"identity":"capture","token":"capture-token-1","allow":["/leadflow.scoring.v1.ScoringService/UpsertLead"]},
		  {"identity":"routing","token":"routing-token-1","allow":["/leadflow.capture.v1.CaptureService/GetLead","/leadflow.capture.v1.CaptureService/BatchGetLeads"]},
		  {"identity":"operator","token":"operator-token-1","allow":["*"]}]}`
	}})
	id := submit(t, e, submission("auth@acme.io", ""), "").GetLeadId()
	for _, c := range []struct {
		token string
		want  codes.Code
	}{{"routing-token-1", codes.OK}, {"capture-token-1", codes.PermissionDenied}} {
		cl := capturev1.NewCaptureServiceClient(platformtest.Dial(t, e.addr, c.token))
		_, gerr := cl.GetLead(ctxT(t), &capturev1.GetLeadRequest{LeadId: id})
		_, berr := cl.BatchGetLeads(ctxT(t), &capturev1.BatchGetLeadsRequest{LeadIds: []string{id}})
		if status.Code(gerr) != c.want || status.Code(berr) != c.want {
			t.Fatalf("%s: GetLead %v, BatchGetLeads %v, want %v", c.token, gerr, berr, c.want)
		}
	}
}
