package app_test

import (
	"fmt"
	"testing"

	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	"github.com/leadflow/leadflow/services/pipeline/domain"
)

// BenchmarkCreateDealFromLead is the qualified-lead hand-off over gRPC on a
// real Redis, a new lead each time: slot claim, deal insert, indexes, event.
func BenchmarkCreateDealFromLead(b *testing.B) {
	e := newEnv(b)
	i := 0
	for b.Loop() {
		i++
		if _, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: fmt.Sprint("bench-", i), OwnerRepId: "ann"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateDealFromLeadRetry is a repeated hand-off of one lead (the
// idempotent path: claim finds the holder, returns its deal).
func BenchmarkCreateDealFromLeadRetry(b *testing.B) {
	e := newEnv(b)
	req := &pipelinev1.CreateDealFromLeadRequest{LeadId: "bench", OwnerRepId: "ann"}
	for b.Loop() {
		if _, err := e.client.CreateDealFromLead(e.ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMoveDeal moves one deal back and forth (WATCH transaction,
// index maintenance, StageChanged event).
func BenchmarkMoveDeal(b *testing.B) {
	e := newEnv(b)
	res, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: "bench", OwnerRepId: "ann"})
	if err != nil {
		b.Fatal(err)
	}
	stages := []string{domain.StageDemo, domain.StageProposal}
	i := 0
	for b.Loop() {
		i++
		if _, err := e.client.MoveDeal(e.ctx, &pipelinev1.MoveDealRequest{DealId: res.GetDeal().GetId(), StageId: stages[i%2]}); err != nil {
			b.Fatal(err)
		}
	}
}
