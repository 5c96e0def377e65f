package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/suitetest"
	opsv1 "github.com/leadflow/leadflow/gen/go/leadflow/ops/v1"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// An undeliverable hand-off shows up in `leadflow jobs` and `jobs dead`
// and can be redriven, through each service's JobsService.
func TestJobsCommands(t *testing.T) {
	r := platformtest.StartRedis(t)
	s, c := bootSuite(t, r.URL(), nil)
	p := s.Peers()
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		root := newRoot(&out, &errOut)
		root.SetArgs(append(args, "--capture-addr", p.Capture, "--scoring-addr", p.Scoring, "--routing-addr", p.Routing,
			"--pipeline-addr", p.Pipeline, "--reporting-addr", p.Reporting))
		err := root.ExecuteContext(context.Background())
		return out.String() + errOut.String(), err
	}

	// Capture's worker cannot decode this payload: a permanent failure.
	ctx := context.Background()
	q := jobs.New(r.Client(), "capture-to-scoring", jobs.Options{})
	if _, err := q.Schedule(ctx, jobs.Job{ID: "upsert:broken:1", LeadID: "broken", Payload: []byte{0xff, 0xff}}); err != nil {
		t.Fatal(err)
	}
	dead := func() int64 {
		resp, err := c.Jobs["capture"].ListDeadJobs(ctx, &opsv1.ListDeadJobsRequest{Queue: "capture-to-scoring"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetTotal()
	}
	if !suitetest.Eventually(30*time.Second, func() bool { return dead() == 1 }) {
		t.Fatal("the undecodable hand-off never reached the dead letters")
	}

	out, err := cli("jobs")
	if err != nil {
		t.Fatalf("jobs: %v\n%s", err, out)
	}
	for _, want := range append([]string{"capture-to-scoring", "scoring-routing", "scoring-pipeline"}, client.JobServices...) {
		if !strings.Contains(out, want) {
			t.Errorf("`leadflow jobs` does not show %q:\n%s", want, out)
		}
	}
	out, err = cli("jobs", "dead", "capture", "capture-to-scoring")
	if err != nil || !strings.Contains(out, "1 dead") || !strings.Contains(out, "upsert:broken:1") || !strings.Contains(out, "undecodable") {
		t.Fatalf("jobs dead: %v\n%s", err, out)
	}
	out, err = cli("jobs", "redrive", "capture", "capture-to-scoring", "--all")
	if err != nil || !strings.Contains(out, "redriven: 1 job(s)") {
		t.Fatalf("jobs redrive --all: %v\n%s", err, out)
	}
	if out, err = cli("jobs", "dead", "reporting", "x"); err == nil || !strings.Contains(out+err.Error(), "no job queues") {
		t.Fatalf("jobs dead on a service without queues: %v\n%s", err, out)
	}
	if out, err = cli("jobs", "redrive", "capture", "capture-to-scoring"); err == nil {
		t.Fatalf("redrive without ids or --all was accepted:\n%s", out)
	}
}
