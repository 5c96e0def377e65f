package domain

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestTransitionTable(t *testing.T) {
	// The expected table, written out independently of the implementation.
	allowed := map[[2]Status]bool{
		{StatusPotential, StatusWorking}: true, {StatusPotential, StatusNurturing}: true, {StatusPotential, StatusBadFit}: true,
		{StatusWorking, StatusWorking}: true, {StatusWorking, StatusQualified}: true, {StatusWorking, StatusNurturing}: true, {StatusWorking, StatusBadFit}: true,
		{StatusNurturing, StatusWorking}: true, {StatusNurturing, StatusBadFit}: true,
		{StatusQualified, StatusNurturing}: true, {StatusQualified, StatusBadFit}: true,
		{StatusBadFit, StatusPotential}: true,
	}
	for _, from := range Statuses {
		for _, to := range Statuses {
			want := allowed[[2]Status{from, to}]
			t.Run(fmt.Sprintf("%s_to_%s", from, to), func(t *testing.T) {
				if got := Allowed(from, to); got != want {
					t.Fatalf("Allowed = %v, want %v", got, want)
				}
				r := recordIn(from, "rep-1")
				before, owner := len(r.Transitions), r.Owner
				changed, err := r.SetStatus(StatusChange{To: to, Owner: "rep-2", Reason: "test", RequestID: "req-x", Actor: "tester"}, t0.Add(time.Hour))
				switch {
				case from == to && to != StatusWorking:
					// Same status: a no-op success, not an error.
					if err != nil || changed {
						t.Fatalf("self move: changed=%v err=%v", changed, err)
					}
				case want:
					if err != nil || !changed || r.Status != to {
						t.Fatalf("allowed move refused: changed=%v err=%v status=%s", changed, err, r.Status)
					}
					last := r.Transitions[len(r.Transitions)-1]
					if last.From != from || last.To != to || last.Actor != "tester" || last.Reason != "test" || !last.At.Equal(t0.Add(time.Hour)) || last.RequestID != "req-x" {
						t.Fatalf("transition not recorded with who/when/why: %+v", last)
					}
				default:
					if !errors.Is(err, ErrIllegalTransition) || changed {
						t.Fatalf("illegal move: changed=%v err=%v", changed, err)
					}
					if r.Status != from || len(r.Transitions) != before || len(r.Outbox) != 0 || r.Owner != owner {
						t.Fatalf("refused move changed the record: %+v", r)
					}
				}
			})
		}
	}
}

// recordIn builds a record in a status with an owner where that status has one.
func recordIn(s Status, owner string) *Record {
	r := NewRecord("lead-1", t0)
	r.Status = s
	if s == StatusWorking || s == StatusQualified {
		r.Owner = owner
	}
	return r
}

func kinds(r *Record) []EffectKind {
	var k []EffectKind
	for _, e := range r.Outbox {
		k = append(k, e.Kind)
	}
	return k
}

func hasEffect(r *Record, k EffectKind) *Effect {
	for i := range r.Outbox {
		if r.Outbox[i].Kind == k {
			return &r.Outbox[i]
		}
	}
	return nil
}

func TestSetStatusEffects(t *testing.T) {
	tests := []struct {
		name      string
		from      Status
		change    StatusChange
		wantOwner string
		want      []EffectKind
	}{
		{"accept sets owner", StatusPotential, StatusChange{To: StatusWorking, Owner: "rep-9"}, "rep-9", []EffectKind{EffectStatusChanged}},
		{"reassign changes owner", StatusWorking, StatusChange{To: StatusWorking, Owner: "rep-9"}, "rep-9", []EffectKind{EffectStatusChanged}},
		{"qualify hands a deal to pipeline and frees the rep's lead capacity", StatusWorking, StatusChange{To: StatusQualified}, "rep-1", []EffectKind{EffectStatusChanged, EffectCreateDeal, EffectLeadQualified, EffectReleaseLead}},
		{"recycle releases the rep", StatusWorking, StatusChange{To: StatusNurturing}, "", []EffectKind{EffectStatusChanged, EffectReleaseLead}},
		{"junk releases the rep", StatusWorking, StatusChange{To: StatusBadFit}, "", []EffectKind{EffectStatusChanged, EffectReleaseLead}},
		{"deal lost and recycled", StatusQualified, StatusChange{To: StatusNurturing}, "", []EffectKind{EffectStatusChanged, EffectReleaseLead}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := recordIn(tc.from, "rep-1")
			tc.change.RequestID = "r1"
			changed, err := r.SetStatus(tc.change, t0)
			if err != nil || !changed {
				t.Fatalf("changed=%v err=%v", changed, err)
			}
			if r.Owner != tc.wantOwner {
				t.Fatalf("owner = %q, want %q", r.Owner, tc.wantOwner)
			}
			if fmt.Sprint(kinds(r)) != fmt.Sprint(tc.want) {
				t.Fatalf("effects = %v, want %v", kinds(r), tc.want)
			}
		})
	}
}

