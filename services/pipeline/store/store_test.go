package store_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/leadflow/leadflow/services/pipeline/domain"
	"github.com/leadflow/leadflow/services/pipeline/store"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

func newStore(t *testing.T) (*store.Store, context.Context) {
	t.Helper()
	r := platformtest.StartRedis(t)
	s := store.New(r.Client())
	ctx := context.Background()
	if err := s.EnsurePipeline(ctx, domain.DefaultPipeline(t0)); err != nil {
		t.Fatal(err)
	}
	return s, ctx
}

func id() string { return uuid.Must(uuid.NewV7()).String() }

func insert(t *testing.T, s *store.Store, ctx context.Context, owner string, closeAt time.Time) domain.Deal {
	t.Helper()
	p := domain.DefaultPipeline(t0)
	d, err := domain.CreateDeal(&p, domain.NewDeal{ID: id(), OwnerRepID: owner, Name: "D", ExpectedCloseAt: closeAt, Amount: domain.Money{Minor: 1000, Currency: "EUR"}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, created, err := s.InsertDeal(ctx, d)
	if err != nil || !created {
		t.Fatalf("insert: %v %v", created, err)
	}
	return got
}

func TestPipelines(t *testing.T) {
	s, ctx := newStore(t)
	// EnsurePipeline never overwrites.
	changed := domain.DefaultPipeline(t0)
	changed.Name = "Other"
	if err := s.EnsurePipeline(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.GetPipeline(ctx, domain.DefaultPipelineID); p.Name != "Sales" {
		t.Fatalf("default overwritten: %q", p.Name)
	}
	for i := range 3 {
		p := domain.DefaultPipeline(t0)
		p.ID, p.IsDefault, p.Name = id(), false, fmt.Sprintf("P%d", i)
		if err := s.CreatePipeline(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePipeline(ctx, p); !errors.Is(err, domain.ErrAlreadyExists) {
			t.Fatalf("second create: %v", err)
		}
	}
	for _, size := range []int{1, 2, 3, 10} {
		if names := listPipelineNames(t, s, ctx, size); fmt.Sprint(names) != "[Sales P0 P1 P2]" {
			t.Fatalf("page size %d: pipelines = %v", size, names)
		}
	}
	if _, err := s.GetPipeline(ctx, "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing pipeline: %v", err)
	}
	if _, _, err := s.ListPipelines(ctx, "!!!", 2); err == nil {
		t.Fatal("bad token accepted")
	}
}

func listPipelineNames(t *testing.T, s *store.Store, ctx context.Context, size int) []string {
	t.Helper()
	var names []string
	tok := ""
	for {
		ps, next, err := s.ListPipelines(ctx, tok, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			names = append(names, p.Name)
		}
		if len(ps) > size {
			t.Fatalf("page of %d for size %d", len(ps), size)
		}
		if next == "" {
			return names
		}
		tok = next
	}
}

func TestOpenSlot(t *testing.T) {
	s, ctx := newStore(t)
	if h, err := s.ClaimOpenSlot(ctx, "l1", "default", "d1"); err != nil || h != "d1" {
		t.Fatalf("claim = %q %v", h, err)
	}
	if h, _ := s.ClaimOpenSlot(ctx, "l1", "default", "d2"); h != "d1" {
		t.Fatalf("second claim = %q", h)
	}
	if h, _ := s.ClaimOpenSlot(ctx, "l1", "other", "d3"); h != "d3" {
		t.Fatalf("other pipeline claim = %q", h)
	}
	if ok, _ := s.SwapOpenSlot(ctx, "l1", "default", "dX", "d2"); ok {
		t.Fatal("swap from a non-holder")
	}
	if ok, _ := s.SwapOpenSlot(ctx, "l1", "default", "d1", "d2"); !ok {
		t.Fatal("swap from holder failed")
	}
	_ = s.ReleaseOpenSlot(ctx, "l1", "default", "d1") // not the holder: no effect
	if h, _ := s.ClaimOpenSlot(ctx, "l1", "default", "d9"); h != "d2" {
		t.Fatalf("holder after foreign release = %q", h)
	}
	_ = s.ReleaseOpenSlot(ctx, "l1", "default", "d2")
	if h, _ := s.ClaimOpenSlot(ctx, "l1", "default", "d9"); h != "d9" {
		t.Fatalf("claim after release = %q", h)
	}
}

func TestUpdateDealNoLostUpdates(t *testing.T) {
	s, ctx := newStore(t)
	d := insert(t, s, ctx, "ann", t0)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateDeal(ctx, d.ID, nil, func(d *domain.Deal) error {
				step := fmt.Sprintf("%s|%d", d.NextStep, i)
				return d.Update(domain.DealUpdate{NextStep: &step}, t0)
			}, nil)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	aborted := 0
	for err := range errs {
		if errors.Is(err, domain.ErrAborted) {
			aborted++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.GetDeal(ctx, d.ID)
	if got.Version != int64(1+n-aborted) {
		t.Fatalf("version = %d after %d successful updates", got.Version, n-aborted)
	}
	if parts := strings.Count(got.NextStep, "|"); parts != n-aborted {
		t.Fatalf("%d updates applied, %d succeeded: an update was lost", parts, n-aborted)
	}
	// A hook error aborts the write; an unchanged version writes nothing.
	hookErr := errors.New("hook failed")
	_, err := s.UpdateDeal(ctx, d.ID, nil, func(d *domain.Deal) error {
		s := "x"
		return d.Update(domain.DealUpdate{NextStep: &s}, t0)
	}, func(context.Context, *domain.Deal, *domain.Deal) error { return hookErr })
	if !errors.Is(err, hookErr) {
		t.Fatalf("hook error = %v", err)
	}
	if again, _ := s.GetDeal(ctx, d.ID); again.Version != got.Version {
		t.Fatal("deal written although the hook failed")
	}
	if _, err := s.UpdateDeal(ctx, "nope", nil, func(*domain.Deal) error { return nil }, nil); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing deal: %v", err)
	}
}

// UpdateDeal from a deal read earlier in the call (seen) does not read it
// again, yet a change made since that read is neither lost nor overwritten:
// the write compares the stored deal with seen's stored form.
func TestUpdateDealFromAStaleSeenDeal(t *testing.T) {
	r := platformtest.StartRedis(t)
	s, ctx := store.New(r.Client()), context.Background()
	if err := s.EnsurePipeline(ctx, domain.DefaultPipeline(t0)); err != nil {
		t.Fatal(err)
	}
	p := domain.DefaultPipeline(t0)
	d := insert(t, s, ctx, "ann", t0)
	seen, pl, err := s.GetDealWithPipeline(ctx, d.ID, domain.DefaultPipelineID)
	if err != nil || pl == nil || pl.ID != domain.DefaultPipelineID || seen.Version != d.Version {
		t.Fatalf("GetDealWithPipeline = %+v, %v, %v", seen, pl, err)
	}
	// Someone else moves the deal after our read.
	if _, err := s.UpdateDeal(ctx, d.ID, nil, func(d *domain.Deal) error {
		_, err := d.Move(&p, domain.StageProposal, "bob", t0)
		return err
	}, nil); err != nil {
		t.Fatal(err)
	}
	calls := 0
	step := "call back"
	got, err := s.UpdateDeal(ctx, d.ID, &seen, func(d *domain.Deal) error {
		calls++
		return d.Update(domain.DealUpdate{NextStep: &step}, t0)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := s.GetDeal(ctx, d.ID)
	if calls != 2 || stored.StageID != domain.StageProposal || stored.NextStep != step || stored.Version != d.Version+2 || got.Version != stored.Version {
		t.Fatalf("after a stale seen: %d calls, stored stage %q next step %q version %d (returned %d); want 2 calls, %q, %q, %d",
			calls, stored.StageID, stored.NextStep, stored.Version, got.Version, domain.StageProposal, step, d.Version+2)
	}
	// The move left the old stage's index and joined the new one's.
	rdb := r.Client()
	if _, err := rdb.ZScore(ctx, "lf:pipeline:{idx}:stage:"+d.StageID, d.ID).Result(); err == nil {
		t.Fatalf("deal still indexed under its old stage %q", d.StageID)
	}
	if _, err := rdb.ZScore(ctx, "lf:pipeline:{idx}:stage:"+domain.StageProposal, d.ID).Result(); err != nil {
		t.Fatalf("deal not indexed under its new stage: %v", err)
	}
	// With a seen that is current, fn runs once.
	calls = 0
	if _, err := s.UpdateDeal(ctx, d.ID, &got, func(d *domain.Deal) error {
		calls++
		s := "send quote"
		return d.Update(domain.DealUpdate{NextStep: &s}, t0)
	}, nil); err != nil || calls != 1 {
		t.Fatalf("current seen: %d calls, %v", calls, err)
	}
	// A pipeline guess that is not there, and a deal that is not there.
	if _, pl, err := s.GetDealWithPipeline(ctx, d.ID, "nope"); err != nil || pl != nil {
		t.Fatalf("missing pipeline: %v, %v", pl, err)
	}
	if _, _, err := s.GetDealWithPipeline(ctx, "nope", domain.DefaultPipelineID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing deal: %v", err)
	}
}

func TestListDealsFiltersAndPaging(t *testing.T) {
	s, ctx := newStore(t)
	p := domain.DefaultPipeline(t0)
	mar := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	apr := time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC)
	var ann []string
	for i := range 7 {
		d := insert(t, s, ctx, "ann", mar)
		ann = append(ann, d.ID)
		if i%2 == 0 {
			if _, err := s.UpdateDeal(ctx, d.ID, nil, func(d *domain.Deal) error {
				_, err := d.Move(&p, domain.StageProposal, "ann", t0)
				return err
			}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	bob := insert(t, s, ctx, "bob", apr)

	list := func(f domain.DealFilter, size int) []string {
		var ids []string
		tok := ""
		for {
			ds, next, err := s.ListDeals(ctx, f, tok, size)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if !f.Match(&d) {
					t.Fatalf("deal %s does not match %+v", d.ID, f)
				}
				ids = append(ids, d.ID)
			}
			if next == "" {
				return ids
			}
			tok = next
		}
	}
	rev := func(ids []string) []string {
		out := append([]string(nil), ids...)
		sort.Sort(sort.Reverse(sort.StringSlice(out)))
		return out
	}
	if got := list(domain.DealFilter{OwnerRepID: "ann"}, 3); fmt.Sprint(got) != fmt.Sprint(rev(ann)) {
		t.Fatalf("ann's deals newest first = %v, want %v", got, rev(ann))
	}
	if got := list(domain.DealFilter{StageID: domain.StageProposal}, 2); len(got) != 4 {
		t.Fatalf("proposal deals = %d, want 4", len(got))
	}
	// The moved deals left the discovery index (or are filtered out).
	if got := list(domain.DealFilter{StageID: domain.StageDiscovery}, 10); len(got) != 4 {
		t.Fatalf("discovery deals = %d, want 4 (3 ann + bob)", len(got))
	}
	if got := list(domain.DealFilter{CloseMonth: "2026-04"}, 10); fmt.Sprint(got) != fmt.Sprint([]string{bob.ID}) {
		t.Fatalf("april = %v", got)
	}
	if got := list(domain.DealFilter{PipelineID: "default", OwnerRepID: "ann", StageID: domain.StageDiscovery, CloseMonth: "2026-03", Status: domain.DealOpen}, 1); len(got) != 3 {
		t.Fatalf("combined filter = %d", len(got))
	}
	if got := list(domain.DealFilter{Status: domain.DealWon}, 10); len(got) != 0 {
		t.Fatalf("won deals = %v", got)
	}
	if got := list(domain.DealFilter{}, 100); len(got) != 8 {
		t.Fatalf("all = %d", len(got))
	}
	closing, err := s.DealsClosingIn(ctx, []string{"2026-03", "2026-04"})
	if err != nil || len(closing) != 8 {
		t.Fatalf("closing = %d %v", len(closing), err)
	}
}

func TestActivities(t *testing.T) {
	s, ctx := newStore(t)
	d := insert(t, s, ctx, "ann", t0)
	var ids []string
	for i := range 5 {
		a, err := domain.NewActivity(id(), &d, domain.ActivityCall, fmt.Sprintf("call %d", i), "", "", time.Time{}, time.Time{}, t0)
		if err != nil {
			t.Fatal(err)
		}
		got, created, err := s.AddActivity(ctx, a, fmt.Sprintf("req-%d", i))
		if err != nil || !created || got.ID != a.ID {
			t.Fatalf("add: %v %v", created, err)
		}
		ids = append(ids, a.ID)
	}
	// A repeated request id returns the first activity.
	dup, _ := domain.NewActivity(id(), &d, domain.ActivityCall, "again", "", "", time.Time{}, time.Time{}, t0)
	got, created, err := s.AddActivity(ctx, dup, "req-2")
	if err != nil || created || got.ID != ids[2] {
		t.Fatalf("repeat: %+v %v %v", got, created, err)
	}
	var listed []string
	tok := ""
	for {
		as, next, err := s.ListActivities(ctx, d.ID, tok, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			listed = append(listed, a.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if fmt.Sprint(listed) != fmt.Sprint(ids) {
		t.Fatalf("listed %v, want %v", listed, ids)
	}
	orphan := dup
	orphan.DealID = "nope"
	if _, _, err := s.AddActivity(ctx, orphan, ""); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("activity on missing deal: %v", err)
	}
	if _, err := s.UpdateActivity(ctx, d.ID, "nope", func(*domain.Activity) error { return nil }); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing activity: %v", err)
	}
}

func TestQuoteVersionsUnderConcurrency(t *testing.T) {
	s, ctx := newStore(t)
	d := insert(t, s, ctx, "ann", t0)
	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := s.AddQuote(ctx, d.ID, func(d *domain.Deal, v int32) (domain.Quote, error) {
					return domain.NewQuote(id(), d.ID, v, "EUR", []domain.LineSpec{{Product: "x", Quantity: 1, UnitPrice: domain.Money{Minor: 1, Currency: "EUR"}}}, time.Time{}, t0)
				})
				if errors.Is(err, domain.ErrAborted) {
					continue
				}
				if err != nil {
					t.Error(err)
				}
				return
			}
		}()
	}
	wg.Wait()
	qs, err := s.ListQuotes(ctx, d.ID)
	if err != nil || len(qs) != n {
		t.Fatalf("quotes = %d %v", len(qs), err)
	}
	for i, q := range qs {
		if q.Version != int32(i+1) {
			t.Fatalf("versions: %d at %d", q.Version, i)
		}
	}
	// UpdateQuote keeps (writes) an expiry and returns its error.
	keepErr := errors.New("keep me")
	_, q, err := s.UpdateQuote(ctx, d.ID, qs[0].ID, func(_ *domain.Deal, q *domain.Quote) error {
		q.Status = domain.QuoteExpired
		return keepErr
	}, func(err error) bool { return errors.Is(err, keepErr) })
	if !errors.Is(err, keepErr) || q.Status != domain.QuoteExpired {
		t.Fatalf("kept error: %v %v", err, q.Status)
	}
	if qs, _ := s.ListQuotes(ctx, d.ID); qs[0].Status != domain.QuoteExpired {
		t.Fatal("kept change not written")
	}
}

// A lead filter reads the lead's open-deal slots: its open deal in each
// pipeline, newest first, paged; closed deals (a stale slot), deals of other
// leads and a claimed slot whose deal is not written are not listed, and no
// index is walked however many deals exist.
func TestListDealsByLead(t *testing.T) {
	rdb := platformtest.StartRedis(t).Client()
	s := store.New(rdb)
	ctx := context.Background()
	def := domain.DefaultPipeline(t0)
	other := domain.DefaultPipeline(t0)
	other.ID, other.Name, other.IsDefault = id(), "Renewals", false
	for _, p := range []domain.Pipeline{def, other} {
		if err := s.EnsurePipeline(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	open := func(lead string, p *domain.Pipeline, owner string) domain.Deal {
		t.Helper()
		d, err := domain.CreateDeal(p, domain.NewDeal{ID: id(), LeadID: lead, OwnerRepID: owner, Name: "D", Amount: domain.Money{Minor: 1000, Currency: "EUR"}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if h, err := s.ClaimOpenSlot(ctx, lead, p.ID, d.ID); err != nil || h != d.ID {
			t.Fatalf("claim = %q %v", h, err)
		}
		if _, _, err := s.InsertDeal(ctx, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	inDefault := open("lead-a", &def, "ann")
	inOther := open("lead-a", &other, "bob")
	for range 150 { // other leads' deals: the lead filter must not walk them
		insert(t, s, ctx, "ann", t0)
	}
	open("lead-b", &def, "ann")
	// lead-c: its deal was closed but the slot release was lost.
	stale := open("lead-c", &def, "ann")
	if _, err := s.UpdateDeal(ctx, stale.ID, nil, func(d *domain.Deal) error {
		_, err := d.CloseWon(&def, domain.Money{Minor: 1000, Currency: "EUR"}, t0, 12, "ann", t0)
		return err
	}, nil); err != nil {
		t.Fatal(err)
	}
	// lead-d: a hand-off claimed the slot and has not written its deal yet.
	if _, err := s.ClaimOpenSlot(ctx, "lead-d", def.ID, id()); err != nil {
		t.Fatal(err)
	}

	list := func(f domain.DealFilter, size int) []string {
		t.Helper()
		var ids []string
		tok := ""
		for range 10 {
			ds, next, err := s.ListDeals(ctx, f, tok, size)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				ids = append(ids, d.ID)
			}
			if next == "" {
				return ids
			}
			tok = next
		}
		t.Fatalf("%+v: more than 10 pages", f)
		return nil
	}
	newestFirst := []string{inDefault.ID, inOther.ID}
	sort.Sort(sort.Reverse(sort.StringSlice(newestFirst)))
	before, err := redisx.CommandCalls(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 2, 50} {
		if got := list(domain.DealFilter{LeadID: "lead-a"}, size); fmt.Sprint(got) != fmt.Sprint(newestFirst) {
			t.Fatalf("lead-a, pages of %d = %v, want %v", size, got, newestFirst)
		}
	}
	after, err := redisx.CommandCalls(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if n := after["zrevrangebylex"] - before["zrevrangebylex"]; n != 0 {
		t.Errorf("the lead filter walked an index (%d ZREVRANGEBYLEX)", n)
	}
	// Every call: ZRANGE of the pipelines, a GET of the lead's slot in each
	// (2) and of the deals they name (at most 2): 4 calls, 16 GETs at most.
	if n := after["get"] - before["get"]; n > 16 {
		t.Errorf("the lead filter read %d keys for 2 deals in 4 pages", n)
	}
	for _, tc := range []struct {
		f    domain.DealFilter
		want []string
	}{
		{domain.DealFilter{LeadID: "lead-a", PipelineID: other.ID}, []string{inOther.ID}},
		{domain.DealFilter{LeadID: "lead-a", OwnerRepID: "ann"}, []string{inDefault.ID}},
		{domain.DealFilter{LeadID: "lead-a", Status: domain.DealOpen, StageID: domain.StageDiscovery, PipelineID: def.ID}, []string{inDefault.ID}},
		{domain.DealFilter{LeadID: "lead-a", Status: domain.DealWon}, nil},
		{domain.DealFilter{LeadID: "lead-c"}, nil},
		{domain.DealFilter{LeadID: "lead-d"}, nil},
		{domain.DealFilter{LeadID: "lead-none"}, nil},
	} {
		if got := list(tc.f, 10); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%+v = %v, want %v", tc.f, got, tc.want)
		}
	}
}
