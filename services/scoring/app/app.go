// Package app wires the scoring service: configuration, store, job queues,
// peers and the gRPC face, for main and for the all-in-one.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/jobs/jobsapi"
	"github.com/leadflow/leadflow/services/scoring/grpcapi"
	"github.com/leadflow/leadflow/services/scoring/service"
	"github.com/leadflow/leadflow/services/scoring/store"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
)

// Config is the scoring service's own configuration (LEADFLOW_SCORING_*).
type Config struct {
	// PendingTTL: how long signals of a lead not seen yet are kept.
	PendingTTL time.Duration `env:"LEADFLOW_SCORING_PENDING_TTL" envDefault:"720h"`
	// HistoryLimit: past scores kept per lead.
	HistoryLimit int64 `env:"LEADFLOW_SCORING_HISTORY_LIMIT" envDefault:"500"`
	// SweepInterval: how often undelivered outboxes are looked for.
	SweepInterval time.Duration `env:"LEADFLOW_SCORING_SWEEP_INTERVAL" envDefault:"5s"`
	// HandoffMaxAttempts: deliveries tried before a hand-off is dead-lettered.
	HandoffMaxAttempts int `env:"LEADFLOW_SCORING_HANDOFF_MAX_ATTEMPTS" envDefault:"15"`
	// HandoffMaxBackoff: the longest wait between two delivery attempts.
	HandoffMaxBackoff time.Duration `env:"LEADFLOW_SCORING_HANDOFF_MAX_BACKOFF" envDefault:"1m"`
	// DirectRouteTimeout bounds a direct RouteLeads call from the route
	// hand-off deliverer; 0 sends every route hand-off through the job queue.
	DirectRouteTimeout time.Duration `env:"LEADFLOW_SCORING_DIRECT_ROUTE_TIMEOUT" envDefault:"2s"`
	// DirectRoutePause: after a failed direct call, how long route hand-offs
	// go through the job queue instead.
	DirectRoutePause time.Duration `env:"LEADFLOW_SCORING_DIRECT_ROUTE_PAUSE" envDefault:"10s"`
	// DirectDealTimeout bounds one direct deal hand-off: the replica whose
	// write scheduled a CreateDealFromLead job sends it to pipeline at once,
	// and the job queue is the fallback (see jobs.ScheduleDirectOn); 0
	// leaves every deal hand-off to the workers.
	DirectDealTimeout time.Duration `env:"LEADFLOW_SCORING_DIRECT_DEAL_TIMEOUT" envDefault:"2s"`
	// DirectDealPause: after a failed direct deal hand-off, how long deal
	// hand-offs go to the workers instead.
	DirectDealPause time.Duration `env:"LEADFLOW_SCORING_DIRECT_DEAL_PAUSE" envDefault:"10s"`
}

// LoadConfig reads Config from the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := platform.LoadEnv(&c); err != nil {
		return c, err
	}
	return c, errors.Join(
		jobs.CheckDirect("LEADFLOW_SCORING_DIRECT_ROUTE", jobs.DirectOptions{Timeout: c.DirectRouteTimeout, Pause: c.DirectRoutePause}),
		jobs.CheckDirect("LEADFLOW_SCORING_DIRECT_DEAL", jobs.DirectOptions{Timeout: c.DirectDealTimeout, Pause: c.DirectDealPause}))
}

// Option tunes New (tests).
type Option func(*options)

type options struct {
	routing  service.RoutingClient
	pipeline service.PipelineClient
	now      func() time.Time
	jobNow   func() time.Time
	scoring  **service.Scoring
}

// WithPeers replaces the routing and pipeline clients (tests serve fakes).
func WithPeers(r service.RoutingClient, p service.PipelineClient) Option {
	return func(o *options) { o.routing, o.pipeline = r, p }
}

// WithClock sets the service clock and the job queues' clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now, o.jobNow = now, now } }

// Expose hands the built use cases to the caller (tests drive the queues).
func Expose(s **service.Scoring) Option { return func(o *options) { o.scoring = s } }

