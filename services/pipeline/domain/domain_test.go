package domain

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

func seqIDs() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("s%d", n) }
}

func openDeal(t *testing.T) (Pipeline, Deal) {
	t.Helper()
	p := DefaultPipeline(t0)
	d, err := CreateDeal(&p, NewDeal{ID: "d1", LeadID: "l1", OwnerRepID: "rep1", Name: "Acme"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return p, d
}

func isViolation(err error, field string) bool {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	for _, v := range ve.Violations {
		if v.Field == field {
			return true
		}
	}
	return false
}

func TestDefaultPipeline(t *testing.T) {
	p := DefaultPipeline(t0)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		bps  int32
		kind StageKind
	}{
		{"Discovery", 1000, StageOpen}, {"Demo/Presentation", 2500, StageOpen}, {"Proposal", 5000, StageOpen},
		{"Negotiation", 7500, StageOpen}, {"Closed Won", 10000, StageWon}, {"Closed Lost", 0, StageLost},
	}
	if len(p.Stages) != len(want) {
		t.Fatalf("stages = %d", len(p.Stages))
	}
	for i, w := range want {
		s := p.Stages[i]
		if s.Name != w.name || s.ProbabilityBPS != w.bps || s.Kind != w.kind {
			t.Errorf("stage %d = %+v, want %+v", i, s, w)
		}
	}
	if p.FirstOpenStage().ID != StageDiscovery || p.WonStage().ID != StageClosedWon || p.LostStage().ID != StageClosedLost {
		t.Error("first/won/lost stage wrong")
	}
}

func TestNewPipelineRules(t *testing.T) {
	open := StageSpec{"A", 1000, StageOpen}
	won := StageSpec{"Won", 10000, StageWon}
	lost := StageSpec{"Lost", 0, StageLost}
	tests := []struct {
		name  string
		specs []StageSpec
		field string // "" = valid
	}{
		{"valid", []StageSpec{open, won, lost}, ""},
		{"no open stage", []StageSpec{won, lost, {"X", 0, StageLost}}, "stages"},
		{"two won stages", []StageSpec{open, won, {"Won2", 10000, StageWon}, lost}, "stages"},
		{"no lost stage", []StageSpec{open, won, {"B", 10, StageOpen}}, "stages"},
		{"duplicate name any case", []StageSpec{open, {"a", 20, StageOpen}, won, lost}, "stages"},
		{"won not 100%", []StageSpec{open, {"Won", 9000, StageWon}, lost}, "stages[1].probability_bps"},
		{"lost not 0%", []StageSpec{open, won, {"Lost", 1, StageLost}}, "stages[2].probability_bps"},
		{"probability above 100%", []StageSpec{{"A", 10001, StageOpen}, won, lost}, "stages[0].probability_bps"},
		{"negative probability", []StageSpec{{"A", -1, StageOpen}, won, lost}, "stages[0].probability_bps"},
		{"blank name", []StageSpec{{"  ", 10, StageOpen}, won, lost}, "stages[0].name"},
		{"no kind", []StageSpec{{"A", 10, 0}, won, lost}, "stages[0].kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPipeline("p", "P", tt.specs, seqIDs(), t0)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !isViolation(err, tt.field) {
				t.Fatalf("err = %v, want violation on %s", err, tt.field)
			}
		})
	}
}

