package jobsapi_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	opsv1 "github.com/leadflow/leadflow/gen/go/leadflow/ops/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/jobs/jobsapi"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// Jobs that exhaust their attempts show up in ListQueues and ListDeadJobs
// (paged, oldest first, with lead, attempts, error, trace); a redrive puts
// one back once and it is then delivered; bad names and tokens are clear
// errors.
func TestDeadJobsListedPagedAndRedriven(t *testing.T) {
	r := platformtest.StartRedis(t)
	rt := platformtest.Runtime(t, "capture", r.URL())
	ctx := context.Background()
	failing := jobs.New(rt.Redis, "failing", jobs.Options{MaxAttempts: 1})
	idle := jobs.New(rt.Redis, "idle", jobs.Options{})
	conn := platformtest.Serve(t, rt, platform.Service{
		Register: func(s *grpc.Server) { jobsapi.Register(s, failing, idle) },
		Names:    []string{jobsapi.ServiceName},
	})
	c := opsv1.NewJobsServiceClient(conn)

	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for i := range 5 {
		if _, err := failing.Schedule(ctx, jobs.Job{ID: fmt.Sprint("job-", i), LeadID: fmt.Sprint("lead-", i), Traceparent: tp}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := idle.Schedule(ctx, jobs.Job{ID: "later", Due: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	boom := func(context.Context, jobs.Job) error { return errors.New("scoring said no") }
	if n, err := failing.ProcessDue(ctx, boom); err != nil || n != 5 {
		t.Fatalf("ProcessDue = %d, %v", n, err)
	}

	qs, err := c.ListQueues(ctx, &opsv1.ListQueuesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, q := range qs.GetQueues() {
		got[q.GetName()] = fmt.Sprintf("depth=%d due=%d dead=%d", q.GetDepth(), q.GetDue(), q.GetDead())
	}
	if got["failing"] != "depth=0 due=0 dead=5" || got["idle"] != "depth=1 due=0 dead=0" || len(got) != 2 {
		t.Fatalf("ListQueues = %v", got)
	}

	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		resp, err := c.ListDeadJobs(ctx, &opsv1.ListDeadJobsRequest{Queue: "failing", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotal() != 5 {
			t.Fatalf("total = %d, want 5", resp.GetTotal())
		}
		for _, j := range resp.GetJobs() {
			if j.GetAttempts() != 1 || j.GetLastError() != "scoring said no" || j.GetTraceId() != "0af7651916cd43dd8448eb211c80319c" ||
				j.GetLeadId() != "lead-"+j.GetId()[len("job-"):] || j.GetDeadAt().AsTime().IsZero() {
				t.Fatalf("dead job %v", j)
			}
			ids = append(ids, j.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			if pages != 2 {
				t.Fatalf("%d pages of 2 for 5 jobs", pages+1)
			}
			break
		}
	}
	if len(ids) != 5 {
		t.Fatalf("paged through %v", ids)
	}

	if _, err := c.RedriveDeadJob(ctx, &opsv1.RedriveDeadJobRequest{Queue: "failing", JobId: "job-3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RedriveDeadJob(ctx, &opsv1.RedriveDeadJobRequest{Queue: "failing", JobId: "job-3"}); status.Code(err) != codes.NotFound {
		t.Fatalf("second redrive: %v, want NotFound", err)
	}
	var delivered []string
	if _, err := failing.ProcessDue(ctx, func(_ context.Context, j jobs.Job) error { delivered = append(delivered, j.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(delivered) != 1 || delivered[0] != "job-3" {
		t.Fatalf("after the redrive, delivered %v", delivered)
	}
	if st, _ := failing.Stats(ctx); st.Dead != 4 || st.Depth != 0 {
		t.Fatalf("after the redrive and delivery: %+v", st)
	}

	for name, call := range map[string]func() error{
		"unknown queue": func() error {
			_, err := c.ListDeadJobs(ctx, &opsv1.ListDeadJobsRequest{Queue: "nope"})
			return expect(err, codes.NotFound)
		},
		"unknown queue on redrive": func() error {
			_, err := c.RedriveDeadJob(ctx, &opsv1.RedriveDeadJobRequest{Queue: "nope", JobId: "job-1"})
			return expect(err, codes.NotFound)
		},
		"bad token": func() error {
			_, err := c.ListDeadJobs(ctx, &opsv1.ListDeadJobsRequest{Queue: "failing", PageToken: "x"})
			if err := expect(err, codes.InvalidArgument); err != nil {
				return err
			}
			if v := platform.FieldViolations(err); len(v) != 1 || v[0].Field != "page_token" {
				return fmt.Errorf("violations %v, want page_token", v)
			}
			return nil
		},
		"empty job id": func() error {
			_, err := c.RedriveDeadJob(ctx, &opsv1.RedriveDeadJobRequest{Queue: "failing"})
			return expect(err, codes.InvalidArgument)
		},
	} {
		if err := call(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if st, _ := failing.Stats(ctx); st.Dead != 4 {
		t.Fatalf("bad requests changed the dead letters: %+v", st)
	}
}

func expect(err error, code codes.Code) error {
	if status.Code(err) != code {
		return fmt.Errorf("got %v, want %s", err, code)
	}
	return nil
}
