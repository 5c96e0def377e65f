// Package jobsapi serves leadflow.ops.v1.JobsService over a service's job
// queues, so operators see and redrive dead hand-offs the same way on every
// service.
package jobsapi

import (
	"context"
	"slices"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/leadflow/leadflow/gen/go/leadflow/ops/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// ServiceName is the proto service's name (for health).
var ServiceName = opsv1.JobsService_ServiceDesc.ServiceName

// Register serves JobsService on s over qs.
func Register(s grpc.ServiceRegistrar, qs ...*jobs.Queue) {
	opsv1.RegisterJobsServiceServer(s, newJobsServer(qs))
}

type jobsServer struct {
	opsv1.UnimplementedJobsServiceServer
	queues map[string]*jobs.Queue
	names  []string
}

func newJobsServer(qs []*jobs.Queue) *jobsServer {
	s := &jobsServer{queues: map[string]*jobs.Queue{}}
	for _, q := range qs {
		s.queues[q.Name()] = q
		s.names = append(s.names, q.Name())
	}
	slices.Sort(s.names)
	return s
}

func (s *jobsServer) queue(name string) (*jobs.Queue, error) {
	q, ok := s.queues[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "queue %q: this service's queues are %v", name, s.names)
	}
	return q, nil
}

func (s *jobsServer) ListQueues(ctx context.Context, _ *opsv1.ListQueuesRequest) (*opsv1.ListQueuesResponse, error) {
	out := &opsv1.ListQueuesResponse{}
	for _, n := range s.names {
		st, err := s.queues[n].Stats(ctx)
		if err != nil {
			return nil, err // the interceptor maps Redis errors to Unavailable
		}
		out.Queues = append(out.Queues, &opsv1.Queue{Name: n, Depth: st.Depth, Due: st.Due, Dead: st.Dead})
	}
	return out, nil
}

func (s *jobsServer) ListDeadJobs(ctx context.Context, in *opsv1.ListDeadJobsRequest) (*opsv1.ListDeadJobsResponse, error) {
	q, err := s.queue(in.GetQueue())
	if err != nil {
		return nil, err
	}
	var offset int64
	if t := in.GetPageToken(); t != "" {
		if offset, err = strconv.ParseInt(t, 10, 64); err != nil || offset < 0 {
			return nil, platform.InvalidArgument("invalid page_token", platform.FieldViolation{Field: "page_token", Description: "not a page token of ListDeadJobs"})
		}
	}
	size := int64(in.GetPageSize())
	if size == 0 {
		size = 50
	}
	dead, total, err := q.DeadPage(ctx, offset, size)
	if err != nil {
		return nil, err // the interceptor maps Redis errors to Unavailable
	}
	out := &opsv1.ListDeadJobsResponse{Total: total}
	for _, j := range dead {
		out.Jobs = append(out.Jobs, &opsv1.DeadJob{
			Id: j.ID, LeadId: j.LeadID, Attempts: int32(j.Attempt), LastError: j.LastError,
			DeadAt: timestamppb.New(j.DeadAt), TraceId: leadtrace.TraceID(j.Traceparent),
		})
	}
	if next := offset + int64(len(dead)); next < total && len(dead) > 0 {
		out.NextPageToken = strconv.FormatInt(next, 10)
	}
	return out, nil
}

func (s *jobsServer) RedriveDeadJob(ctx context.Context, in *opsv1.RedriveDeadJobRequest) (*opsv1.RedriveDeadJobResponse, error) {
	q, err := s.queue(in.GetQueue())
	if err != nil {
		return nil, err
	}
	ok, err := q.Redrive(ctx, in.GetJobId())
	if err != nil {
		return nil, err // the interceptor maps Redis errors to Unavailable
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "queue %q has no dead job %q", in.GetQueue(), in.GetJobId())
	}
	return &opsv1.RedriveDeadJobResponse{}, nil
}
