package seed_test

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
	"github.com/leadflow/leadflow/cmd/internal/seed"
	"github.com/leadflow/leadflow/cmd/internal/suitetest"
	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// Two real journeys (one taken on to QUALIFIED and a deal, one left
// assigned) are the templates; 50 clones of them must be real leads to every
// service: found by id in capture, scoring, routing and pipeline, listed in
// scoring's lists, counted in the rep loads, and the suite must still take
// new leads without collisions.
func TestSeedClonesAreRealLeads(t *testing.T) {
	r := platformtest.StartRedis(t)
	s, c := suitetest.Boot(t, r.URL(), suitetest.Options{})
	addrs := client.FromPeers(s.Peers())
	ctx := context.Background()
	const n = 50

	var log bytes.Buffer
	// Templates only (Further 0.01: the first journey goes on, the second not).
	if _, err := seed.Run(ctx, seed.Config{RedisURL: r.URL(), Templates: 2, Further: 0.01, Addrs: addrs, Token: platform.DevToken, Settle: time.Minute}, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	before := listed(t, c)
	if len(before) != 2 {
		t.Fatalf("after the template journeys scoring lists %d leads, want 2", len(before))
	}
	rep, err := seed.Run(ctx, seed.Config{RedisURL: r.URL(), Leads: n, Settle: time.Minute}, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log("\n" + out.String())
	if rep.Templates != 2 || rep.Clone.Leads != n || len(rep.Skipped) != 0 {
		t.Fatalf("templates %d, clones %d, skipped %v; want 2, %d, none", rep.Templates, rep.Clone.Leads, rep.Skipped, n)
	}
	after := listed(t, c)
	if len(after) != len(before)+n {
		t.Fatalf("scoring ListLeads: %d leads after seeding, want %d + %d", len(after), len(before), n)
	}
	var clones []string
	for id := range after {
		if !before[id] {
			clones = append(clones, id)
		}
	}
	deals := 0
	decisions := map[string]bool{}
	for _, id := range clones {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cl, err := c.Capture.GetLead(cctx, &capturev1.GetLeadRequest{LeadId: id})
		if err != nil || cl.GetLead().GetId() != id {
			t.Fatalf("capture GetLead(%s): %v, id %q", id, err, cl.GetLead().GetId())
		}
		sl, err := c.Scoring.GetLead(cctx, &scoringv1.GetLeadRequest{LeadId: id})
		if err != nil || sl.GetLead().GetLeadId() != id || sl.GetLead().GetScore().GetTotal() == 0 {
			t.Fatalf("scoring GetLead(%s): %v, %v", id, err, sl.GetLead())
		}
		a, err := c.Routing.GetAssignment(cctx, &routingv1.GetAssignmentRequest{LeadId: id})
		if err != nil || a.GetAssignment().GetLeadId() != id || a.GetAssignment().GetDecisionId() == "" {
			t.Fatalf("routing GetAssignment(%s): %v, %v", id, err, a.GetAssignment())
		}
		decisions[a.GetAssignment().GetDecisionId()] = true
		d, err := c.Pipeline.ListDeals(cctx, &pipelinev1.ListDealsRequest{LeadId: id})
		cancel()
		if err != nil {
			t.Fatalf("pipeline ListDeals(lead %s): %v", id, err)
		}
		for _, dl := range d.GetDeals() {
			if dl.GetLeadId() != id {
				t.Fatalf("pipeline ListDeals(lead %s) returned a deal of lead %s", id, dl.GetLeadId())
			}
			deals++
		}
		if sl.GetLead().GetStatus() == leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED && len(d.GetDeals()) != 1 {
			t.Fatalf("qualified clone %s has %d deals, want 1", id, len(d.GetDeals()))
		}
	}
	if len(decisions) != n {
		t.Errorf("%d distinct routing decision ids among %d clones: each clone must have its own", len(decisions), n)
	}
	if deals != n/2 {
		t.Errorf("clones with a deal: %d, want %d (half are clones of the qualified template)", deals, n/2)
	}

	// Routing's load counters match the reps' open leads.
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	loads, err := rdb.HGetAll(ctx, "lf:routing:{team:load}:load").Result()
	if err != nil {
		t.Fatal(err)
	}
	open := int64(0)
	for rp, v := range loads {
		nOpen, err := rdb.ZCard(ctx, "lf:routing:{team:load}:rep:"+rp).Result()
		if err != nil {
			t.Fatal(err)
		}
		if v != strconv.FormatInt(nOpen, 10) {
			t.Errorf("rep %s: load %s, open leads %d", rp, v, nOpen)
		}
		open += nOpen
	}
	if open < n/2 {
		t.Errorf("open leads in the reps' sets: %d, want at least %d", open, n/2)
	}

	// New journeys on the seeded store: no collisions, conservation holds.
	lr, err := load.Run(ctx, load.Config{Addrs: addrs, Token: platform.DevToken, RedisURL: r.URL(), Count: 10, Concurrency: 4}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !lr.OK() || lr.Accepted != 10 {
		t.Errorf("journeys after seeding: %d OK, conservation OK %t", lr.Accepted, lr.OK())
	}
}

// listed is every lead in scoring's lists, over all statuses.
func listed(t *testing.T, c *client.Clients) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for v := range leadv1.ProspectStatus_name {
		st := leadv1.ProspectStatus(v)
		if st == leadv1.ProspectStatus_PROSPECT_STATUS_UNSPECIFIED {
			continue
		}
		tok := ""
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := c.Scoring.ListLeads(ctx, &scoringv1.ListLeadsRequest{Status: st, PageSize: 500, PageToken: tok})
			cancel()
			if err != nil {
				t.Fatalf("ListLeads %s: %v", st, err)
			}
			for _, l := range resp.GetLeads() {
				out[l.GetLeadId()] = true
			}
			if tok = resp.GetNextPageToken(); tok == "" {
				break
			}
		}
	}
	return out
}
