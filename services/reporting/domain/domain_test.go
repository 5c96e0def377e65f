package domain

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
)

func TestStatsNearestRank(t *testing.T) {
	m := time.Minute
	tests := []struct {
		in       []time.Duration
		p50, p90 time.Duration
	}{
		{nil, 0, 0},
		{[]time.Duration{5 * m}, 5 * m, 5 * m},
		{[]time.Duration{3 * m, 1 * m}, 1 * m, 3 * m},
		{[]time.Duration{4 * m, 1 * m, 3 * m, 2 * m}, 2 * m, 4 * m},
		// ten values 1..10: p50 = rank 5, p90 = rank 9.
		{[]time.Duration{10 * m, 9 * m, 8 * m, 7 * m, 6 * m, 5 * m, 4 * m, 3 * m, 2 * m, 1 * m}, 5 * m, 9 * m},
		// eleven values: p50 = rank 6, p90 = rank ceil(9.9) = 10.
		{[]time.Duration{1 * m, 2 * m, 3 * m, 4 * m, 5 * m, 6 * m, 7 * m, 8 * m, 9 * m, 10 * m, 11 * m}, 6 * m, 10 * m},
	}
	for _, tt := range tests {
		got := Stats(tt.in)
		if got.Count != int64(len(tt.in)) || got.P50 != tt.p50 || got.P90 != tt.p90 {
			t.Errorf("Stats(%v) = %+v, want p50 %v p90 %v", tt.in, got, tt.p50, tt.p90)
		}
	}
}

func TestRatioBasisPointsRoundDown(t *testing.T) {
	for _, tt := range []struct{ num, den, bp int64 }{
		{0, 0, 0}, {1, 3, 3333}, {2, 3, 6666}, {3, 3, 10000}, {5, 4, 12500}, {1, 10001, 0},
	} {
		if got := (Ratio{tt.num, tt.den}).BasisPoints(); got != tt.bp {
			t.Errorf("%d/%d = %d bp, want %d", tt.num, tt.den, got, tt.bp)
		}
	}
}

