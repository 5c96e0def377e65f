package domain

import (
	"testing"
	"time"
)

// FuzzScoreInvariants: whatever the profile and signals, the breakdown adds
// up, bands follow the thresholds, MQL follows the total, and scoring is
// deterministic.
func FuzzScoreInvariants(f *testing.F) {
	f.Add("software", int32(500), int64(2_000_000_000), "EUR", "DE", "EMEA", "CTO", int32(6), true, "api", int64(3600), int32(6))
	f.Add("", int32(0), int64(0), "", "", "", "", int32(0), false, "", int64(-100), int32(0))
	f.Fuzz(func(t *testing.T, industry string, emp int32, rev int64, cur, country, region, title string, sen int32, free bool, product string, ageSec int64, typ int32) {
		m := DefaultModel()
		m.Version = 1
		p := Profile{
			Industry: industry, EmployeeCount: emp, Revenue: &Money{AmountMinor: rev, CurrencyCode: cur},
			CountryCode: country, Region: region, JobTitle: title, Seniority: Seniority(sen), FreeMail: free,
			Products: []string{product}, CapturedAt: t0,
		}
		sigs := []Signal{{ID: "a", Type: SignalType(typ), At: t0.Add(time.Duration(ageSec) * time.Second)}, {ID: "b", Type: SignalDemoRequest, At: t0}}
		asOf := t0.Add(48 * time.Hour)
		a := m.Score(&p, sigs, asOf)
		b := m.Score(&p, []Signal{sigs[1], sigs[0]}, asOf)
		if !a.Equal(&b) {
			t.Fatalf("not deterministic: %+v vs %+v", a, b)
		}
		var sum int32
		for _, fc := range a.Factors {
			sum += fc.Points
		}
		if sum != a.Total || a.Fit+a.Engagement != a.Total {
			t.Fatalf("breakdown does not add up: %+v", a)
		}
		if a.MQL != (a.Total >= m.Thresholds.MQL) || a.Grade != m.Thresholds.Grade(a.Fit) || a.Heat != m.Thresholds.Heat(a.Engagement) {
			t.Fatalf("bands or MQL wrong: %+v", a)
		}
		// Engagement never exceeds the sum of the caps.
		var caps int32
		for _, r := range m.Engagement {
			caps += r.Cap
		}
		if a.Engagement > caps || a.Engagement < 0 {
			t.Fatalf("engagement %d outside [0, %d]", a.Engagement, caps)
		}
	})
}
