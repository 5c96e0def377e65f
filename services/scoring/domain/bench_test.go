package domain

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkScore measures pure scoring (default model, 0–30 signals per
// lead): leads/s is the throughput of one core without storage.
func BenchmarkScore(b *testing.B) {
	m := DefaultModel()
	m.Version = 1
	r := rand.New(rand.NewPCG(3, 4))
	type lead struct {
		p Profile
		s []Signal
	}
	leads := make([]lead, 1024)
	for i := range leads {
		p, s := randomProfile(r)
		leads[i] = lead{p, s}
	}
	asOf := t0.Add(90 * 24 * time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l := &leads[i%len(leads)]
		_ = m.Score(&l.p, l.s, asOf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leads/s")
}
