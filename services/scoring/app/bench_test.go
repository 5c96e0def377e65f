package app_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/scoring/app"
	"github.com/leadflow/leadflow/services/scoring/service"
)

// BenchmarkUpsertLead measures the stored path of capture's hand-off on a
// real redis-server: transaction, score, history, lists, events, outbox
// (no gRPC hop). Each iteration is a new lead; every 4th crosses MQL and
// schedules a RouteLead job.
func BenchmarkUpsertLead(b *testing.B) {
	r := platformtest.StartRedis(b)
	rt := platformtest.Runtime(b, "scoring", r.URL(), platform.WithSpanExporter(platformtest.Spans()))
	var sc *service.Scoring
	if _, err := app.New(context.Background(), rt, app.Config{SweepInterval: time.Hour}, app.WithPeers(nil, nil), app.Expose(&sc)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			p := profile(fmt.Sprint("bench-", i))
			if i%4 == 0 {
				p.ProductInterests = []string{"api"} // 55 + 5 = 60: MQL
			}
			p.CapturedAt = timestamppb.New(t0)
			if _, err := sc.UpsertLead(ctx, p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "leads/s")
	_ = leadv1.Seniority_SENIORITY_DIRECTOR
}
