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

// BenchmarkMoveDeal moves deals back and forth (WATCH transaction, index
// maintenance, StageChanged event), spread over 100 deals so the stage
// history stays realistic (about 20 moves per deal at 2000x).
func BenchmarkMoveDeal(b *testing.B) {
	e := newEnv(b)
	ids := make([]string, 100)
	for i := range ids {
		res, err := e.client.CreateDealFromLead(e.ctx, &pipelinev1.CreateDealFromLeadRequest{LeadId: fmt.Sprint("bench-", i), OwnerRepId: "ann"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = res.GetDeal().GetId()
	}
	stages := []string{domain.StageDemo, domain.StageProposal}
	i := 0
	for b.Loop() {
		i++
		if _, err := e.client.MoveDeal(e.ctx, &pipelinev1.MoveDealRequest{DealId: ids[i%len(ids)], StageId: stages[(i/len(ids))%2]}); err != nil {
			b.Fatal(err)
		}
	}
}
