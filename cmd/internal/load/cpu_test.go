package load

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// The split is per lead; the suite's share is what the machine spent
// beyond Redis and the load tool; the budget is cores × 30 / echo rate.
func TestCPUPerLeadSplitsTheMachinesTime(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	before := CPU{Machine: 10 * time.Second, Redis: 2 * time.Second, Self: time.Second, At: t0}
	after := CPU{Machine: 13300 * time.Millisecond, Redis: 3100 * time.Millisecond, Self: 1350 * time.Millisecond, At: t0.Add(2 * time.Second)}
	p := cpuPerLead(before, after, 1000, 40000)
	if p.Total != 3300*time.Microsecond || p.Redis != 1100*time.Microsecond || p.Load != 350*time.Microsecond || p.Rest != 1850*time.Microsecond {
		t.Fatalf("split %+v, want total 3.3 ms = Redis 1.1 + load 0.35 + rest 1.85", p)
	}
	if want := time.Duration(float64(runtime.NumCPU()) * 30 / 40000 * float64(time.Second)); p.Budget != want || p.Cores != runtime.NumCPU() {
		t.Fatalf("budget %v on %d cores, want %v", p.Budget, p.Cores, want)
	}
	if p.Busy != 1.65 {
		t.Fatalf("busy %v cores, want 1.65 (3.3 s of CPU in 2 s)", p.Busy)
	}
	// Clock granularity can make the rest negative; it is never reported so.
	if p := cpuPerLead(before, CPU{Machine: 11 * time.Second, Redis: 3 * time.Second, Self: 1100 * time.Millisecond}, 10, 0); p.Rest != 0 || p.Budget != 0 {
		t.Fatalf("rest %v budget %v, want 0 and 0 (no echo rate)", p.Rest, p.Budget)
	}
}

// The three clocks read on this machine and advance with work.
func TestReadCPUReadsTheThreeClocks(t *testing.T) {
	c := platformtest.StartRedis(t).Client()
	ctx := context.Background()
	a, ok := ReadCPU(ctx, c)
	if !ok {
		t.Skip("no /proc/stat here")
	}
	for i := 0; i < 20000; i++ {
		c.Set(ctx, "k", i, 0)
	}
	b, ok := ReadCPU(ctx, c)
	if !ok || b.Redis <= a.Redis || b.Self <= a.Self || b.Machine <= a.Machine {
		t.Fatalf("clocks did not advance: before %+v after %+v (%v)", a, b, ok)
	}
}
