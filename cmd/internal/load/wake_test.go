package load

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkSleepWake measures the CPU time one sleep and wake-up of a
// thread costs on this machine (cpu-µs/op, from getrusage): what every hop
// of a lead pays at low concurrency, where nothing shares a wake-up. The
// README's eighth-session figures quote it.
func BenchmarkSleepWake(b *testing.B) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Skip("no getrusage here")
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	for b.Loop() {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(cpu()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}
