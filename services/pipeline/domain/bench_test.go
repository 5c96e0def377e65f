package domain

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkComputeForecast10k(b *testing.B) {
	p := DefaultPipeline(t0)
	stages := []string{StageDiscovery, StageDemo, StageProposal, StageNegotiation}
	deals := make([]Deal, 10000)
	for i := range deals {
		deals[i] = Deal{
			ID: fmt.Sprint(i), PipelineID: p.ID, OwnerRepID: fmt.Sprintf("rep%d", i%20), StageID: stages[i%4], Status: DealOpen,
			Amount: Money{Minor: int64(1000 + i*37), Currency: "EUR"}, ExpectedCloseAt: t0.AddDate(0, i%12, 0),
		}
	}
	months, _ := MonthRange("2026-03", "2027-02")
	b.ResetTimer()
	for b.Loop() {
		if _, err := ComputeForecast(&p, deals, months, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewQuote20Lines(b *testing.B) {
	lines := make([]LineSpec, 20)
	for i := range lines {
		lines[i] = LineSpec{Product: fmt.Sprint("p", i), Quantity: int64(i + 1), UnitPrice: Money{Minor: 9999, Currency: "EUR"}, DiscountBPS: int32(i * 100)}
	}
	for b.Loop() {
		if _, err := NewQuote("q", "d", 1, "EUR", lines, time.Time{}, t0); err != nil {
			b.Fatal(err)
		}
	}
}
