package store_test

import (
	"context"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/scoring/domain"
	"github.com/leadflow/leadflow/services/scoring/store"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func newStore(t *testing.T) (*store.Store, *redis.Client) {
	t.Helper()
	r := platformtest.StartRedis(t)
	c := r.Client()
	return store.New(c, store.Options{}), c
}

func TestModelsDefaultVersioningAndActivation(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	// Fresh install: the default model is version 1 and active.
	m, err := s.ActiveModel(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 1 || !m.Active || m.Name != "default" || len(m.Fit) == 0 {
		t.Fatalf("default model: %+v", m)
	}
	// A second store on the same Redis (another replica) does not install it twice.
	s2 := store.New(platformClient(t, s), store.Options{})
	_ = s2
	m2 := domain.DefaultModel()
	m2.Name = "stricter"
	m2.Thresholds.MQL = 80
	created, err := s.CreateModel(ctx, m2, false, t0)
	if err != nil {
		t.Fatal(err)
	}
	if created.Version != 2 || created.Active {
		t.Fatalf("created %+v", created)
	}
	if a, _ := s.ActiveModel(ctx, t0); a.Version != 1 {
		t.Fatalf("creating must not activate: active %d", a.Version)
	}
	got, err := s.GetModel(ctx, 2)
	if err != nil || got.Thresholds.MQL != 80 || got.Name != "stricter" || !got.CreatedAt.Equal(t0) {
		t.Fatalf("GetModel(2) = %+v, %v", got, err)
	}
	if _, err := s.ActivateModel(ctx, 2, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	a, _ := s.GetModel(ctx, 0)
	if a.Version != 2 || !a.Active || !a.ActivatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("active after activation: %+v", a)
	}
	if v1, _ := s.GetModel(ctx, 1); v1.Active {
		t.Fatal("version 1 still marked active")
	}
	if _, err := s.ActivateModel(ctx, 9, t0); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("activate unknown: %v", err)
	}
	if _, err := s.GetModel(ctx, 9); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	m3 := domain.DefaultModel()
	m3.Name = "third"
	if c, err := s.CreateModel(ctx, m3, true, t0); err != nil || c.Version != 3 || !c.Active {
		t.Fatalf("create+activate: %+v %v", c, err)
	}
	page, more, err := s.ListModels(ctx, 0, 2)
	if err != nil || !more || len(page) != 2 || page[0].Version != 3 || page[1].Version != 2 || !page[0].Active {
		t.Fatalf("ListModels page 1: %+v more=%v err=%v", page, more, err)
	}
	page, more, err = s.ListModels(ctx, 2, 2)
	if err != nil || more || len(page) != 1 || page[0].Version != 1 {
		t.Fatalf("ListModels page 2: %+v more=%v err=%v", page, more, err)
	}
}

func platformClient(t *testing.T, _ *store.Store) redis.UniversalClient {
	return platformtest.StartRedis(t).Client()
}

func TestConcurrentDefaultInstallGivesOneVersion(t *testing.T) {
	r := platformtest.StartRedis(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := store.New(r.Client(), store.Options{})
			if _, err := s.ActiveModel(ctx, t0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s := store.New(r.Client(), store.Options{})
	ms, _, err := s.ListModels(ctx, 0, 10)
	if err != nil || len(ms) != 1 || ms[0].Version != 1 {
		t.Fatalf("models after racing installs: %+v %v", ms, err)
	}
}

func put(t *testing.T, s *store.Store, r *domain.Record) {
	t.Helper()
	_, err := s.UpdateLead(context.Background(), r.LeadID, func(cur *domain.Record, _ []domain.Signal) (*domain.LeadWrite, error) {
		if cur != nil {
			r.Rev = cur.Rev
		}
		return &domain.LeadWrite{Record: r}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func rec(id string, st domain.Status, owner string, total int32, g domain.Grade, h domain.Heat) *domain.Record {
	r := domain.NewRecord(id, t0)
	r.Status, r.Owner = st, owner
	r.Score = domain.Score{Total: total, Grade: g, Heat: h}
	return r
}

func TestUpdateLeadPendingAndHistory(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.GetLead(ctx, "x"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("GetLead unknown: %v", err)
	}
	// A signal for an unknown lead is kept.
	for _, id := range []string{"s1", "s2", "s1"} {
		_, err := s.UpdateLead(ctx, "x", func(cur *domain.Record, pending []domain.Signal) (*domain.LeadWrite, error) {
			if cur != nil {
				t.Fatal("record exists")
			}
			return &domain.LeadWrite{AddPending: &domain.Signal{ID: id, Type: domain.SignalChat, At: t0}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var seen []domain.Signal
	_, err := s.UpdateLead(ctx, "x", func(cur *domain.Record, pending []domain.Signal) (*domain.LeadWrite, error) {
		seen = pending
		r := domain.NewRecord("x", t0)
		return &domain.LeadWrite{Record: r, ClearPending: true, History: []domain.HistoryEntry{{Cause: "a"}, {Cause: "b"}}}, nil
	})
	if err != nil || len(seen) != 2 {
		t.Fatalf("pending seen %v err %v", seen, err)
	}
	_, _ = s.UpdateLead(ctx, "x", func(cur *domain.Record, pending []domain.Signal) (*domain.LeadWrite, error) {
		if len(pending) != 0 || cur == nil || cur.Rev != 1 {
			t.Fatalf("after clear: pending %v cur %+v", pending, cur)
		}
		return &domain.LeadWrite{Record: cur, History: []domain.HistoryEntry{{Cause: "c"}}}, nil
	})
	h, more, err := s.ScoreHistory(ctx, "x", 0, 2)
	if err != nil || !more || len(h) != 2 || h[0].Cause != "c" || h[1].Cause != "b" {
		t.Fatalf("history page 1: %+v %v %v", h, more, err)
	}
	h, more, _ = s.ScoreHistory(ctx, "x", 2, 2)
	if more || len(h) != 1 || h[0].Cause != "a" {
		t.Fatalf("history page 2: %+v %v", h, more)
	}
}

func TestUpdateLeadConcurrentIncrementsAreNotLost(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	const n = 20
	var wg sync.WaitGroup
	var written atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateLead(ctx, "c", func(cur *domain.Record, _ []domain.Signal) (*domain.LeadWrite, error) {
				if cur == nil {
					cur = domain.NewRecord("c", t0)
				}
				cur.Signals = append(cur.Signals, domain.Signal{ID: fmt.Sprint(i)})
				return &domain.LeadWrite{Record: cur}, nil
			})
			switch {
			case err == nil:
				written.Add(1)
			case !errors.Is(err, domain.ErrConflict):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	r, err := s.GetLead(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if w := written.Load(); int64(len(r.Signals)) != w || r.Rev != w || w == 0 {
		t.Fatalf("lost update: %d signals at revision %d after %d updates answered OK", len(r.Signals), r.Rev, w)
	}
}

func TestListLeadsOrderFiltersPagingAndMoves(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	P, W := domain.StatusPotential, domain.StatusWorking
	put(t, s, rec("a", P, "", 10, domain.GradeC, domain.HeatCold))
	put(t, s, rec("b", P, "", 90, domain.GradeA, domain.HeatHot))
	put(t, s, rec("c", P, "", 50, domain.GradeA, domain.HeatWarm))
	put(t, s, rec("d", W, "rep1", 70, domain.GradeB, domain.HeatHot))
	put(t, s, rec("e", W, "rep2", 80, domain.GradeA, domain.HeatHot))

	ids := func(rs []*domain.Record) string {
		out := ""
		for _, r := range rs {
			out += r.LeadID
		}
		return out
	}
	list := func(q domain.ListQuery) (string, int64) {
		if q.Limit == 0 {
			q.Limit = 10
		}
		rs, next, err := s.ListLeads(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return ids(rs), next
	}
	if got, _ := list(domain.ListQuery{Status: P}); got != "bca" {
		t.Fatalf("potential = %q", got)
	}
	got, next := list(domain.ListQuery{Status: P, Limit: 2})
	if got != "bc" || next == 0 {
		t.Fatalf("page 1 = %q next %d", got, next)
	}
	if got, next := list(domain.ListQuery{Status: P, Limit: 2, Offset: next}); got != "a" || next != 0 {
		t.Fatalf("page 2 = %q next %d", got, next)
	}
	if got, _ := list(domain.ListQuery{Status: P, Grade: domain.GradeA}); got != "bc" {
		t.Fatalf("grade A = %q", got)
	}
	if got, _ := list(domain.ListQuery{Status: P, Grade: domain.GradeA, Heat: domain.HeatWarm}); got != "c" {
		t.Fatalf("grade A warm = %q", got)
	}
	if got, _ := list(domain.ListQuery{Status: W, Owner: "rep1"}); got != "d" {
		t.Fatalf("owner rep1 = %q", got)
	}
	if got, _ := list(domain.ListQuery{Status: W, Heat: domain.HeatHot}); got != "ed" {
		t.Fatalf("working hot = %q", got)
	}
	// b is accepted by rep1: it leaves Potential and joins rep1's Working list.
	put(t, s, rec("b", W, "rep1", 95, domain.GradeA, domain.HeatHot))
	if got, _ := list(domain.ListQuery{Status: P}); got != "ca" {
		t.Fatalf("potential after move = %q", got)
	}
	if got, _ := list(domain.ListQuery{Status: W, Owner: "rep1"}); got != "bd" {
		t.Fatalf("rep1 after move = %q", got)
	}
	if got, _ := list(domain.ListQuery{Status: P, Heat: domain.HeatHot}); got != "" {
		t.Fatalf("potential hot after move = %q", got)
	}
}

func TestFlushMarks(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	write := func() int64 {
		w, err := s.UpdateLead(ctx, "f", func(cur *domain.Record, _ []domain.Signal) (*domain.LeadWrite, error) {
			if cur == nil {
				cur = domain.NewRecord("f", t0)
			}
			return &domain.LeadWrite{Record: cur, Flush: true}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return w.Record.Rev
	}
	r1 := write()
	r2 := write()
	// Done at the older revision keeps the mark: a later write needs delivery.
	if err := s.FlushDone(ctx, "f", r1); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.FlushPending(ctx, 10); len(p) != 1 {
		t.Fatalf("mark cleared by an older revision: %v", p)
	}
	_ = s.FlushDone(ctx, "f", r2)
	if p, _ := s.FlushPending(ctx, 10); len(p) != 0 {
		t.Fatalf("mark not cleared: %v", p)
	}
	if ok, _ := s.Delivered(ctx, "f", "deal:f:1"); ok {
		t.Fatal("delivered before marking")
	}
	_ = s.MarkDelivered(ctx, domain.Handoff{LeadID: "f", Key: "deal:f:1"})
	if ok, _ := s.Delivered(ctx, "f", "deal:f:1"); !ok {
		t.Fatal("not delivered after marking")
	}
	if rec, ok, err := s.LeadDelivered(ctx, "f", "deal:f:1"); err != nil || !ok || rec.Rev != r2 {
		t.Fatalf("LeadDelivered = rev %v, %t, %v; want rev %d, true", rec, ok, err, r2)
	}
	if _, ok, _ := s.LeadDelivered(ctx, "f", "route:f:1"); ok {
		t.Fatal("LeadDelivered: an undelivered key reads as delivered")
	}
	if _, _, err := s.LeadDelivered(ctx, "nobody", "route:nobody:1"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("LeadDelivered of an unknown lead: %v, want ErrNotFound", err)
	}

	// Acknowledging with a revision clears that revision's mark in the same
	// call, and never a later one.
	r3 := write()
	r4 := write()
	if err := s.AckEffects(ctx, domain.Ack{LeadID: "f", Rev: r3}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.FlushPending(ctx, 10); len(p) != 1 || p[0].Rev != r4 {
		t.Fatalf("ack at revision %d touched the mark of %d: %v", r3, r4, p)
	}
	if err := s.AckEffects(ctx, domain.Ack{LeadID: "f", Rev: r4}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.FlushPending(ctx, 10); len(p) != 0 {
		t.Fatalf("ack at the marked revision left the mark: %v", p)
	}
}

// The record is stored as exactly the JSON encoding/json writes (the store
// encodes with a faster, compatible codec), so versions of scoring before
// and after the codec change read each other's records.
func TestRecordIsStoredAsTheStandardLibrarysJSON(t *testing.T) {
	s, c := newStore(t)
	r := rec("j1", domain.StatusWorking, "rep <a&b>", 71, domain.GradeA, domain.HeatHot)
	r.OrganisationID = "o1"
	r.Profile = domain.Profile{LeadID: "j1", Industry: "software", EmployeeCount: 250, Revenue: &domain.Money{AmountMinor: 4_000_000_000, CurrencyCode: "USD"},
		CountryCode: "SE", JobTitle: "VP \"Engineering\" – Ops", Products: []string{"analytics", "crm"}, CapturedAt: t0.Add(123456789 * time.Nanosecond),
		Traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"}
	r.ProfileRaw = []byte{0, 1, 2, 0xfe, 0xff}
	r.Signals = []domain.Signal{{ID: "s1", Type: domain.SignalType(1), At: t0}}
	r.Score.Factors = []domain.Factor{{RuleID: "fit.industry", Category: domain.CategoryFit, Points: 20, Reason: "industry is software (√)"}}
	r.Score.ScoredAt, r.Score.MQL = t0, true
	r.Bant = domain.Bant{Budget: &domain.Money{AmountMinor: 1, CurrencyCode: "EUR"}, BudgetConfirmed: true, NeedDescription: "line1\nline2\t\u2028", Timeline: t0, UpdatedAt: t0}
	r.Transitions = []domain.Transition{{From: domain.StatusPotential, To: domain.StatusWorking, Reason: "accepted", Actor: "rep-1", At: t0}}
	put(t, s, r)

	raw, err := c.Get(context.Background(), "lf:scoring:{lead:j1}:rec").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var std domain.Record
	if err := stdjson.Unmarshal(raw, &std); err != nil {
		t.Fatalf("encoding/json cannot read the stored record: %v", err)
	}
	again, err := stdjson.Marshal(&std)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(raw) {
		t.Fatalf("stored record differs from encoding/json's encoding:\nstored %s\nstd    %s", raw, again)
	}
	got, err := s.GetLead(context.Background(), "j1")
	if err != nil || got.Owner != r.Owner || got.Bant.NeedDescription != r.Bant.NeedDescription || string(got.ProfileRaw) != string(r.ProfileRaw) {
		t.Fatalf("read back: %+v, %v", got, err)
	}
}

// Signals added while another update creates the record from the pending
// ones are never lost: each ends in the record or stays pending.
func TestUpdateLeadPendingRaceLosesNoSignal(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sg := domain.Signal{ID: fmt.Sprintf("s%02d", i), Type: domain.SignalChat, At: t0}
			_, err := s.UpdateLead(ctx, "p", func(cur *domain.Record, pending []domain.Signal) (*domain.LeadWrite, error) {
				switch {
				case cur != nil:
					cur.Signals = append(cur.Signals, sg)
					return &domain.LeadWrite{Record: cur}, nil
				case i%10 == 5: // creates the record from what is pending
					r := domain.NewRecord("p", t0)
					r.Signals = append(append(r.Signals, pending...), sg)
					return &domain.LeadWrite{Record: r, ClearPending: true}, nil
				default:
					return &domain.LeadWrite{AddPending: &sg}, nil
				}
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var pending []domain.Signal
	_, err := s.UpdateLead(ctx, "p", func(_ *domain.Record, p []domain.Signal) (*domain.LeadWrite, error) {
		pending = p
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.GetLead(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, sg := range append(r.Signals, pending...) {
		got[sg.ID]++
	}
	if len(got) != n {
		t.Fatalf("%d distinct signals in the record and pending, want %d: %v", len(got), n, got)
	}
	for id, c := range got {
		if c != 1 {
			t.Fatalf("signal %s counted %d times", id, c)
		}
	}
}
