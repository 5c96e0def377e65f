package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The hand-off worker sends the leads due together in one UpsertLeads
// call, each with its current profile and a traceparent in its own lead's
// trace; while scoring is down every lead waits and is sent once it is back.
func TestHandoffsGoToScoringInOneCall(t *testing.T) {
	e := newEnv(t, envOpt{})
	var ids, traces []string
	for i := range 5 {
		r := submit(t, e, submission(fmt.Sprintf("batch%d@together.io", i), ""), "")
		ids, traces = append(ids, r.GetLeadId()), append(traces, r.GetTraceId())
	}
	e.scoring.setDown(true)
	if n, err := e.app.Queue.ProcessDueBatch(context.Background(), e.app.Capture.DeliverBatch); err != nil || n != 5 {
		t.Fatalf("claimed %d (%v), want the 5 hand-offs", n, err)
	}
	e.scoring.setDown(false)
	e.clock.Advance(2 * time.Minute) // past the backoff
	e.deliverAll(t)

	e.scoring.mu.Lock()
	defer e.scoring.mu.Unlock()
	if len(e.scoring.batches) != 1 || e.scoring.batches[0] != 5 {
		t.Fatalf("UpsertLeads calls %v, want one call with the 5 leads", e.scoring.batches)
	}
	for i, id := range ids {
		if e.scoring.upserts[id] != 1 || e.scoring.profiles[id].GetLeadId() != id {
			t.Errorf("lead %s delivered %d times", id, e.scoring.upserts[id])
		}
		if !e.scoring.traces[id][traces[i]] || len(e.scoring.traces[id]) != 1 {
			t.Errorf("lead %s: its upsert came in traces %v, want only its own %s", id, e.scoring.traces[id], traces[i])
		}
	}
	// One call for the batch (with the client's own retries of Unavailable),
	// not one per lead.
	if e.scoring.failures == 0 || e.scoring.failures >= len(ids) {
		t.Errorf("%d failed calls while scoring was down, want the attempts of one call (< %d leads)", e.scoring.failures, len(ids))
	}
	if d, _ := e.app.Queue.Depth(context.Background()); d != 0 {
		t.Fatalf("queue depth %d after delivery", d)
	}
}

// A scoring without UpsertLeads (older, during a rolling upgrade) still
// gets every lead, through single UpsertLead calls.
func TestHandoffsFallBackToSingleCallsOnAnOlderScoring(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.scoring.mu.Lock()
	e.scoring.noBatch = true
	e.scoring.mu.Unlock()
	var ids []string
	for i := range 3 {
		ids = append(ids, submit(t, e, submission(fmt.Sprintf("old%d@upgrade.io", i), ""), "").GetLeadId())
	}
	e.deliverAll(t)
	e.scoring.mu.Lock()
	defer e.scoring.mu.Unlock()
	for _, id := range ids {
		if e.scoring.upserts[id] != 1 {
			t.Errorf("lead %s delivered %d times, want once by UpsertLead", id, e.scoring.upserts[id])
		}
	}
	if d, _ := e.app.Queue.Depth(context.Background()); d != 0 {
		t.Fatalf("queue depth %d: hand-offs left", d)
	}
}