// New builds the scoring service on rt.
func New(ctx context.Context, rt *platform.Runtime, cfg Config, opts ...Option) (platform.Service, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var closers []func() error
	if o.routing == nil {
		conn, err := rt.Dial(rt.Config.Peers.Routing, routingv1.RoutingService_RouteLead_FullMethodName, routingv1.RoutingService_RouteLeads_FullMethodName, routingv1.RoutingService_ReleaseLead_FullMethodName)
		if err != nil {
			return platform.Service{}, err
		}
		closers = append(closers, conn.Close)
		o.routing = routingv1.NewRoutingServiceClient(conn)
	}
	if o.pipeline == nil {
		conn, err := rt.Dial(rt.Config.Peers.Pipeline, pipelinev1.PipelineService_CreateDealFromLead_FullMethodName)
		if err != nil {
			return platform.Service{}, err
		}
		closers = append(closers, conn.Close)
		o.pipeline = pipelinev1.NewPipelineServiceClient(conn)
	}
	qo := jobs.Options{
		MaxAttempts: cfg.HandoffMaxAttempts, MaxBackoff: cfg.HandoffMaxBackoff,
		Now: o.jobNow, Meter: rt.Meter(), Tracer: rt.Tracer(), Logger: rt.Logger,
	}
	routingQ := jobs.New(rt.Redis, service.RoutingQueue, qo)
	dealQ := jobs.New(rt.Redis, service.PipelineQueue, qo).EnableDirect(jobs.DirectOptions{Timeout: cfg.DirectDealTimeout, Pause: cfg.DirectDealPause})
	st := store.New(rt.Redis, store.Options{PendingTTL: cfg.PendingTTL, HistoryLimit: cfg.HistoryLimit})
	sc := service.NewScoring(service.Deps{
		Store: st, Tracer: rt.Tracer(), Meter: rt.Meter(), Logger: rt.Logger, Events: eventSink{rt: rt},
		RoutingQ: routingQ, DealQ: dealQ,
		Routing: o.routing, Pipeline: o.pipeline, Now: o.now,
		DirectRoute: service.DirectRouteOptions{Timeout: cfg.DirectRouteTimeout, Pause: cfg.DirectRoutePause},
	})
	if o.scoring != nil {
		*o.scoring = sc
	}
	api := grpcapi.New(sc, rt.Logger)
	return platform.Service{
		Register: func(s *grpc.Server) {
			scoringv1.RegisterScoringServiceServer(s, api)
			jobsapi.Register(s, routingQ, dealQ)
		},
		Names: []string{scoringv1.ScoringService_ServiceDesc.ServiceName, jobsapi.ServiceName},
		Workers: []func(context.Context) error{
			func(ctx context.Context) error { return routingQ.RunBatch(ctx, sc.DeliverRoutingBatch) },
			sc.RunDirectRoutes,
			func(ctx context.Context) error { return dealQ.Run(ctx, sc.DeliverPipeline) },
			func(ctx context.Context) error { return dealQ.RunDirect(ctx, jobs.PerJob(sc.DeliverPipeline)) },
			func(ctx context.Context) error { return sc.RunSweeper(ctx, cfg.SweepInterval) },
		},
		Close: func() error {
			var err error
			for _, c := range closers {
				err = errors.Join(err, c())
			}
			return err
		},
	}, nil
}

// eventSink publishes a change's events in one pipeline.
type eventSink struct{ rt *platform.Runtime }

func (s eventSink) Prepare(ctx context.Context, ev *eventsv1.LeadEvent) error {
	return s.rt.Events.Prepare(ctx, ev)
}

// PublishAll sends prepared events (see Prepare).
func (s eventSink) PublishAll(ctx context.Context, evs []*eventsv1.LeadEvent, also func(redis.Pipeliner) error) error {
	_, err := s.rt.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ev := range evs {
			if err := events.AddToPipe(p, ctx, ev); err != nil {
				return err
			}
		}
		if also != nil {
			return also(p)
		}
		return nil
	})
	return err
}
