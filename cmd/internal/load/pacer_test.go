package load

import (
	"context"
	"testing"
	"time"
)

// The pacer keeps the rate by schedule: with a clock that only its sleeps
// move, journey i starts at exactly i/rate; after a stall, the journeys
// that fell due meanwhile start at once, and the schedule goes on.
func TestPacerKeepsTheRateAfterAStall(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	now := t0
	var slept time.Duration
	p := &pacer{start: t0, rate: 1000, now: func() time.Time { return now }, sleep: func(_ context.Context, d time.Duration) bool {
		slept += d
		now = now.Add(d)
		return true
	}}
	ctx := context.Background()
	for i := range 10 {
		if !p.wait(ctx, i) {
			t.Fatal("wait ended early")
		}
		if got := now.Sub(t0); got != time.Duration(i)*time.Millisecond {
			t.Fatalf("journey %d started at %v, want %v", i, got, time.Duration(i)*time.Millisecond)
		}
	}
	// A 5 ms stall: journeys 10 to 14 are due by then and start without a sleep.
	now = now.Add(5 * time.Millisecond)
	before := slept
	for i := 10; i < 15; i++ {
		p.wait(ctx, i)
	}
	if slept != before {
		t.Fatalf("slept %v while catching up, want 0", slept-before)
	}
	p.wait(ctx, 15)
	if got := now.Sub(t0); got != 15*time.Millisecond {
		t.Fatalf("journey 15 started at %v, want 15ms", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if p.wait(cancelled, 15) {
		t.Fatal("a due journey was started after the run's context ended")
	}
}
