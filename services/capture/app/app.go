// Package app wires capture: configuration, the use cases (Capture), the
// hand-off worker and the gRPC service, on a platform.Runtime.
package app

import (
	"context"
	"fmt"
	"time"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/capture/grpcapi"
	"github.com/leadflow/leadflow/services/capture/store"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/jobs/jobsapi"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
)

// Option changes how Build wires capture (tests).
type Option func(*options)

type options struct {
	now     func() time.Time
	scoring domain.Scoring
}

// WithClock injects the clock of the use cases and the hand-off queue.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithScoring replaces the gRPC scoring client.
func WithScoring(s domain.Scoring) Option { return func(o *options) { o.scoring = s } }

// App is capture wired on a runtime.
type App struct {
	Capture *Capture
	// Queue is the hand-off queue to scoring (tests drive it with ProcessDue).
	Queue *jobs.Queue
	// Service is what the runtime serves.
	Service platform.Service
}

// New builds capture's platform.Service (the signature every service
// module exports).
func New(ctx context.Context, rt *platform.Runtime, cfg Config) (platform.Service, error) {
	a, err := Build(ctx, rt, cfg)
	if err != nil {
		return platform.Service{}, err
	}
	return a.Service, nil
}

// Build wires capture and returns its parts.
func Build(_ context.Context, rt *platform.Runtime, cfg Config, opts ...Option) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	var closeConn func() error
	if o.scoring == nil {
		conn, err := rt.Dial(rt.Config.Peers.Scoring, upsertLeadMethod, upsertLeadsMethod, recordEngagementMethod)
		if err != nil {
			return nil, fmt.Errorf("dial scoring at %q: %w", rt.Config.Peers.Scoring, err)
		}
		o.scoring = NewScoringClient(conn)
		closeConn = conn.Close
	}
	q := jobs.New(rt.Redis, cfg.HandoffQueue, jobs.Options{
		MaxAttempts: cfg.HandoffMaxAttempts, BaseBackoff: cfg.HandoffBaseBackoff, MaxBackoff: cfg.HandoffMaxBackoff,
		Now: o.now, Meter: rt.Meter(), Tracer: rt.Tracer(), Logger: rt.Logger,
	}).EnableDirect(jobs.DirectOptions{Timeout: cfg.DirectTimeout, Pause: cfg.DirectPause})
	c := &Capture{
		store: store.New(rt.Redis, q), queue: q, events: rt.Events, scoring: o.scoring,
		tracer: rt.Tracer(), logger: rt.Logger, cfg: cfg, now: o.now,
	}
	m := rt.Meter()
	c.submissions, _ = m.Int64Counter("leadflow.capture.submissions", metricDesc("lead submissions by outcome (created, merged, replayed, rejected, idempotency_conflict, conflict)"))
	c.signals, _ = m.Int64Counter("leadflow.capture.signals", metricDesc("engagement signals by outcome (recorded, pending_visitor, stitched, duplicate)"))

	face, err := grpcapi.New(c, cfg.ImportMaxRecords)
	if err != nil {
		return nil, fmt.Errorf("capture gRPC face: %w", err)
	}
	svc := platform.Service{
		Register: func(s *grpc.Server) {
			capturev1.RegisterCaptureServiceServer(s, face)
			jobsapi.Register(s, q)
		},
		Names: []string{capturev1.CaptureService_ServiceDesc.ServiceName, jobsapi.ServiceName},
		Close: func() error {
			if closeConn != nil {
				return closeConn()
			}
			return nil
		},
	}
	for i := 0; i < cfg.HandoffWorkers; i++ {
		svc.Workers = append(svc.Workers, func(ctx context.Context) error { return q.RunBatch(ctx, c.DeliverBatch) })
	}
	if cfg.HandoffWorkers > 0 {
		// The hand-offs this replica writes go straight to scoring.
		svc.Workers = append(svc.Workers, func(ctx context.Context) error { return q.RunDirect(ctx, c.DeliverBatch) })
	}
	return &App{Capture: c, Queue: q, Service: svc}, nil
}

func metricDesc(d string) metric.Int64CounterOption { return metric.WithDescription(d) }
