// Package grpcapi is the gRPC face of the pipeline service: it decodes
// requests, runs the domain through the store, publishes lifecycle events,
// schedules the durable jobs (recycle hand-off, renewal reminders) and maps
// domain errors to status codes. Every change of a deal is a span in the
// lead's journey trace.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/pipeline/domain"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// StatusSetter is the part of scoring the pipeline calls (the recycle
// hand-off). scoringv1.ScoringServiceClient satisfies it.
type StatusSetter interface {
	SetStatus(ctx context.Context, in *scoringv1.SetStatusRequest, opts ...grpc.CallOption) (*scoringv1.SetStatusResponse, error)
}

// Deps are what the server needs.
type Deps struct {
	Store    domain.Store
	Tracer   trace.Tracer
	Events   *events.Publisher
	Logger   *slog.Logger
	Recycle  *jobs.Queue // durable SetStatus(NURTURING) hand-offs to scoring
	Renewals *jobs.Queue // RenewalDue reminders
	Scoring  StatusSetter
	// Now is the clock (tests inject one); the queues must use the same.
	Now               func() time.Time
	LostReasons       domain.LostReasons
	RenewalTermMonths int
	RenewalLeadTime   time.Duration
}

// Server implements pipelinev1.PipelineServiceServer.
type Server struct {
	pipelinev1.UnimplementedPipelineServiceServer
	d Deps
}

// New returns the server.
func New(d Deps) *Server {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{d: d}
}

var _ pipelinev1.PipelineServiceServer = (*Server)(nil)

func (s *Server) now() time.Time { return s.d.Now().UTC() }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

const (
	defaultPageSize = 50
)

func pageSize(n int32) int {
	if n <= 0 {
		return defaultPageSize
	}
	return int(n)
}

// toStatus maps domain errors to status codes; anything else is returned as
// is for the platform to map (Redis down → Unavailable, else Internal).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var ve *domain.ValidationError
	switch {
	case errors.As(err, &ve):
		vs := make([]platform.FieldViolation, len(ve.Violations))
		for i, v := range ve.Violations {
			vs[i] = platform.FieldViolation{Field: v.Field, Description: v.Description}
		}
		return platform.InvalidArgument("invalid request", vs...)
	case errors.Is(err, domain.ErrOverflow):
		return platform.InvalidArgument("amount out of range", platform.FieldViolation{Field: "amount", Description: err.Error()})
	case errors.Is(err, domain.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, domain.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, domain.ErrFailedPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, domain.ErrAborted):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, domain.ErrResourceExhausted):
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return err
}

// fail records err on the journey span and maps it.
func fail(span trace.Span, err error) error {
	leadtrace.Fail(span, err)
	return toStatus(err)
}

// publish appends a lifecycle event for deal d and returns the error. The
// stream is the lead lifecycle (every LeadEvent has a lead_id; consumers
// reject one without), so a manual deal without a lead publishes nothing.
func (s *Server) publish(ctx context.Context, d *domain.Deal, ev *eventsv1.LeadEvent) error {
	if d.LeadID == "" {
		return nil
	}
	ev.LeadId = d.LeadID
	ev.OrganisationId = d.OrganisationID
	if ev.OccurredAt == nil {
		ev.OccurredAt = ts(s.now())
	}
	return s.d.Events.Publish(ctx, ev)
}

// publishBestEffort publishes an event whose change a retry would not
// repeat (a retried move finds the deal moved): a failure is logged, since
// failing the committed call would only mislead the caller. DealCreated,
// DealWon and DealLost carry ids stored on the deal instead and are
// published again, with the same id, by a retry (see publish callers).
func (s *Server) publishBestEffort(ctx context.Context, d *domain.Deal, ev *eventsv1.LeadEvent) {
	if err := s.publish(ctx, d, ev); err != nil {
		s.d.Logger.ErrorContext(ctx, "publish event failed", "deal_id", d.ID, "error", err.Error())
	}
}

// pipeline loads a pipeline; "" is the default one, which is (re)created
// when missing (a fresh install, or Redis flushed).
func (s *Server) pipeline(ctx context.Context, id string) (domain.Pipeline, error) {
	if id == "" {
		id = domain.DefaultPipelineID
	}
	p, err := s.d.Store.GetPipeline(ctx, id)
	if errors.Is(err, domain.ErrNotFound) && id == domain.DefaultPipelineID {
		if err := s.d.Store.EnsurePipeline(ctx, domain.DefaultPipeline(s.now())); err != nil {
			return domain.Pipeline{}, err
		}
		return s.d.Store.GetPipeline(ctx, id)
	}
	return p, err
}

// dealSpan loads a deal and starts the journey span of a change to it.
func (s *Server) dealSpan(ctx context.Context, dealID, name string) (context.Context, trace.Span, domain.Deal, error) {
	d, err := s.d.Store.GetDeal(ctx, dealID)
	ctx, span := s.startDealSpan(ctx, d, err, name)
	return ctx, span, d, err
}

