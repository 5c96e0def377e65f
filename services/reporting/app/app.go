// Package app wires the reporting service: configuration, the event-stream
// consumer as a worker, and the gRPC face.
package app

import (
	"context"
	"time"

	"google.golang.org/grpc"

	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/reporting/consumer"
	"github.com/leadflow/leadflow/services/reporting/grpcapi"
	"github.com/leadflow/leadflow/services/reporting/store"
)

// Config is reporting's own configuration (LEADFLOW_REPORTING_*).
type Config struct {
	// ConsumerName is this instance's name in the consumer group; default
	// "<hostname>-<pid>".
	ConsumerName string `env:"LEADFLOW_REPORTING_CONSUMER"`
	// Batch is how many stream entries one read takes. Under load the
	// consumer's rate is about a batch per few round trips, so a small
	// batch falls behind the journeys (100 did, at about 2,000 leads/s).
	Batch int64 `env:"LEADFLOW_REPORTING_BATCH" envDefault:"1000"`
	// Block is how long a read waits for new entries.
	Block time.Duration `env:"LEADFLOW_REPORTING_BLOCK" envDefault:"2s"`
	// Linger is how long the consumer lets entries gather after a read
	// that was not full.
	Linger time.Duration `env:"LEADFLOW_REPORTING_LINGER" envDefault:"20ms"`
	// ClaimMinIdle is how long an entry stays pending before another
	// instance claims it back.
	ClaimMinIdle time.Duration `env:"LEADFLOW_REPORTING_CLAIM_MIN_IDLE" envDefault:"1m"`
	// ClaimInterval is how often pending entries are checked.
	ClaimInterval time.Duration `env:"LEADFLOW_REPORTING_CLAIM_INTERVAL" envDefault:"15s"`
	// MaxDeliveries: deliveries after which a failing entry is dead-lettered.
	MaxDeliveries int64 `env:"LEADFLOW_REPORTING_MAX_DELIVERIES" envDefault:"5"`
	// Retention is how long stream entries are kept (0: forever). It also
	// bounds what RebuildAggregates can replay.
	Retention time.Duration `env:"LEADFLOW_REPORTING_RETENTION" envDefault:"2160h"`
	// TrimInterval is how often the stream is trimmed.
	TrimInterval time.Duration `env:"LEADFLOW_REPORTING_TRIM_INTERVAL" envDefault:"1m"`
	// ScoreBandWidth is the default score band width of the calibration.
	ScoreBandWidth int64 `env:"LEADFLOW_REPORTING_SCORE_BAND_WIDTH" envDefault:"10"`
	// Consume turns the stream consumer on (off: a read-only API replica).
	Consume bool `env:"LEADFLOW_REPORTING_CONSUME" envDefault:"true"`
}

// LoadConfig reads Config from the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := platform.LoadEnv(&c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// New builds the reporting service on rt.
func New(ctx context.Context, rt *platform.Runtime, cfg Config) (platform.Service, error) {
	if err := validate(cfg); err != nil {
		return platform.Service{}, err
	}
	st := store.New(rt.Redis)
	api := grpcapi.New(rt.Redis, st, cfg.ScoreBandWidth)
	svc := platform.Service{
		Register: func(s *grpc.Server) { reportingv1.RegisterReportingServiceServer(s, api) },
		Names:    []string{reportingv1.ReportingService_ServiceDesc.ServiceName},
	}
	if cfg.Consume {
		c, err := consumer.New(rt.Redis, st, consumer.Options{
			Name: cfg.ConsumerName, Batch: cfg.Batch, Block: cfg.Block, Linger: cfg.Linger,
			ClaimMinIdle: cfg.ClaimMinIdle, ClaimInterval: cfg.ClaimInterval, MaxDeliveries: cfg.MaxDeliveries,
			Retention: cfg.Retention, TrimInterval: cfg.TrimInterval,
			Meter: rt.Meter(), Logger: rt.Logger, Tracer: rt.Tracer(),
		})
		if err != nil {
			return platform.Service{}, err
		}
		rt.Logger.InfoContext(ctx, "event stream consumer", "consumer", c.Name(), "group", consumer.Group)
		svc.Workers = append(svc.Workers, c.Run)
	}
	return svc, nil
}
