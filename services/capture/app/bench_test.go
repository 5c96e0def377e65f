package app_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
)

// roundTrips counts Redis round trips: one per command, one per pipeline or
// MULTI/EXEC block.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkSubmitLead measures SubmitLead over loopback gRPC with a real
// redis-server: new leads (each a new e-mail) and merges (each goroutine
// resubmits its own e-mail), at several concurrencies. It reports leads/s,
// p50/p99 latency and Redis round trips per submission. The hand-off worker
// is off, so the figures are the request path only.
//
//	go test -run '^$' -bench SubmitLead -benchtime 2000x ./app/
func BenchmarkSubmitLead(b *testing.B) {
	e := newEnv(b, envOpt{})
	rt := &roundTrips{}
	e.rt.Redis.AddHook(rt)
	var seq atomic.Int64
	for _, kind := range []string{"new", "merge"} {
		for _, par := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/parallelism=%d", kind, par), func(b *testing.B) {
				var mu sync.Mutex
				lat := make([]time.Duration, 0, b.N)
				b.SetParallelism(par)
				rt.n.Store(0)
				start := time.Now()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					own := seq.Add(1)
					local := make([]time.Duration, 0, 256)
					for pb.Next() {
						email := fmt.Sprintf("bench-%d@own%d.example.com", own, own)
						if kind == "new" {
							i := seq.Add(1)
							email = fmt.Sprintf("bench-%d@co%d.example.com", i, i%500)
						}
						t0 := time.Now()
						_, err := e.client.SubmitLead(context.Background(), &capturev1.SubmitLeadRequest{Submission: submission(email, "")})
						local = append(local, time.Since(t0))
						if err != nil {
							b.Error(err)
							return
						}
					}
					mu.Lock()
					lat = append(lat, local...)
					mu.Unlock()
				})
				elapsed := time.Since(start)
				b.StopTimer()
				if len(lat) == 0 {
					return
				}
				slices.Sort(lat)
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "leads/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(rt.n.Load())/float64(len(lat)), "redis-rt/op")
			})
		}
	}
}