func TestStageEditsKeepIDs(t *testing.T) {
	p := DefaultPipeline(t0)
	// Add an open stage: lands before the closed stages.
	st, err := p.AddStage("legal", StageSpec{"Legal review", 8500, StageOpen}, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Stages[4].ID != st.ID {
		t.Fatalf("new stage at %v", p.Stages)
	}
	if _, err := p.AddStage("x", StageSpec{"Pilot", 3000, StageOpen}, StageProposal, t0); err != nil || p.Stages[2].ID != "x" {
		t.Fatalf("insert before proposal: %v %v", err, p.Stages)
	}
	if _, err := p.AddStage("y", StageSpec{"Won again", 10000, StageWon}, "", t0); !isViolation(err, "stages") {
		t.Fatalf("second won stage: %v", err)
	}
	if _, err := p.AddStage("z", StageSpec{"pilot", 3000, StageOpen}, "", t0); !isViolation(err, "stages") {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := p.AddStage("z", StageSpec{"Z", 3000, StageOpen}, "nope", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown before: %v", err)
	}
	// Rename keeps the id; probability may change on open stages only.
	bps := int32(1500)
	if err := p.RenameStage(StageDiscovery, "Qualification", &bps, t0); err != nil {
		t.Fatal(err)
	}
	if s, _ := p.Stage(StageDiscovery); s.Name != "Qualification" || s.ProbabilityBPS != 1500 {
		t.Fatalf("renamed = %+v", s)
	}
	if err := p.RenameStage(StageClosedWon, "Won", &bps, t0); !isViolation(err, "stage.probability_bps") {
		t.Fatalf("won stage probability change: %v", err)
	}
	if err := p.RenameStage(StageDemo, "proposal", nil, t0); !isViolation(err, "stages") {
		t.Fatalf("rename to existing name: %v", err)
	}
	if err := p.RenameStage("nope", "x", nil, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rename unknown: %v", err)
	}
	// Reorder: a permutation of all ids.
	ids := []string{}
	for i := len(p.Stages) - 1; i >= 0; i-- {
		ids = append(ids, p.Stages[i].ID)
	}
	if err := p.ReorderStages(ids, t0); err != nil {
		t.Fatal(err)
	}
	if p.Stages[0].ID != ids[0] || p.FirstOpenStage().ID != "legal" {
		t.Fatalf("reordered = %v", p.Stages)
	}
	for _, bad := range [][]string{ids[1:], append(ids[1:], ids[1]), append(ids[1:], "nope")} {
		if err := p.ReorderStages(bad, t0); err == nil {
			t.Errorf("reorder %v accepted", bad)
		}
	}
}

func TestMoveRules(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*Pipeline, *Deal)
		to      string
		moved   bool
		wantErr error
	}{
		{"forward", nil, StageProposal, true, nil},
		{"back", func(p *Pipeline, d *Deal) { _, _ = d.Move(p, StageNegotiation, "r", t0) }, StageDemo, true, nil},
		{"same stage is a no-op", nil, StageDiscovery, false, nil},
		{"into won stage", nil, StageClosedWon, false, ErrFailedPrecondition},
		{"into lost stage", nil, StageClosedLost, false, ErrFailedPrecondition},
		{"unknown stage", nil, "nope", false, ErrNotFound},
		{"closed deal", func(p *Pipeline, d *Deal) {
			_, _ = d.CloseWon(p, Money{100, "EUR"}, t0, 12, "r", t0)
		}, StageDemo, false, ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, d := openDeal(t)
			if tt.setup != nil {
				tt.setup(&p, &d)
			}
			v, h := d.Version, len(d.History)
			moved, err := d.Move(&p, tt.to, "rep1", t0.Add(time.Hour))
			if !errors.Is(err, tt.wantErr) || moved != tt.moved {
				t.Fatalf("moved=%v err=%v; want %v %v", moved, err, tt.moved, tt.wantErr)
			}
			if moved {
				last := d.History[len(d.History)-1]
				if d.StageID != tt.to || last.To != tt.to || last.Actor != "rep1" || d.Version != v+1 || len(d.History) != h+1 {
					t.Fatalf("deal after move = %+v", d)
				}
			} else if d.Version != v || len(d.History) != h {
				t.Fatalf("unchanged deal changed: %+v", d)
			}
		})
	}
}