func TestSetStatusRequiresOwner(t *testing.T) {
	for _, from := range []Status{StatusPotential, StatusNurturing} {
		r := recordIn(from, "")
		_, err := r.SetStatus(StatusChange{To: StatusWorking, RequestID: "r"}, t0)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Violations[0].Field != "owner_rep_id" {
			t.Fatalf("%s → WORKING without owner: err = %v", from, err)
		}
		if r.Status != from || len(r.Outbox) != 0 {
			t.Fatal("refused move changed the record")
		}
	}
}

func TestSetStatusIdempotentByRequestID(t *testing.T) {
	r := recordIn(StatusWorking, "rep-1")
	if ok, err := r.SetStatus(StatusChange{To: StatusQualified, RequestID: "q1"}, t0); !ok || err != nil {
		t.Fatalf("first: %v %v", ok, err)
	}
	// The same request again, even after the lead moved on, is a no-op success.
	for range 3 {
		if ok, err := r.SetStatus(StatusChange{To: StatusQualified, RequestID: "q1"}, t0); ok || err != nil {
			t.Fatalf("retry: changed=%v err=%v", ok, err)
		}
	}
	deals := 0
	for _, e := range r.Outbox {
		if e.Kind == EffectCreateDeal {
			deals++
			if e.Key != "deal:lead-1:1" {
				t.Fatalf("deal key %q", e.Key)
			}
		}
	}
	if deals != 1 || len(r.Transitions) != 1 {
		t.Fatalf("deals=%d transitions=%d", deals, len(r.Transitions))
	}
	// A moved-on lead: the retry of the old request still succeeds quietly.
	if _, err := r.SetStatus(StatusChange{To: StatusNurturing, RequestID: "lost"}, t0); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.SetStatus(StatusChange{To: StatusQualified, RequestID: "q1"}, t0); ok || err != nil {
		t.Fatalf("late retry: changed=%v err=%v", ok, err)
	}
}

