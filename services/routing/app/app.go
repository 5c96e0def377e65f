// Package app wires the routing service: its configuration, the Router,
// the gRPC face, the peers (scoring, capture) and the background workers.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/jobs/jobsapi"
	"github.com/leadflow/leadflow/services/routing/grpcapi"
	"github.com/leadflow/leadflow/services/routing/router"
)

// Config is routing's own configuration (LEADFLOW_ROUTING_*).
type Config struct {
	// SweepInterval: how often queued leads are offered to reps whose working
	// hours began or whose out-of-office ended (and the configuration re-read).
	SweepInterval time.Duration `env:"LEADFLOW_ROUTING_SWEEP_INTERVAL" envDefault:"5s"`
	// InboxBlock: how long one inbox read waits for new items.
	InboxBlock time.Duration `env:"LEADFLOW_ROUTING_INBOX_BLOCK" envDefault:"2s"`
	// ContactTimeout bounds each capture call that fills in the contacts of
	// one inbox read (up to 100 items).
	ContactTimeout time.Duration `env:"LEADFLOW_ROUTING_CONTACT_TIMEOUT" envDefault:"1s"`
	// SLAPoll: how often the SLA timer queue looks for due timers.
	SLAPoll time.Duration `env:"LEADFLOW_ROUTING_SLA_POLL" envDefault:"500ms"`
	// HandoffAttempts before a status hand-off to scoring is dead-lettered.
	HandoffAttempts int `env:"LEADFLOW_ROUTING_HANDOFF_ATTEMPTS" envDefault:"10"`
	// HealWindow: the sweeps re-schedule the SLA timers of leads assigned
	// this recently, in case a crash lost them, each lead once (0 = off).
	HealWindow time.Duration `env:"LEADFLOW_ROUTING_SLA_HEAL_WINDOW" envDefault:"30s"`
	// DirectTimeout bounds one direct status hand-off: the replica whose
	// write scheduled it sends it to scoring at once, and the job queue is
	// the fallback (see jobs.ScheduleDirectOn); 0 leaves every hand-off to
	// the workers.
	DirectTimeout time.Duration `env:"LEADFLOW_ROUTING_DIRECT_TIMEOUT" envDefault:"2s"`
	// DirectPause: after a failed direct hand-off, how long hand-offs go to
	// the workers instead.
	DirectPause time.Duration `env:"LEADFLOW_ROUTING_DIRECT_PAUSE" envDefault:"10s"`

	// Now is the clock (tests inject one); nil = time.Now.
	Now func() time.Time `env:"-"`
	// Scoring and Capture replace the gRPC peers (tests).
	Scoring router.StatusSetter   `env:"-"`
	Capture router.ContactFetcher `env:"-"`
}

// LoadConfig reads LEADFLOW_ROUTING_* variables.
func LoadConfig() (Config, error) {
	var c Config
	if err := platform.LoadEnv(&c); err != nil {
		return c, err
	}
	if c.SweepInterval <= 0 {
		return c, errors.New("LEADFLOW_ROUTING_SWEEP_INTERVAL must be > 0")
	}
	if c.InboxBlock <= 0 {
		return c, errors.New("LEADFLOW_ROUTING_INBOX_BLOCK must be > 0")
	}
	if c.HandoffAttempts <= 0 {
		return c, errors.New("LEADFLOW_ROUTING_HANDOFF_ATTEMPTS must be > 0")
	}
	return c, jobs.CheckDirect("LEADFLOW_ROUTING_DIRECT", c.direct())
}

func (c Config) direct() jobs.DirectOptions {
	return jobs.DirectOptions{Timeout: c.DirectTimeout, Pause: c.DirectPause}
}

// New builds the routing service on rt.
func New(ctx context.Context, rt *platform.Runtime, cfg Config) (platform.Service, error) {
	r, err := NewRouter(rt, cfg)
	if err != nil {
		return platform.Service{}, err
	}
	return Service(r), nil
}

// Service is the platform service of a Router: the gRPC face and workers.
func Service(r *router.Router) platform.Service {
	return platform.Service{
		Register: func(s *grpc.Server) {
			routingv1.RegisterRoutingServiceServer(s, grpcapi.New(r))
			jobsapi.Register(s, r.Handoff(), r.SLA())
		},
		Names:   []string{routingv1.RoutingService_ServiceDesc.ServiceName, jobsapi.ServiceName},
		Workers: r.Workers(),
	}
}

// NewRouter builds the Router with the runtime's Redis, telemetry and peers.
func NewRouter(rt *platform.Runtime, cfg Config) (*router.Router, error) {
	d := router.Deps{Redis: rt.Redis, Tracer: rt.Tracer(), Meter: rt.Meter(), Logger: rt.Logger, Events: rt.Events, Scoring: cfg.Scoring, Capture: cfg.Capture}
	if d.Scoring == nil {
		if rt.Config.Peers.Scoring == "" {
			return nil, errors.New("LEADFLOW_SCORING_ADDR is required")
		}
		conn, err := rt.Dial(rt.Config.Peers.Scoring, scoringv1.ScoringService_SetStatus_FullMethodName)
		if err != nil {
			return nil, fmt.Errorf("dial scoring: %w", err)
		}
		d.Scoring = scoringClient{scoringv1.NewScoringServiceClient(conn)}
	}
	if d.Capture == nil {
		if rt.Config.Peers.Capture == "" {
			return nil, errors.New("LEADFLOW_CAPTURE_ADDR is required")
		}
		conn, err := rt.Dial(rt.Config.Peers.Capture, capturev1.CaptureService_BatchGetLeads_FullMethodName)
		if err != nil {
			return nil, fmt.Errorf("dial capture: %w", err)
		}
		d.Capture = captureClient{capturev1.NewCaptureServiceClient(conn)}
	}
	return router.New(d, router.Options{SweepInterval: cfg.SweepInterval, InboxBlock: cfg.InboxBlock, ContactTimeout: cfg.ContactTimeout,
		SLAPoll: cfg.SLAPoll, HandoffAttempts: cfg.HandoffAttempts, HealWindow: cfg.HealWindow, Direct: cfg.direct(), Now: cfg.Now}), nil
}

type scoringClient struct {
	c scoringv1.ScoringServiceClient
}

func (s scoringClient) SetStatus(ctx context.Context, req *scoringv1.SetStatusRequest) error {
	_, err := s.c.SetStatus(ctx, req)
	return err
}

type captureClient struct {
	c capturev1.CaptureServiceClient
}

// contactOnly asks capture for the contact alone: the rest of a lead is
// not shown in an inbox item, and whole leads cost both sides their
// encoding.
var contactOnly = &fieldmaskpb.FieldMask{Paths: []string{"contact"}}

// Contacts reads the contacts of 1–100 distinct leads with one
// BatchGetLeads; erased leads are left out, as unknown ones are.
func (c captureClient) Contacts(ctx context.Context, leads []string) (map[string]*leadv1.Contact, error) {
	resp, err := c.c.BatchGetLeads(ctx, &capturev1.BatchGetLeadsRequest{LeadIds: leads, ReadMask: contactOnly})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*leadv1.Contact, len(resp.GetLeads()))
	for _, l := range resp.GetLeads() {
		if !l.GetErased() {
			out[l.GetId()] = l.GetContact()
		}
	}
	return out, nil
}
