package fault

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	capstore "github.com/leadflow/leadflow/services/capture/store"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// result is one SubmitLead call of a driver.
type result struct {
	at, end time.Time
	code    codes.Code
	leadID  string
}

// driver submits leads with `workers` concurrent callers until stopped.
type driver struct {
	mu      sync.Mutex
	results []result
	stop    chan struct{}
	wg      sync.WaitGroup
	n       atomic.Int64
}

// drive submits with `workers` callers, each pausing `pause` between calls.
func drive(c *client.Clients, run string, workers int, timeout, pause time.Duration) *driver {
	d := &driver{stop: make(chan struct{})}
	for w := 0; w < workers; w++ {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				select {
				case <-d.stop:
					return
				default:
				}
				i := int(d.n.Add(1))
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				t0 := time.Now()
				resp, err := c.Capture.SubmitLead(ctx, &capturev1.SubmitLeadRequest{Submission: load.Submission(run, i), IdempotencyKey: fmt.Sprintf("%s-%d", run, i)})
				cancel()
				d.mu.Lock()
				d.results = append(d.results, result{at: t0, end: time.Now(), code: status.Code(err), leadID: resp.GetLeadId()})
				d.mu.Unlock()
				if err != nil && pause < 20*time.Millisecond {
					time.Sleep(20 * time.Millisecond) // a client's pause before its next call
				} else {
					time.Sleep(pause)
				}
			}
		}()
	}
	return d
}

func (d *driver) Stop() []result {
	close(d.stop)
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.results
}

// extraLeads reads every lead capture stores and counts, for the
// submissions of run (each has an e-mail of its own, see load.Submission),
// the leads beyond one per submission: a submission stored twice. A look-up
// by e-mail cannot show that (an e-mail has one owner), nor can the ids
// answered (a second lead is never answered).
func extraLeads(ctx context.Context, t *testing.T, rdb *redis.Client, run string) int {
	t.Helper()
	perEmail := map[string]int{}
	iter := rdb.Scan(ctx, 0, capstore.LeadKey("*"), 1000).Iterator()
	for iter.Next(ctx) {
		raw, err := rdb.HGet(ctx, iter.Val(), "p").Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		l := &leadv1.Lead{}
		if err := proto.Unmarshal(raw, l); err != nil {
			t.Fatalf("lead %s: %v", iter.Val(), err)
		}
		if e := l.GetContact().GetEmail(); strings.Contains(e, "-"+run+".") {
			perEmail[e]++
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	extra := 0
	for _, n := range perEmail {
		extra += n - 1
	}
	return extra
}

// okIDs are the lead ids answered OK, and the number of ids answered to
// more than one submission.
func okIDs(rs []result) (ids []string, dups int) {
	seen := map[string]bool{}
	for _, r := range rs {
		if r.code != codes.OK {
			continue
		}
		if seen[r.leadID] {
			dups++
			continue
		}
		seen[r.leadID] = true
		ids = append(ids, r.leadID)
	}
	return ids, dups
}

func codeCounts(rs []result) string {
	m := map[codes.Code]int{}
	for _, r := range rs {
		m[r.code]++
	}
	var parts []string
	for c, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", c, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// routed waits up to d for every lead to be assigned or queued in routing
// and returns how many are.
func routed(c *client.Clients, ids []string, d time.Duration) int {
	deadline := time.Now().Add(d)
	pending := append([]string(nil), ids...)
	for len(pending) > 0 && time.Now().Before(deadline) {
		var next []string
		for _, id := range pending {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			a, err := c.Routing.GetAssignment(ctx, &routingv1.GetAssignmentRequest{LeadId: id})
			cancel()
			st := a.GetAssignment().GetState()
			if err != nil || (st != routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED && st != routingv1.AssignmentState_ASSIGNMENT_STATE_QUEUED && st != routingv1.AssignmentState_ASSIGNMENT_STATE_ACCEPTED) {
				next = append(next, id)
			}
		}
		pending = next
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return len(ids) - len(pending)
}

// assignmentsPerLead reads the assignment lists of the load setup's reps
// and counts the leads of ids listed more than once (assigned twice) and
// not at all.
func assignmentsPerLead(ctx context.Context, t *testing.T, c *client.Clients, ids []string) (twice, none int) {
	t.Helper()
	count := map[string]int{}
	for i := 0; i < 20; i++ {
		tok := ""
		for {
			resp, err := c.Routing.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{RepId: "load-rep-" + itoa(i), PageSize: 500, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range resp.GetAssignments() {
				count[a.GetLeadId()]++
			}
			if tok = resp.GetNextPageToken(); tok == "" {
				break
			}
		}
	}
	for _, id := range ids {
		switch count[id] {
		case 0:
			none++
		case 1:
		default:
			twice++
		}
	}
	return twice, none
}

// extraLeads sees a submission stored as two leads, and only the run's.
func TestExtraLeadsCountsASubmissionStoredTwice(t *testing.T) {
	rdb := platformtest.StartRedis(t).Client()
	ctx := context.Background()
	put := func(id string, sub *capturev1.LeadSubmission) {
		b, err := proto.Marshal(&leadv1.Lead{Id: id, Contact: sub.GetContact()})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(ctx, capstore.LeadKey(id), "p", b).Err(); err != nil {
			t.Fatal(err)
		}
	}
	put("a", load.Submission("x", 1))
	put("b", load.Submission("x", 1)) // the same submission again
	put("c", load.Submission("x", 2))
	put("d", load.Submission("y", 1))
	put("e", load.Submission("y", 1)) // another run's
	if got := extraLeads(ctx, t, rdb, "x"); got != 1 {
		t.Fatalf("extra leads of run x = %d, want 1", got)
	}
}