func TestQualifiedCarriesBudgetAndBant(t *testing.T) {
	r := recordIn(StatusWorking, "rep-1")
	if _, err := r.SetBant(Bant{Budget: &Money{AmountMinor: 5_000_000, CurrencyCode: "EUR"}, BudgetConfirmed: true, Authority: AuthorityDecisionMaker}, "rep-1", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetStatus(StatusChange{To: StatusQualified, RequestID: "q"}, t0); err != nil {
		t.Fatal(err)
	}
	d := hasEffect(r, EffectCreateDeal)
	if d == nil || d.Amount == nil || d.Amount.AmountMinor != 5_000_000 || d.Owner != "rep-1" {
		t.Fatalf("deal effect %+v", d)
	}
	if q := hasEffect(r, EffectLeadQualified); q == nil || q.BantMet != 2 {
		t.Fatalf("qualified effect %+v", q)
	}
}

func TestBantMet(t *testing.T) {
	eur := &Money{AmountMinor: 100, CurrencyCode: "EUR"}
	tests := []struct {
		name string
		b    Bant
		want int32
	}{
		{"nothing", Bant{}, 0},
		{"budget unconfirmed", Bant{Budget: eur}, 0},
		{"budget confirmed", Bant{Budget: eur, BudgetConfirmed: true}, 1},
		{"budget zero amount", Bant{Budget: &Money{CurrencyCode: "EUR"}, BudgetConfirmed: true}, 0},
		{"decision maker", Bant{Authority: AuthorityDecisionMaker}, 1},
		{"economic buyer", Bant{Authority: AuthorityEconomicBuyer}, 1},
		{"influencer", Bant{Authority: AuthorityInfluencer}, 0},
		{"champion", Bant{Authority: AuthorityChampion}, 0},
		{"need described only", Bant{NeedDescription: "reporting"}, 0},
		{"need confirmed", Bant{NeedDescription: "reporting", NeedConfirmed: true}, 1},
		{"timeline", Bant{Timeline: t0}, 1},
		{"all four", Bant{Budget: eur, BudgetConfirmed: true, Authority: AuthorityEconomicBuyer, NeedDescription: "x", NeedConfirmed: true, Timeline: t0}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.b.Met(); got != tc.want {
				t.Fatalf("Met = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestBantValidate(t *testing.T) {
	tests := []struct {
		name  string
		b     Bant
		field string
	}{
		{"negative budget", Bant{Budget: &Money{AmountMinor: -1, CurrencyCode: "EUR"}}, "bant.budget.amount_minor"},
		{"bad currency", Bant{Budget: &Money{AmountMinor: 1, CurrencyCode: "E"}}, "bant.budget.currency_code"},
		{"confirmed without amount", Bant{BudgetConfirmed: true}, "bant.budget"},
		{"unknown role", Bant{Authority: 42}, "bant.authority_role"},
		{"confirmed need undescribed", Bant{NeedConfirmed: true}, "bant.need_description"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := recordIn(StatusWorking, "rep")
			_, err := r.SetBant(tc.b, "rep", t0)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Violations[0].Field != tc.field {
				t.Fatalf("err = %v, want violation on %s", err, tc.field)
			}
		})
	}
	r := recordIn(StatusWorking, "rep")
	b := Bant{Timeline: t0}
	if ok, _ := r.SetBant(b, "rep", t0); !ok {
		t.Fatal("first SetBant did not change")
	}
	if ok, _ := r.SetBant(b, "rep", t0.Add(time.Hour)); ok {
		t.Fatal("same BANT again changed the record")
	}
}

// ingest is a helper for hand-off tests: the test model's MQL is 40;
// industry software gives 20 fit, a demo request 30, pricing views 10 each
// (cap 25, half-life 7 days).
func ingest(r *Record, m *Model, sigs ...Signal) Outcome {
	return r.Ingest(m, nil, nil, sigs, time.Time{}, CauseEngagement, "", "test", t0)
}

func newLead(m *Model) *Record {
	r := NewRecord("lead-1", t0)
	p := Profile{LeadID: "lead-1", Industry: "software", CapturedAt: t0}
	r.Ingest(m, &p, []byte("raw"), nil, time.Time{}, CauseUpsert, "", "capture", t0)
	return r
}

func routeKeys(r *Record) []string {
	var k []string
	for _, e := range r.Outbox {
		if e.Kind == EffectRouteLead {
			k = append(k, e.Key+"|"+e.RequestID)
		}
	}
	return k
}

func TestMQLHandoffOnceThenAgainAfterRecycle(t *testing.T) {
	m := testModel()
	r := newLead(&m)
	if r.Score.Total != 20 || r.Handed {
		t.Fatalf("new lead: %+v", r.Score)
	}
	// Crossing: 20 + 25 (capped pricing) = 45 ≥ 40.
	o := ingest(r, &m, sig("p1", SignalPricingPageView, t0), sig("p2", SignalPricingPageView, t0), sig("p3", SignalPricingPageView, t0))
	if !o.Handoff || !r.Handed || r.MQLEpisodes != 1 {
		t.Fatalf("no hand-off at crossing: %+v total=%d", o, r.Score.Total)
	}
	mql := hasEffect(r, EffectMQLReached)
	if mql == nil || len(mql.Reasons) == 0 || mql.Episode != 1 {
		t.Fatalf("MqlReached effect %+v", mql)
	}
	// Hovering: decays below (14 days later pricing is ~6) then back above.
	o = ingest(r, &m, sig("late", SignalPageView, t0.Add(14*day)))
	if r.Score.MQL || o.Handoff {
		t.Fatalf("expected below threshold after decay: %+v", r.Score)
	}
	o = ingest(r, &m, sig("p4", SignalPricingPageView, t0.Add(14*day)), sig("p5", SignalPricingPageView, t0.Add(14*day)))
	if !r.Score.MQL || o.Handoff {
		t.Fatalf("hovering back above must not hand again: mql=%v handoff=%v", r.Score.MQL, o.Handoff)
	}
	// Duplicate signal ids change nothing.
	if o := ingest(r, &m, sig("p4", SignalPricingPageView, t0.Add(15*day))); o.Changed {
		t.Fatal("duplicate signal changed the record")
	}
	// Rep accepts then recycles while the lead is still hot: no immediate re-hand.
	mustSet(t, r, StatusChange{To: StatusWorking, Owner: "rep", RequestID: "a"})
	mustSet(t, r, StatusChange{To: StatusNurturing, RequestID: "b"})
	if r.Handed {
		t.Fatal("recycle must re-arm the hand-off")
	}
	o = ingest(r, &m, sig("open", SignalPageView, t0.Add(15*day)))
	if o.Handoff {
		t.Fatal("a nurtured lead still above the threshold was re-handed without heating up")
	}
	// Cools down, then a demo request heats it up: second hand-off, episode 2.
	o = ingest(r, &m, sig("demo", SignalDemoRequest, t0.Add(60*day)))
	if !o.Handoff || r.MQLEpisodes != 2 {
		t.Fatalf("heated-up nurtured lead not re-handed: %+v total=%d", o, r.Score.Total)
	}
	want := []string{"route:lead-1:1|lead-1:mql:1", "route:lead-1:2|lead-1:mql:2"}
	if fmt.Sprint(routeKeys(r)) != fmt.Sprint(want) {
		t.Fatalf("route effects %v, want %v", routeKeys(r), want)
	}
}

func mustSet(t *testing.T, r *Record, c StatusChange) {
	t.Helper()
	if _, err := r.SetStatus(c, t0); err != nil {
		t.Fatal(err)
	}
}

func TestNoHandoffForBadFitOrLeadsWithSales(t *testing.T) {
	m := testModel()
	for _, st := range []Status{StatusBadFit, StatusWorking, StatusQualified} {
		r := newLead(&m)
		r.Status = st
		o := ingest(r, &m, sig("d", SignalDemoRequest, t0))
		if !r.Score.MQL || o.Handoff || len(routeKeys(r)) != 0 {
			t.Fatalf("%s: mql=%v handoff=%v", st, r.Score.MQL, o.Handoff)
		}
	}
}

func TestFirstUpsertAboveThresholdHandsOff(t *testing.T) {
	m := testModel()
	m.Thresholds.MQL = 20
	r := newLead(&m)
	if !r.Handed || len(routeKeys(r)) != 1 {
		t.Fatalf("lead MQL on arrival not handed: %+v", r.Score)
	}
}

func TestReopenedBadFitHandsOffWhenMQL(t *testing.T) {
	m := testModel()
	r := newLead(&m)
	mustSet(t, r, StatusChange{To: StatusBadFit, RequestID: "j"})
	ingest(r, &m, sig("d", SignalDemoRequest, t0))
	if len(routeKeys(r)) != 0 {
		t.Fatal("BAD_FIT lead handed to routing")
	}
	mustSet(t, r, StatusChange{To: StatusPotential, RequestID: "reopen"})
	if len(routeKeys(r)) != 1 {
		t.Fatal("re-opened MQL lead not handed to routing")
	}
}

func TestIngestIdempotentAndModelChangeRescores(t *testing.T) {
	m := testModel()
	r := newLead(&m)
	p := r.Profile
	if o := r.Ingest(&m, &p, []byte("raw"), nil, time.Time{}, CauseUpsert, "", "capture", t0.Add(time.Hour)); o.Changed {
		t.Fatal("the same profile again changed the record")
	}
	m2 := testModel()
	m2.Version = 8
	m2.Fit[0].Points = 25
	o := r.Ingest(&m2, nil, nil, nil, time.Time{}, CauseRescore, "", "ops", t0)
	if !o.Changed || !o.Scored || r.Score.ModelVersion != 8 || r.Score.Fit != 25 {
		t.Fatalf("new model did not rescore: %+v", r.Score)
	}
	if len(o.History) != 1 || o.History[0].Cause != CauseRescore {
		t.Fatalf("history %+v", o.History)
	}
}

func TestAsOfIsTheLatestEvent(t *testing.T) {
	m := testModel()
	r := newLead(&m)
	ingest(r, &m, sig("a", SignalPricingPageView, t0.Add(3*day)), sig("b", SignalPricingPageView, t0.Add(day)))
	if !r.Score.ScoredAt.Equal(t0.Add(3 * day)) {
		t.Fatalf("scored_at %v", r.Score.ScoredAt)
	}
	// An explicit rescore later decays: 10×2^(-7/7) + 10×2^(-9/7) = 5 + 4.1 = 9.
	r.Ingest(&m, nil, nil, nil, t0.Add(10*day), CauseRescore, "", "ops", t0)
	if r.Score.Engagement != 9 {
		t.Fatalf("engagement after decay = %d", r.Score.Engagement)
	}
}

func TestAssignKeysAndRemoveEffects(t *testing.T) {
	r := recordIn(StatusWorking, "rep")
	mustSet(t, r, StatusChange{To: StatusQualified, RequestID: "q"})
	n := 0
	r.AssignKeys(func() string { n++; return fmt.Sprint("ev-", n) })
	keys := map[string]bool{}
	for _, e := range r.Outbox {
		if e.Key == "" || keys[e.Key] {
			t.Fatalf("bad key %q", e.Key)
		}
		keys[e.Key] = true
	}
	r.RemoveEffects(map[string]bool{"deal:lead-1:1": true})
	if hasEffect(r, EffectCreateDeal) != nil || len(r.Outbox) != 3 {
		t.Fatalf("outbox %v", kinds(r))
	}
}
