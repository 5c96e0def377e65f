package load

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/services/platform/redisx"
)

// CPU is the CPU time used so far by the whole machine (busy time in
// /proc/stat), by the Redis server (INFO cpu) and by this process
// (getrusage). With the suite and Redis on this machine, as the loopback
// rule makes them, the machine's time minus Redis's and the load tool's is
// the suite's (and whatever else runs here).
type CPU struct {
	Machine, Redis, Self time.Duration
	// At is when the clocks were read.
	At time.Time
}

// ReadCPU reads the three clocks; ok is false when one of them cannot be
// read (not Linux, or Redis does not answer).
func ReadCPU(ctx context.Context, rdb *redis.Client) (CPU, bool) {
	c := CPU{At: time.Now()}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c, false
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return c, false
	}
	// user nice system idle iowait irq softirq steal, in USER_HZ (100/s).
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return c, false
		}
		busy += n
	}
	c.Machine = time.Duration(busy) * 10 * time.Millisecond

	if c.Redis, err = redisx.ServerCPU(ctx, rdb); err != nil {
		return c, false
	}

	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return c, false
	}
	c.Self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return c, true
}

// CPUPerLead splits the CPU time of a run per lead answered OK.
type CPUPerLead struct {
	Total, Redis, Load, Rest time.Duration
	// Budget is what a lead may cost, all processes together, for the
	// journeys to reach 1/30 of the echo rate on this machine's cores.
	Budget time.Duration
	Cores  int
	// Busy is how many of the cores were busy on average: a rate that
	// keeps most of them busy leaves its tail to the machine's state.
	Busy float64
}

func cpuPerLead(before, after CPU, leads int64, echoRate float64) CPUPerLead {
	per := func(d time.Duration) time.Duration { return d / time.Duration(leads) }
	p := CPUPerLead{
		Total: per(after.Machine - before.Machine),
		Redis: per(after.Redis - before.Redis),
		Load:  per(after.Self - before.Self),
		Cores: runtime.NumCPU(),
	}
	p.Rest = max(p.Total-p.Redis-p.Load, 0)
	if wall := after.At.Sub(before.At); wall > 0 {
		p.Busy = float64(after.Machine-before.Machine) / float64(wall)
	}
	if echoRate > 0 {
		p.Budget = time.Duration(float64(p.Cores) / EchoShare / echoRate * float64(time.Second))
	}
	return p
}