// dealPipelineSpan is dealSpan that also loads the deal's pipeline: in the
// same round trip when it is the default one, as most deals' is.
func (s *Server) dealPipelineSpan(ctx context.Context, dealID, name string) (context.Context, trace.Span, domain.Deal, domain.Pipeline, error) {
	d, p, err := s.d.Store.GetDealWithPipeline(ctx, dealID, domain.DefaultPipelineID)
	ctx, span := s.startDealSpan(ctx, d, err, name)
	if err != nil {
		return ctx, span, d, domain.Pipeline{}, err
	}
	if p != nil && p.ID == d.PipelineID {
		return ctx, span, d, *p, nil
	}
	pl, err := s.pipeline(ctx, d.PipelineID)
	return ctx, span, d, pl, err
}

// startDealSpan starts the span of a change to d, in d's lead's trace
// (err: d could not be read).
func (s *Server) startDealSpan(ctx context.Context, d domain.Deal, err error, name string) (context.Context, trace.Span) {
	if err != nil {
		return s.d.Tracer.Start(ctx, name)
	}
	return leadtrace.Start(ctx, s.d.Tracer, d.Traceparent, name, d.LeadID)
}

func checkVersion(d *domain.Deal, expected int64) error {
	if expected != 0 && d.Version != expected {
		return errors.Join(domain.ErrAborted, errors.New("the deal changed since it was read; reload and retry"))
	}
	return nil
}

// ---- pipelines

// CreatePipeline implements PipelineService.
func (s *Server) CreatePipeline(ctx context.Context, req *pipelinev1.CreatePipelineRequest) (*pipelinev1.CreatePipelineResponse, error) {
	specs := make([]domain.StageSpec, len(req.GetStages()))
	for i, st := range req.GetStages() {
		specs[i] = specFromPB(st)
	}
	p, err := domain.NewPipeline(newID(), req.GetName(), specs, newID, s.now())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.d.Store.CreatePipeline(ctx, p); err != nil {
		return nil, toStatus(err)
	}
	return &pipelinev1.CreatePipelineResponse{Pipeline: pipelinePB(p)}, nil
}

// GetPipeline implements PipelineService.
func (s *Server) GetPipeline(ctx context.Context, req *pipelinev1.GetPipelineRequest) (*pipelinev1.GetPipelineResponse, error) {
	p, err := s.pipeline(ctx, req.GetPipelineId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pipelinev1.GetPipelineResponse{Pipeline: pipelinePB(p)}, nil
}

// ListPipelines implements PipelineService.
func (s *Server) ListPipelines(ctx context.Context, req *pipelinev1.ListPipelinesRequest) (*pipelinev1.ListPipelinesResponse, error) {
	if _, err := s.pipeline(ctx, ""); err != nil { // make sure the default exists
		return nil, toStatus(err)
	}
	ps, next, err := s.d.Store.ListPipelines(ctx, req.GetPageToken(), pageSize(req.GetPageSize()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pipelinev1.ListPipelinesResponse{NextPageToken: next}
	for _, p := range ps {
		out.Pipelines = append(out.Pipelines, pipelinePB(p))
	}
	return out, nil
}

func (s *Server) updatePipeline(ctx context.Context, id string, fn func(*domain.Pipeline) error) (domain.Pipeline, error) {
	p, err := s.pipeline(ctx, id) // resolves "" and creates the default when missing
	if err != nil {
		return domain.Pipeline{}, err
	}
	return s.d.Store.UpdatePipeline(ctx, p.ID, fn)
}

// AddStage implements PipelineService.
func (s *Server) AddStage(ctx context.Context, req *pipelinev1.AddStageRequest) (*pipelinev1.AddStageResponse, error) {
	var st domain.Stage
	id := newID()
	p, err := s.updatePipeline(ctx, req.GetPipelineId(), func(p *domain.Pipeline) error {
		var err error
		st, err = p.AddStage(id, specFromPB(req.GetStage()), req.GetBeforeStageId(), s.now())
		return err
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pipelinev1.AddStageResponse{Pipeline: pipelinePB(p), Stage: stagePB(st)}, nil
}

// RenameStage implements PipelineService.
func (s *Server) RenameStage(ctx context.Context, req *pipelinev1.RenameStageRequest) (*pipelinev1.RenameStageResponse, error) {
	p, err := s.updatePipeline(ctx, req.GetPipelineId(), func(p *domain.Pipeline) error {
		return p.RenameStage(req.GetStageId(), req.GetName(), req.ProbabilityBps, s.now())
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pipelinev1.RenameStageResponse{Pipeline: pipelinePB(p)}, nil
}

// ReorderStages implements PipelineService.
func (s *Server) ReorderStages(ctx context.Context, req *pipelinev1.ReorderStagesRequest) (*pipelinev1.ReorderStagesResponse, error) {
	p, err := s.updatePipeline(ctx, req.GetPipelineId(), func(p *domain.Pipeline) error {
		return p.ReorderStages(req.GetStageIds(), s.now())
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pipelinev1.ReorderStagesResponse{Pipeline: pipelinePB(p)}, nil
}

// ListLostReasons implements PipelineService.
func (s *Server) ListLostReasons(context.Context, *pipelinev1.ListLostReasonsRequest) (*pipelinev1.ListLostReasonsResponse, error) {
	return &pipelinev1.ListLostReasonsResponse{Reasons: s.d.LostReasons.List()}, nil
}