func TestBucketOf(t *testing.T) {
	f := &Fact{CapturedAt: time.Date(2026, 11, 1, 23, 59, 0, 0, time.UTC), Source: "g", Campaign: "c", Team: "t", Rep: "r", Channel: "CHANNEL_API"}
	tests := []struct {
		g     GroupBy
		key   string
		start time.Time
	}{
		{GroupDay, "2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{GroupWeek, "2026-10-26", time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)}, // Sunday belongs to the week of Monday Oct 26
		{GroupMonth, "2026-11", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{GroupSource, "g", time.Time{}},
		{GroupCampaign, "c", time.Time{}},
		{GroupTeam, "t", time.Time{}},
		{GroupRep, "r", time.Time{}},
		{GroupChannel, "CHANNEL_API", time.Time{}},
		{GroupNone, "", time.Time{}},
	}
	for _, tt := range tests {
		if got := BucketOf(f, tt.g); got.Key != tt.key || !got.Start.Equal(tt.start) {
			t.Errorf("BucketOf(%v) = %+v, want %s %v", tt.g, got, tt.key, tt.start)
		}
	}
	monday := &Fact{CapturedAt: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	if got := BucketOf(monday, GroupWeek).Key; got != "2026-11-02" {
		t.Errorf("Monday's week = %s", got)
	}
}

func TestSpendCountedProRataByWholeDays(t *testing.T) {
	d := func(day int) time.Time { return time.Date(2026, 11, day, 0, 0, 0, 0, time.UTC) }
	s := Spend{Campaign: "c", From: d(1), To: d(11), Money: Money{"EUR", 1000}} // 10 days
	tests := []struct {
		from, to time.Time
		want     int64
	}{
		{d(1), d(11), 1000},
		{d(1), d(30), 1000},
		{d(5), d(8), 300},
		{d(10), d(20), 100},
		{d(11), d(20), 0},
		{d(5), d(5).Add(time.Hour), 100}, // the day starting at the period's start counts
		{d(5).Add(time.Hour), d(6), 0},   // no whole day starts inside
	}
	for _, tt := range tests {
		if got := s.Counted(tt.from, tt.to); got != tt.want {
			t.Errorf("Counted(%v, %v) = %d, want %d", tt.from, tt.to, got, tt.want)
		}
	}
	odd := Spend{From: d(1), To: d(4), Money: Money{"EUR", 100}} // 3 days: 33.3 per day
	if got := odd.Counted(d(1), d(2)); got != 33 {
		t.Errorf("one of three days of 100 = %d, want 33", got)
	}
}

func TestOutcomeFollowsTheLatestClose(t *testing.T) {
	k := func(h int) string { return EventKey(time.Date(2026, 11, 1, h, 0, 0, 0, time.UTC), "e") }
	tests := []struct {
		name string
		h    map[string]string
		want Outcome
	}{
		{"open", map[string]string{GroupDeal: k(1)}, OutcomeNone},
		{"won", map[string]string{GroupWon: k(2), "won.cur": "EUR", "won.amt": "5"}, OutcomeWon},
		{"lost", map[string]string{GroupLost: k(2)}, OutcomeLost},
		{"lost then won", map[string]string{GroupLost: k(2), GroupWon: k(3)}, OutcomeWon},
		{"won then lost", map[string]string{GroupWon: k(2), GroupLost: k(3)}, OutcomeLost},
		{"won then reopened", map[string]string{GroupWon: k(2), GroupReopened: k(3)}, OutcomeNone},
		{"reopened then won", map[string]string{GroupReopened: k(2), GroupWon: k(3)}, OutcomeWon},
	}
	for _, tt := range tests {
		if got := ParseFact("L", tt.h).Outcome; got != tt.want {
			t.Errorf("%s: outcome %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSLAOf(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		f    Fact
		want SLA
	}{
		{"untouched, no breach", Fact{}, SLANone},
		{"touched in time", Fact{FirstTouchAt: now, TouchWithinSLA: true}, SLAMet},
		{"touched late", Fact{FirstTouchAt: now}, SLAMissed},
		{"breached, untouched", Fact{FirstTouchBreachAt: now}, SLAMissed},
	}
	for _, tt := range tests {
		if got := SLAOf(&tt.f); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestOpsRejectInvalidEvents(t *testing.T) {
	ok := func() *eventsv1.LeadEvent {
		return &eventsv1.LeadEvent{Id: "e", LeadId: "L", OccurredAt: timestamppb.Now(),
			Payload: &eventsv1.LeadEvent_LeadCaptured{LeadCaptured: &eventsv1.LeadCaptured{}}}
	}
	if _, err := Ops(ok()); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*eventsv1.LeadEvent){
		"no id":          func(e *eventsv1.LeadEvent) { e.Id = "" },
		"no lead":        func(e *eventsv1.LeadEvent) { e.LeadId = "" },
		"no time":        func(e *eventsv1.LeadEvent) { e.OccurredAt = nil },
		"no payload":     func(e *eventsv1.LeadEvent) { e.Payload = nil },
		"won, no amount": func(e *eventsv1.LeadEvent) { e.Payload = &eventsv1.LeadEvent_DealWon{DealWon: &eventsv1.DealWon{}} },
	} {
		e := ok()
		mut(e)
		if _, err := Ops(e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// memApply mirrors the store's apply script on a map (the real script is
// exercised against Redis in the app tests).
func memApply(h map[string]string, applied map[string]bool, id string, ops []Op) {
	if applied[id] {
		return
	}
	applied[id] = true
	for _, op := range ops {
		switch op.Kind {
		case OpIncr:
			var n int64
			fmt.Sscan(h[op.Group], &n)
			h[op.Group] = fmt.Sprint(n + op.Delta)
		default:
			old, ok := h[op.Group]
			if !ok || (op.Kind == OpMin && op.Key < old) || (op.Kind == OpMax && op.Key > old) {
				h[op.Group] = op.Key
				for i := 0; i+1 < len(op.Fields); i += 2 {
					h[op.Group+"."+op.Fields[i]] = op.Fields[i+1]
				}
			}
		}
	}
}

// TestFactsDoNotDependOnDeliveryOrder applies a lead's events in many
// random orders, with random duplicates, and expects the same facts.
func TestFactsDoNotDependOnDeliveryOrder(t *testing.T) {
	base := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	mk := func(id string, min int, p any) *eventsv1.LeadEvent {
		e := &eventsv1.LeadEvent{Id: id, LeadId: "L", OccurredAt: timestamppb.New(base.Add(time.Duration(min) * time.Minute))}
		switch p := p.(type) {
		case *eventsv1.LeadCaptured:
			e.Payload = &eventsv1.LeadEvent_LeadCaptured{LeadCaptured: p}
		case *eventsv1.MqlReached:
			e.Payload = &eventsv1.LeadEvent_MqlReached{MqlReached: p}
		case *eventsv1.LeadScored:
			e.Payload = &eventsv1.LeadEvent_LeadScored{LeadScored: p}
		case *eventsv1.LeadTouched:
			e.Payload = &eventsv1.LeadEvent_LeadTouched{LeadTouched: p}
		case *eventsv1.SlaBreached:
			e.Payload = &eventsv1.LeadEvent_SlaBreached{SlaBreached: p}
		case *eventsv1.DealWon:
			e.Payload = &eventsv1.LeadEvent_DealWon{DealWon: p}
		case *eventsv1.DealLost:
			e.Payload = &eventsv1.LeadEvent_DealLost{DealLost: p}
		case *eventsv1.DealReopened:
			e.Payload = &eventsv1.LeadEvent_DealReopened{DealReopened: p}
		case *eventsv1.StageChanged:
			e.Payload = &eventsv1.LeadEvent_StageChanged{StageChanged: p}
		}
		return e
	}
	evs := []*eventsv1.LeadEvent{
		mk("a", 0, &eventsv1.LeadCaptured{Source: "google", Campaign: "c1"}),
		mk("b", 0, &eventsv1.LeadCaptured{Source: "bing", Campaign: "c2"}), // same time: the smaller id wins
		mk("c", 5, &eventsv1.LeadScored{Score: &leadv1.Score{Total: 50}}),
		mk("d", 9, &eventsv1.LeadScored{Score: &leadv1.Score{Total: 70}}),
		mk("e", 9, &eventsv1.MqlReached{Total: 70, Grade: leadv1.Grade_GRADE_B}),
		mk("f", 20, &eventsv1.MqlReached{Total: 75, Grade: leadv1.Grade_GRADE_A}), // second MQL: not the first
		mk("g", 30, &eventsv1.LeadTouched{RepId: "r1", WithinSla: true}),
		mk("h", 40, &eventsv1.LeadTouched{RepId: "r2"}),
		mk("i", 41, &eventsv1.SlaBreached{Kind: "touches"}),
		mk("j", 50, &eventsv1.StageChanged{ToStageId: "demo"}),
		mk("k", 60, &eventsv1.DealWon{Amount: &leadv1.Money{AmountMinor: 10, CurrencyCode: "EUR"}}),
		mk("l", 70, &eventsv1.DealReopened{StageId: "demo"}),
		mk("m", 80, &eventsv1.DealLost{Reason: "x"}),
		mk("n", 90, &eventsv1.DealWon{Amount: &leadv1.Money{AmountMinor: 20, CurrencyCode: "EUR"}}),
	}
	run := func(order []*eventsv1.LeadEvent) Fact {
		h, applied := map[string]string{}, map[string]bool{}
		for _, e := range order {
			ops, err := Ops(e)
			if err != nil {
				t.Fatal(err)
			}
			memApply(h, applied, e.GetId(), ops)
		}
		return ParseFact("L", h)
	}
	want := run(evs)
	if want.Source != "google" || want.MQLScore != 70 || want.Score != 70 || want.TouchRep != "r1" || !want.TouchWithinSLA ||
		want.Touches != 2 || want.Breaches != 1 || want.Outcome != OutcomeWon || want.WonAmount != 20 || want.Stages["demo"].IsZero() {
		t.Fatalf("facts in time order: %+v", want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		order := append([]*eventsv1.LeadEvent(nil), evs...)
		for j := 0; j < 5; j++ { // redeliveries
			order = append(order, proto.Clone(evs[rng.IntN(len(evs))]).(*eventsv1.LeadEvent))
		}
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		if d := cmp.Diff(want, run(order)); d != "" {
			t.Fatalf("order %d gives other facts (-time order +shuffled):\n%s", i, d)
		}
	}
}

// FuzzOps: any bytes that decode as a LeadEvent give ops or an error, never
// a panic, and ops only name known kinds.
func FuzzOps(f *testing.F) {
	seed, _ := proto.Marshal(&eventsv1.LeadEvent{Id: "e", LeadId: "L", OccurredAt: timestamppb.Now(),
		Payload: &eventsv1.LeadEvent_DealWon{DealWon: &eventsv1.DealWon{Amount: &leadv1.Money{AmountMinor: 1, CurrencyCode: "EUR"}}}})
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte("\x0a\x01e\x12\x01L"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := &eventsv1.LeadEvent{}
		if proto.Unmarshal(b, e) != nil {
			return
		}
		ops, err := Ops(e)
		if err != nil {
			return
		}
		for _, op := range ops {
			if op.Kind != OpMin && op.Kind != OpMax && op.Kind != OpIncr {
				t.Fatalf("unknown op kind %q", op.Kind)
			}
			if op.Kind != OpIncr && (len(op.Fields)%2 != 0 || KeyTime(op.Key).IsZero() && e.GetOccurredAt().AsTime().UnixMilli() > 0) {
				t.Fatalf("malformed op %+v", op)
			}
		}
	})
}

// FuzzParseFact: any hash parses without panicking.
func FuzzParseFact(f *testing.F) {
	f.Add("cap", "000000000000001|x", "won", "garbage")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		_ = ParseFact("L", map[string]string{k1: v1, k2: v2})
	})
}
