package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/leadflow/leadflow/cmd/internal/apply"
	"github.com/leadflow/leadflow/cmd/internal/demo"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// TestDemo runs the demo against the suite on a real redis-server: every
// call succeeds, every hand-off happens, and the funnel reporting computes
// matches what the demo did step by step (Run fails otherwise).
func TestDemo(t *testing.T) {
	r := platformtest.StartRedis(t)
	logs := &platformtest.LogBuffer{}
	_, c := bootSuite(t, r.URL(), func(string) []platform.Option { return []platform.Option{platform.WithLogOutput(logs)} })
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("service logs:\n" + logs.String())
		}
	})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := demo.Run(ctx, c, demo.Options{Leads: 30, Seed: 3, RunID: "t1", Wait: 20 * time.Second, Config: demoConfig, Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if sum.NewLeads+sum.Merged != 30 || sum.Merged == 0 {
		t.Errorf("captured %d new + %d merged, want 30 submissions with some merges", sum.NewLeads, sum.Merged)
	}
	if sum.MQL == 0 || sum.Won == 0 || sum.Lost == 0 || sum.Junk+sum.Recycled+sum.Unreachable == 0 {
		t.Errorf("the demo did not cover the journey: %+v", sum)
	}
	if len(sum.JourneyTraceID) != 32 || sum.JourneyLeadID == "" {
		t.Errorf("no full journey named: lead %q trace %q", sum.JourneyLeadID, sum.JourneyTraceID)
	}
	if !strings.Contains(out.String(), "The funnel adds up") {
		t.Error("the demo did not confirm the funnel")
	}

	// Applying the same configuration again changes nothing.
	f, err := apply.Parse(demoConfig)
	if err != nil {
		t.Fatal(err)
	}
	res, err := apply.Apply(ctx, c, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range res {
		if x.Action != "unchanged" {
			t.Errorf("second apply: %s, want unchanged", x)
		}
	}

	// A second run with the same seed and another run id makes new leads
	// and the same decisions about them.
	var out2 bytes.Buffer
	sum2, err := demo.Run(ctx, c, demo.Options{Leads: 30, Seed: 3, RunID: "t2", Wait: 20 * time.Second, Out: &out2})
	if err != nil {
		t.Fatalf("second demo: %v\n%s", err, out2.String())
	}
	if sum2.NewLeads != sum.NewLeads || sum2.MQL != sum.MQL || sum2.Won != sum.Won || sum2.Lost != sum.Lost || sum2.Junk != sum.Junk {
		t.Errorf("same seed, different run:\n%+v\n%+v", sum, sum2)
	}
}