func TestCloseWonRules(t *testing.T) {
	eur := Money{500000, "EUR"}
	tests := []struct {
		name     string
		setup    func(*Pipeline, *Deal)
		amount   Money
		closedAt time.Time
		term     int
		field    string
		wantErr  error
		already  bool
	}{
		{"ok", nil, eur, t0.Add(time.Hour), 12, "", nil, false},
		{"no amount", nil, Money{}, t0, 12, "amount", nil, false},
		{"zero amount", nil, Money{0, "EUR"}, t0, 12, "amount.amount_minor", nil, false},
		{"negative amount", nil, Money{-1, "EUR"}, t0, 12, "amount.amount_minor", nil, false},
		{"bad currency", nil, Money{1, "eur"}, t0, 12, "amount.currency_code", nil, false},
		{"no close date", nil, eur, time.Time{}, 12, "closed_at", nil, false},
		{"close date in the future", nil, eur, t0.Add(72 * time.Hour), 12, "closed_at", nil, false},
		{"close date before creation day", nil, eur, t0.Add(-48 * time.Hour), 12, "closed_at", nil, false},
		{"same day before creation time is fine", nil, eur, t0.Add(-time.Hour), 12, "", nil, false},
		{"bad term", nil, eur, t0, 0, "renewal_term_months", nil, false},
		{"retry of the same close", func(p *Pipeline, d *Deal) { _, _ = d.CloseWon(p, eur, t0, 12, "r", t0) }, eur, t0, 12, "", nil, true},
		{"won with another amount", func(p *Pipeline, d *Deal) { _, _ = d.CloseWon(p, eur, t0, 12, "r", t0) }, Money{1, "EUR"}, t0, 12, "", ErrFailedPrecondition, false},
		{"lost deal", func(p *Pipeline, d *Deal) {
			_, _ = d.CloseLost(p, mustReasons(t), "timing", "", false, "r", t0)
		}, eur, t0, 12, "", ErrFailedPrecondition, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, d := openDeal(t)
			if tt.setup != nil {
				tt.setup(&p, &d)
			}
			already, err := d.CloseWon(&p, tt.amount, tt.closedAt, tt.term, "rep1", t0.Add(time.Hour))
			switch {
			case tt.field != "":
				if !isViolation(err, tt.field) {
					t.Fatalf("err = %v, want violation on %s", err, tt.field)
				}
				if d.Status != DealOpen {
					t.Fatal("invalid close changed the deal")
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if already != tt.already {
				t.Fatalf("already = %v", already)
			}
			if d.Status != DealWon || d.StageID != StageClosedWon || d.Amount != tt.amount || !d.ClosedAt.Equal(tt.closedAt) {
				t.Fatalf("deal = %+v", d)
			}
			if want := AddMonths(tt.closedAt, tt.term); !d.RenewalAt.Equal(want) {
				t.Fatalf("renewal = %v, want %v", d.RenewalAt, want)
			}
		})
	}
}

func mustReasons(t *testing.T) LostReasons {
	t.Helper()
	r, err := ParseLostReasons("")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCloseLostRules(t *testing.T) {
	tests := []struct {
		name    string
		noLead  bool
		setup   func(*Pipeline, *Deal)
		reason  string
		recycle bool
		field   string
		wantErr error
		already bool
		canon   string
	}{
		{"ok", false, nil, "no_budget", false, "", nil, false, "no_budget"},
		{"case-insensitive, canonical stored", false, nil, " No_Budget ", true, "", nil, false, "no_budget"},
		{"unknown reason", false, nil, "bored", false, "reason", nil, false, ""},
		{"recycle without lead", true, nil, "timing", true, "recycle", nil, false, ""},
		{"retry", false, func(p *Pipeline, d *Deal) {
			_, _ = d.CloseLost(p, mustReasons(t), "timing", "", true, "r", t0)
		}, "TIMING", true, "", nil, true, "timing"},
		{"lost again with another reason", false, func(p *Pipeline, d *Deal) {
			_, _ = d.CloseLost(p, mustReasons(t), "timing", "", true, "r", t0)
		}, "other", true, "", ErrFailedPrecondition, false, ""},
		{"won deal", false, func(p *Pipeline, d *Deal) { _, _ = d.CloseWon(p, Money{1, "EUR"}, t0, 12, "r", t0) }, "timing", false, "", ErrFailedPrecondition, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, d := openDeal(t)
			if tt.noLead {
				d.LeadID = ""
			}
			if tt.setup != nil {
				tt.setup(&p, &d)
			}
			already, err := d.CloseLost(&p, mustReasons(t), tt.reason, "note", tt.recycle, "rep1", t0)
			switch {
			case tt.field != "":
				if !isViolation(err, tt.field) {
					t.Fatalf("err = %v, want violation on %s", err, tt.field)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if already != tt.already || d.Status != DealLost || d.StageID != StageClosedLost || d.LostReason != tt.canon || d.Recycled != tt.recycle {
				t.Fatalf("already=%v deal=%+v", already, d)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	p, d := openDeal(t)
	if err := d.Reopen(&p, "", "r", t0); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("reopen open deal: %v", err)
	}
	_, _ = d.Move(&p, StageNegotiation, "r", t0)
	_, _ = d.CloseWon(&p, Money{1, "EUR"}, t0, 12, "r", t0)
	if err := d.Reopen(&p, StageClosedLost, "r", t0); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("reopen into lost stage: %v", err)
	}
	if err := d.Reopen(&p, "", "r", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d.Status != DealOpen || d.StageID != StageNegotiation || !d.RenewalAt.IsZero() || !d.ClosedAt.IsZero() {
		t.Fatalf("reopened deal = %+v", d)
	}
	_, _ = d.CloseLost(&p, mustReasons(t), "timing", "", true, "r", t0)
	if err := d.Reopen(&p, StageDemo, "r", t0); err != nil || d.StageID != StageDemo || d.Recycled || d.LostReason != "" {
		t.Fatalf("reopen into demo: %v %+v", err, d)
	}
}

func TestAddMonths(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"2026-01-31T10:00:00Z", 1, "2026-02-28T10:00:00Z"},
		{"2028-01-31T10:00:00Z", 1, "2028-02-29T10:00:00Z"},
		{"2026-03-15T00:00:00Z", 12, "2027-03-15T00:00:00Z"},
		{"2026-11-30T08:30:00Z", 3, "2027-02-28T08:30:00Z"},
		{"2026-12-31T23:59:59Z", 12, "2027-12-31T23:59:59Z"},
		{"2028-02-29T12:00:00Z", 12, "2029-02-28T12:00:00Z"},
	}
	for _, tt := range tests {
		in, _ := time.Parse(time.RFC3339, tt.in)
		if got := AddMonths(in, tt.n).Format(time.RFC3339); got != tt.want {
			t.Errorf("AddMonths(%s, %d) = %s, want %s", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestMulDivRound(t *testing.T) {
	tests := []struct {
		a, num, den, want int64
		err               bool
	}{
		{1000, 2500, 10000, 250, false},
		{1, 5000, 10000, 1, false},     // 0.5 → 1
		{-1, 5000, 10000, -1, false},   // -0.5 → -1 (away from zero)
		{3, 5000, 10000, 2, false},     // 1.5 → 2
		{5, 4999, 10000, 2, false},     // 2.4995 → 2
		{-5, 4999, 10000, -2, false},   // -2.4995 → -2
		{333, 3333, 10000, 111, false}, // 110.9889 → 111
		{math.MaxInt64, 10000, 10000, math.MaxInt64, false},
		{math.MaxInt64, 2, 1, 0, true},
	}
	for _, tt := range tests {
		got, err := MulDivRound(tt.a, tt.num, tt.den)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("MulDivRound(%d,%d,%d) = %d,%v want %d", tt.a, tt.num, tt.den, got, err, tt.want)
		}
	}
}

func FuzzMulDivRound(f *testing.F) {
	f.Add(int64(1), int64(5000), int64(10000))
	f.Add(int64(-7), int64(1234), int64(10000))
	f.Fuzz(func(t *testing.T, a, num, den int64) {
		if den <= 0 {
			return
		}
		got, err := MulDivRound(a, num, den)
		// Reference: exact rational, rounded half away from zero.
		r := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(a), big.NewInt(num)), big.NewInt(den))
		abs := new(big.Rat).Abs(r)
		half := new(big.Rat).Add(abs, big.NewRat(1, 2))
		q := new(big.Int).Quo(half.Num(), half.Denom())
		if r.Sign() < 0 {
			q.Neg(q)
		}
		if !q.IsInt64() {
			if err == nil {
				t.Fatalf("no overflow error for %d*%d/%d", a, num, den)
			}
			return
		}
		if err != nil || got != q.Int64() {
			t.Fatalf("MulDivRound(%d,%d,%d) = %d,%v want %s", a, num, den, got, err, q)
		}
	})
}

func TestQuoteTotals(t *testing.T) {
	eur := func(m int64) Money { return Money{m, "EUR"} }
	tests := []struct {
		name             string
		lines            []LineSpec
		sub, disc, total int64
		field            string
	}{
		{"one line no discount", []LineSpec{{"seat", 10, eur(4999), 0}}, 49990, 0, 49990, ""},
		{"discount rounds half away from zero", []LineSpec{{"seat", 1, eur(1), 5000}}, 1, 1, 0, ""},
		{"discount 12.5% of 1999", []LineSpec{{"seat", 1, eur(1999), 1250}}, 1999, 250, 1749, ""}, // 249.875 → 250
		{"several lines sum exactly", []LineSpec{
			{"seat", 3, eur(3333), 1000}, // 9999, disc 999.9 → 1000, total 8999
			{"support", 1, eur(100000), 2500},
			{"setup", 2, eur(0), 0},
		}, 109999, 26000, 83999, ""},
		{"full discount", []LineSpec{{"gift", 5, eur(700), 10000}}, 3500, 3500, 0, ""},
		{"currency mismatch", []LineSpec{{"seat", 1, Money{1, "USD"}, 0}}, 0, 0, 0, "line_items[0].unit_price.currency_code"},
		{"negative price", []LineSpec{{"seat", 1, eur(-1), 0}}, 0, 0, 0, "line_items[0].unit_price.amount_minor"},
		{"zero quantity", []LineSpec{{"seat", 0, eur(1), 0}}, 0, 0, 0, "line_items[0].quantity"},
		{"discount above 100%", []LineSpec{{"seat", 1, eur(1), 10001}}, 0, 0, 0, "line_items[0].discount_bps"},
		{"blank product", []LineSpec{{" ", 1, eur(1), 0}}, 0, 0, 0, "line_items[0].product"},
		{"overflow", []LineSpec{{"big", 1000000000, eur(math.MaxInt64 / 10), 0}}, 0, 0, 0, "line_items[0]"},
		{"total overflow", []LineSpec{{"a", 1, eur(math.MaxInt64), 0}, {"b", 1, eur(1), 0}}, 0, 0, 0, "line_items"},
		{"no lines", nil, 0, 0, 0, "line_items"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := NewQuote("q1", "d1", 1, "EUR", tt.lines, time.Time{}, t0)
			if tt.field != "" {
				if !isViolation(err, tt.field) {
					t.Fatalf("err = %v, want violation on %s", err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.Subtotal != tt.sub || q.DiscountTotal != tt.disc || q.Total != tt.total {
				t.Fatalf("sub/disc/total = %d/%d/%d, want %d/%d/%d", q.Subtotal, q.DiscountTotal, q.Total, tt.sub, tt.disc, tt.total)
			}
			var s, d, tot int64
			for _, l := range q.Lines {
				if l.Subtotal-l.Discount != l.Total {
					t.Fatalf("line does not add up: %+v", l)
				}
				s, d, tot = s+l.Subtotal, d+l.Discount, tot+l.Total
			}
			if s != q.Subtotal || d != q.DiscountTotal || tot != q.Total || q.Subtotal-q.DiscountTotal != q.Total {
				t.Fatal("quote does not add up")
			}
		})
	}
}

func TestQuoteLifecycle(t *testing.T) {
	mk := func(valid time.Time) Quote {
		q, err := NewQuote("q1", "d1", 1, "EUR", []LineSpec{{"seat", 1, Money{100, "EUR"}, 0}}, valid, t0)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	type step struct {
		op      string // send, accept, reject
		at      time.Time
		wantErr error
		status  QuoteStatus
	}
	later := t0.Add(48 * time.Hour)
	tests := []struct {
		name  string
		valid time.Time
		steps []step
	}{
		{"draft → sent → accepted", time.Time{}, []step{{"send", t0, nil, QuoteSent}, {"accept", t0, nil, QuoteAccepted}, {"accept", t0, nil, QuoteAccepted}}},
		{"sent → rejected", time.Time{}, []step{{"send", t0, nil, QuoteSent}, {"reject", t0, nil, QuoteRejected}, {"accept", t0, ErrFailedPrecondition, QuoteRejected}}},
		{"accept a draft", time.Time{}, []step{{"accept", t0, ErrFailedPrecondition, QuoteDraft}}},
		{"reject a draft", time.Time{}, []step{{"reject", t0, ErrFailedPrecondition, QuoteDraft}}},
		{"send twice", time.Time{}, []step{{"send", t0, nil, QuoteSent}, {"send", t0, nil, QuoteSent}}},
		{"send an accepted quote", time.Time{}, []step{{"send", t0, nil, QuoteSent}, {"accept", t0, nil, QuoteAccepted}, {"send", t0, ErrFailedPrecondition, QuoteAccepted}}},
		{"expired before accept", t0.Add(24 * time.Hour), []step{{"send", t0, nil, QuoteSent}, {"accept", later, ErrQuoteExpired, QuoteExpired}, {"accept", later, ErrFailedPrecondition, QuoteExpired}}},
		{"expired draft cannot be sent", t0.Add(24 * time.Hour), []step{{"send", later, ErrQuoteExpired, QuoteExpired}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := mk(tt.valid)
			for i, s := range tt.steps {
				var err error
				switch s.op {
				case "send":
					_, err = q.Send(s.at)
				case "accept":
					_, err = q.Accept(s.at)
				case "reject":
					_, err = q.Reject("too expensive", s.at)
				}
				if !errors.Is(err, s.wantErr) || q.Status != s.status {
					t.Fatalf("step %d %s: err=%v status=%v; want %v %v", i, s.op, err, q.Status, s.wantErr, s.status)
				}
			}
		})
	}
	if got := mk(t0.Add(time.Hour)).Effective(t0.Add(2 * time.Hour)); got.Status != QuoteExpired {
		t.Fatalf("effective status = %v", got.Status)
	}
}

func TestForecastArithmetic(t *testing.T) {
	p := DefaultPipeline(t0)
	mar := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	apr := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	deal := func(id, owner, stage string, status DealStatus, minor int64, cur string, month time.Time) Deal {
		d := Deal{ID: id, PipelineID: p.ID, OwnerRepID: owner, StageID: stage, Status: status, Amount: Money{minor, cur}}
		if status == DealOpen {
			d.ExpectedCloseAt = month
		} else {
			d.ClosedAt = month
		}
		if minor == 0 && cur == "" {
			d.Amount = Money{}
		}
		return d
	}
	deals := []Deal{
		deal("1", "ann", StageDiscovery, DealOpen, 1005, "EUR", mar),                                    // ×10% = 100.5
		deal("2", "ann", StageDiscovery, DealOpen, 1005, "EUR", mar),                                    // ×10% = 100.5 → exact sum 201
		deal("3", "bob", StageProposal, DealOpen, 333, "EUR", mar),                                      // ×50% = 166.5
		deal("4", "bob", StageClosedWon, DealWon, 10000, "EUR", mar),                                    // won: ×100%
		deal("5", "bob", StageClosedLost, DealLost, 99999, "EUR", mar),                                  // lost: left out
		deal("6", "ann", StageNegotiation, DealOpen, 2000, "USD", apr),                                  // ×75% = 1500
		deal("7", "ann", StageDemo, DealOpen, 0, "", apr),                                               // no amount
		deal("8", "ann", StageDemo, DealOpen, 1000, "EUR", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)), // out of range
		{ID: "9", PipelineID: "other", OwnerRepID: "ann", StageID: "x", Status: DealOpen, Amount: Money{1000, "EUR"}, ExpectedCloseAt: mar},
	}
	months, err := MonthRange("2026-03", "2026-04")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ComputeForecast(&p, deals, months, "")
	if err != nil {
		t.Fatal(err)
	}
	wantLines := []ForecastLine{
		{"2026-03", "ann", "EUR", 2, 2010, 201, 0},
		{"2026-03", "bob", "EUR", 2, 10333, 10167, 10000}, // 166.5 + 10000 = 10166.5 → 10167
		{"2026-04", "ann", "USD", 1, 2000, 1500, 0},
	}
	if fmt.Sprint(f.Lines) != fmt.Sprint(wantLines) {
		t.Fatalf("lines = %v\nwant    %v", f.Lines, wantLines)
	}
	wantMonth := []ForecastLine{
		{"2026-03", "", "EUR", 4, 12343, 10368, 10000}, // exact 201 + 10166.5 = 10367.5 → 10368
		{"2026-04", "", "USD", 1, 2000, 1500, 0},
	}
	if fmt.Sprint(f.ByMonth) != fmt.Sprint(wantMonth) {
		t.Fatalf("by month = %v\nwant       %v", f.ByMonth, wantMonth)
	}
	wantOwner := []ForecastLine{
		{"", "ann", "EUR", 2, 2010, 201, 0},
		{"", "ann", "USD", 1, 2000, 1500, 0},
		{"", "bob", "EUR", 2, 10333, 10167, 10000},
	}
	if fmt.Sprint(f.ByOwner) != fmt.Sprint(wantOwner) {
		t.Fatalf("by owner = %v\nwant       %v", f.ByOwner, wantOwner)
	}
	if f.DealsWithoutAmount != 1 {
		t.Fatalf("without amount = %d", f.DealsWithoutAmount)
	}
	f, _ = ComputeForecast(&p, deals, months, "bob")
	if len(f.Lines) != 1 || f.Lines[0].Owner != "bob" {
		t.Fatalf("owner filter: %v", f.Lines)
	}
}

func TestMonthRange(t *testing.T) {
	if m, err := MonthRange("2026-11", "2027-02"); err != nil || fmt.Sprint(m) != "[2026-11 2026-12 2027-01 2027-02]" {
		t.Fatalf("range = %v %v", m, err)
	}
	for _, bad := range [][2]string{{"2026-05", "2026-04"}, {"2026-01", "2029-02"}, {"2026-13", "2026-12"}, {"x", "2026-01"}} {
		if _, err := MonthRange(bad[0], bad[1]); err == nil {
			t.Errorf("MonthRange(%v) accepted", bad)
		}
	}
}

func FuzzParseMonth(f *testing.F) {
	f.Add("2026-03")
	f.Add("0000-00")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMonth(s)
		if err != nil {
			return
		}
		if m2, err := ParseMonth(m.String()); err != nil || m2 != m {
			t.Fatalf("round trip %q → %v → %v %v", s, m, m2, err)
		}
	})
}

func TestStageDurations(t *testing.T) {
	p, d := openDeal(t)
	h := time.Hour
	_, _ = d.Move(&p, StageDemo, "r", t0.Add(2*h))
	_, _ = d.Move(&p, StageDiscovery, "r", t0.Add(5*h))
	_, _ = d.Move(&p, StageDemo, "r", t0.Add(6*h))
	got := StageDurations(&d, t0.Add(10*h))
	want := fmt.Sprint([]StageDuration{{StageDiscovery, 3 * h, 2}, {StageDemo, 7 * h, 2}})
	if fmt.Sprint(got) != want {
		t.Fatalf("open: %v, want %v", got, want)
	}
	_, _ = d.CloseWon(&p, Money{1, "EUR"}, t0.Add(8*h), 12, "r", t0.Add(8*h))
	got = StageDurations(&d, t0.Add(100*h))
	want = fmt.Sprint([]StageDuration{{StageDiscovery, 3 * h, 2}, {StageDemo, 5 * h, 2}, {StageClosedWon, 0, 1}})
	if fmt.Sprint(got) != want {
		t.Fatalf("closed: %v, want %v", got, want)
	}
}

func TestLostReasons(t *testing.T) {
	r, err := ParseLostReasons(" price , Timing,,competitor ")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.List()) != "[price Timing competitor]" {
		t.Fatalf("list = %v", r.List())
	}
	if c, ok := r.Match("timing"); !ok || c != "Timing" {
		t.Fatalf("match = %q %v", c, ok)
	}
	if _, ok := r.Match("budget"); ok {
		t.Fatal("unknown matched")
	}
	if _, err := ParseLostReasons("a,A"); err == nil {
		t.Fatal("duplicate accepted")
	}
	if d, _ := ParseLostReasons(" , "); len(d.List()) != len(DefaultLostReasons) {
		t.Fatal("blank list should give defaults")
	}
}

func FuzzParseLostReasons(f *testing.F) {
	f.Add("a,b, c")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseLostReasons(s)
		if err != nil {
			return
		}
		for _, x := range r.List() {
			if c, ok := r.Match(x); !ok || c != x {
				t.Fatalf("reason %q does not match itself", x)
			}
		}
	})
}

func TestActivityRules(t *testing.T) {
	_, d := openDeal(t)
	due := t0.Add(24 * time.Hour)
	tests := []struct {
		name  string
		typ   ActivityType
		due   time.Time
		occ   time.Time
		field string
	}{
		{"call", ActivityCall, time.Time{}, time.Time{}, ""},
		{"task", ActivityTask, due, time.Time{}, ""},
		{"task without due date", ActivityTask, time.Time{}, time.Time{}, "due_at"},
		{"note with due date", ActivityNote, due, time.Time{}, "due_at"},
		{"future meeting", ActivityMeeting, time.Time{}, t0.Add(72 * time.Hour), "occurred_at"},
		{"no type", 0, time.Time{}, time.Time{}, "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewActivity("a1", &d, tt.typ, "Subject", "", "", tt.occ, tt.due, t0)
			if tt.field != "" {
				if !isViolation(err, tt.field) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || a.RepID != "rep1" || !a.OccurredAt.Equal(t0) {
				t.Fatalf("a=%+v err=%v", a, err)
			}
		})
	}
	task, _ := NewActivity("a2", &d, ActivityTask, "Follow up", "", "", time.Time{}, due, t0)
	if already, err := task.Complete(t0); err != nil || already || !task.CompletedAt.Equal(t0) {
		t.Fatal("complete")
	}
	if already, _ := task.Complete(t0.Add(time.Hour)); !already || !task.CompletedAt.Equal(t0) {
		t.Fatal("second complete changed it")
	}
	call, _ := NewActivity("a3", &d, ActivityCall, "Call", "", "", time.Time{}, time.Time{}, t0)
	if _, err := call.Complete(t0); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatal("completed a call")
	}
}

func TestHistoryCap(t *testing.T) {
	p, d := openDeal(t)
	stages := []string{StageDiscovery, StageDemo}
	for i := 1; i < MaxHistory; i++ {
		if _, err := d.Move(&p, stages[i%2], "r", t0); err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
	}
	if _, err := d.Move(&p, StageProposal, "r", t0); !errors.Is(err, ErrResourceExhausted) {
		t.Fatalf("move past the cap: %v", err)
	}
	if _, err := d.CloseLost(&p, mustReasons(t), "timing", "", false, "r", t0); err != nil {
		t.Fatalf("closing must stay possible: %v", err)
	}
}

func TestWeightedSumMatchesBigArithmetic(t *testing.T) {
	tests := [][]struct {
		amount int64
		bps    int32
	}{
		{{1005, 1000}, {1005, 1000}},          // 201
		{{-1, 5000}},                          // -0.5 → -1
		{{-3, 5000}, {1, 5000}},               // -1 → -1
		{{math.MaxInt64, 10000}, {1, 10000}},  // overflows int64 mid-way: big path
		{{math.MaxInt64, 10000}, {-5, 10000}}, // big path, back in range
		{{math.MaxInt64 / 2, 9999}, {math.MaxInt64 / 2, 9999}},
		{{math.MinInt64, 10000}, {math.MaxInt64, 10000}},
	}
	for i, adds := range tests {
		var w WeightedSum
		exact := new(big.Int)
		for _, a := range adds {
			w.Add(a.amount, a.bps)
			exact.Add(exact, new(big.Int).Mul(big.NewInt(a.amount), big.NewInt(int64(a.bps))))
		}
		want, wantErr := divRound(exact, big.NewInt(BPS))
		got, err := w.Minor()
		if got != want || (err == nil) != (wantErr == nil) {
			t.Errorf("case %d: %d,%v want %d,%v", i, got, err, want, wantErr)
		}
	}
}

func FuzzWeightedSum(f *testing.F) {
	f.Add(int64(1005), int32(1000), int64(-7), int32(5000))
	f.Fuzz(func(t *testing.T, a1 int64, b1 int32, a2 int64, b2 int32) {
		var w WeightedSum
		w.Add(a1, b1)
		w.Add(a2, b2)
		exact := new(big.Int).Add(new(big.Int).Mul(big.NewInt(a1), big.NewInt(int64(b1))), new(big.Int).Mul(big.NewInt(a2), big.NewInt(int64(b2))))
		want, wantErr := divRound(exact, big.NewInt(BPS))
		got, err := w.Minor()
		if got != want || (err == nil) != (wantErr == nil) {
			t.Fatalf("%d*%d + %d*%d: %d,%v want %d,%v", a1, b1, a2, b2, got, err, want, wantErr)
		}
	})
}
