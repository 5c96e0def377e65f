// Package app wires the pipeline service: configuration, the Redis store, the
// job queues and their workers, the scoring client and the gRPC face.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/pipeline/domain"
	"github.com/leadflow/leadflow/services/pipeline/grpcapi"
	"github.com/leadflow/leadflow/services/pipeline/store"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/jobs/jobsapi"
)

// Config is the pipeline's own configuration (LEADFLOW_PIPELINE_*).
type Config struct {
	// LostReasons is the comma-separated list of allowed lost reasons.
	LostReasons string `env:"LEADFLOW_PIPELINE_LOST_REASONS" envDefault:"no_budget,no_decision,lost_to_competitor,timing,no_fit,unresponsive,other"`
	// RenewalTermMonths is the default renewal term of a won deal.
	RenewalTermMonths int `env:"LEADFLOW_PIPELINE_RENEWAL_TERM_MONTHS" envDefault:"12"`
	// RenewalLeadTime is how long before the renewal date RenewalDue fires.
	RenewalLeadTime time.Duration `env:"LEADFLOW_PIPELINE_RENEWAL_LEAD_TIME" envDefault:"720h"`
	// HandoffMaxAttempts is how often the recycle hand-off to scoring is
	// tried before it goes to the dead letters.
	HandoffMaxAttempts int `env:"LEADFLOW_PIPELINE_HANDOFF_MAX_ATTEMPTS" envDefault:"10"`
	// HandoffMaxBackoff caps the delay between hand-off attempts.
	HandoffMaxBackoff time.Duration `env:"LEADFLOW_PIPELINE_HANDOFF_MAX_BACKOFF" envDefault:"1m"`

	// Now is the clock of the service and its queues (tests inject one).
	Now func() time.Time `env:"-"`
	// Scoring replaces the scoring client (tests); nil dials Peers.Scoring.
	Scoring grpcapi.StatusSetter `env:"-"`
}

// LoadConfig reads Config from the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := platform.LoadEnv(&c); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate checks what env parsing cannot.
func (c Config) Validate() error {
	var errs []error
	if _, err := domain.ParseLostReasons(c.LostReasons); err != nil {
		errs = append(errs, fmt.Errorf("LEADFLOW_PIPELINE_LOST_REASONS: %w", err))
	}
	if c.RenewalTermMonths < 1 || c.RenewalTermMonths > 120 {
		errs = append(errs, errors.New("LEADFLOW_PIPELINE_RENEWAL_TERM_MONTHS: must be between 1 and 120"))
	}
	if c.RenewalLeadTime < 0 {
		errs = append(errs, errors.New("LEADFLOW_PIPELINE_RENEWAL_LEAD_TIME: must not be negative"))
	}
	if c.HandoffMaxAttempts < 1 {
		errs = append(errs, errors.New("LEADFLOW_PIPELINE_HANDOFF_MAX_ATTEMPTS: must be at least 1"))
	}
	if c.HandoffMaxBackoff <= 0 {
		errs = append(errs, errors.New("LEADFLOW_PIPELINE_HANDOFF_MAX_BACKOFF: must be positive"))
	}
	return errors.Join(errs...)
}

// SetStatusMethod is the scoring method the recycle hand-off calls; it is
// idempotent by request_id, so the client may retry it.
const SetStatusMethod = "/leadflow.scoring.v1.ScoringService/SetStatus"

// Service is the wired pipeline service; the queues and server are exposed
// for tests and the all-in-one.
type Service struct {
	Server   *grpcapi.Server
	Store    *store.Store
	Recycle  *jobs.Queue
	Renewals *jobs.Queue
}

// New builds the pipeline service on rt.
func New(ctx context.Context, rt *platform.Runtime, cfg Config) (platform.Service, error) {
	svc, conn, err := Build(ctx, rt, cfg)
	if err != nil {
		return platform.Service{}, err
	}
	return platform.Service{
		Register: func(s *grpc.Server) {
			pipelinev1.RegisterPipelineServiceServer(s, svc.Server)
			jobsapi.Register(s, svc.Recycle, svc.Renewals)
		},
		Names: []string{pipelinev1.PipelineService_ServiceDesc.ServiceName, jobsapi.ServiceName},
		Workers: []func(context.Context) error{
			func(ctx context.Context) error { return svc.Recycle.Run(ctx, svc.Server.HandleRecycle) },
			func(ctx context.Context) error { return svc.Renewals.Run(ctx, svc.Server.HandleRenewal) },
		},
		Close: func() error {
			if conn != nil {
				return conn.Close()
			}
			return nil
		},
	}, nil
}

// Build wires the parts; conn is the scoring connection it dialled (nil when
// cfg.Scoring was given).
func Build(ctx context.Context, rt *platform.Runtime, cfg Config) (*Service, *grpc.ClientConn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	reasons, _ := domain.ParseLostReasons(cfg.LostReasons)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	st := store.New(rt.Redis)
	qopts := func(max int, backoff time.Duration) jobs.Options {
		return jobs.Options{MaxAttempts: max, MaxBackoff: backoff, Now: now, Meter: rt.Meter(), Tracer: rt.Tracer(), Logger: rt.Logger}
	}
	recycle := jobs.New(rt.Redis, grpcapi.RecycleQueue, qopts(cfg.HandoffMaxAttempts, cfg.HandoffMaxBackoff))
	renewals := jobs.New(rt.Redis, grpcapi.RenewalQueue, qopts(0, 0))

	var conn *grpc.ClientConn
	scoring := cfg.Scoring
	if scoring == nil {
		var err error
		conn, err = rt.Dial(rt.Config.Peers.Scoring, SetStatusMethod)
		if err != nil {
			return nil, nil, fmt.Errorf("dial scoring: %w", err)
		}
		scoring = scoringv1.NewScoringServiceClient(conn)
	}
	// The default pipeline on a fresh install. Redis may not be up yet: then
	// the first call that needs it creates it.
	if err := st.EnsurePipeline(ctx, domain.DefaultPipeline(now().UTC())); err != nil {
		rt.Logger.WarnContext(ctx, "default pipeline not ensured at start; will be on first use", "error", err.Error())
	}
	srv := grpcapi.New(grpcapi.Deps{
		Store: st, Tracer: rt.Tracer(), Events: rt.Events, Logger: rt.Logger,
		Recycle: recycle, Renewals: renewals, Scoring: scoring, Now: now,
		LostReasons: reasons, RenewalTermMonths: cfg.RenewalTermMonths, RenewalLeadTime: cfg.RenewalLeadTime,
	})
	return &Service{Server: srv, Store: st, Recycle: recycle, Renewals: renewals}, conn, nil
}
