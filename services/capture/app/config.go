package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/jobs"
)

// Config is capture's own configuration (LEADFLOW_CAPTURE_*); the shared one
// is platform.Base.
type Config struct {
	// DefaultRegion is the phone region (ISO 3166-1 alpha-2) of numbers
	// written without a country prefix.
	DefaultRegion string `env:"LEADFLOW_CAPTURE_DEFAULT_REGION" envDefault:"US"`
	// IdempotencyTTL is how long an idempotency key is remembered.
	IdempotencyTTL time.Duration `env:"LEADFLOW_CAPTURE_IDEMPOTENCY_TTL" envDefault:"24h"`
	// VisitorTTL is how long an anonymous visitor's signals wait to be
	// stitched (and how long signal ids and visitor→lead mappings are kept).
	VisitorTTL time.Duration `env:"LEADFLOW_CAPTURE_VISITOR_TTL" envDefault:"720h"`
	// ClaimTTL bounds how long a claimed e-mail/phone can point at a lead
	// that is not written yet (a replica that crashed mid-submission).
	ClaimTTL time.Duration `env:"LEADFLOW_CAPTURE_CLAIM_TTL" envDefault:"60s"`
	// HandoffQueue is the platform/jobs queue of hand-offs to scoring.
	HandoffQueue string `env:"LEADFLOW_CAPTURE_HANDOFF_QUEUE" envDefault:"capture-to-scoring"`
	// HandoffMaxAttempts: deliveries before a hand-off is dead-lettered.
	HandoffMaxAttempts int `env:"LEADFLOW_CAPTURE_HANDOFF_MAX_ATTEMPTS" envDefault:"10"`
	// HandoffBaseBackoff and HandoffMaxBackoff bound the retry delay.
	HandoffBaseBackoff time.Duration `env:"LEADFLOW_CAPTURE_HANDOFF_BASE_BACKOFF" envDefault:"500ms"`
	HandoffMaxBackoff  time.Duration `env:"LEADFLOW_CAPTURE_HANDOFF_MAX_BACKOFF" envDefault:"1m"`
	// HandoffWorkers: how many hand-off loops run in this replica (0 turns
	// delivery off, e.g. for an ingest-only replica).
	HandoffWorkers int `env:"LEADFLOW_CAPTURE_HANDOFF_WORKERS" envDefault:"1"`
	// DirectTimeout bounds one direct hand-off to scoring: the replica that
	// wrote a lead sends its hand-off itself, at once, and the job queue is
	// the fallback (see jobs.ScheduleDirectOn); 0 leaves every hand-off to
	// the workers.
	DirectTimeout time.Duration `env:"LEADFLOW_CAPTURE_DIRECT_TIMEOUT" envDefault:"2s"`
	// DirectPause: after a failed direct hand-off, how long hand-offs go to
	// the workers instead.
	DirectPause time.Duration `env:"LEADFLOW_CAPTURE_DIRECT_PAUSE" envDefault:"10s"`
	// ImportMaxRecords caps the records of one ImportLeads stream.
	ImportMaxRecords int `env:"LEADFLOW_CAPTURE_IMPORT_MAX_RECORDS" envDefault:"100000"`
}

// LoadConfig reads Config from the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := platform.LoadEnv(&c); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// DefaultConfig is the configuration with every default (tests).
func DefaultConfig() Config {
	return Config{
		DefaultRegion: "US", IdempotencyTTL: 24 * time.Hour, VisitorTTL: 720 * time.Hour, ClaimTTL: time.Minute,
		HandoffQueue: "capture-to-scoring", HandoffMaxAttempts: 10, HandoffBaseBackoff: 500 * time.Millisecond,
		HandoffMaxBackoff: time.Minute, HandoffWorkers: 1, DirectTimeout: 2 * time.Second, DirectPause: 10 * time.Second,
		ImportMaxRecords: 100000,
	}
}

// Validate checks values env parsing cannot; errors name the variable.
func (c Config) Validate() error {
	var errs []error
	if !domain.ValidRegion(c.DefaultRegion) {
		errs = append(errs, fmt.Errorf("LEADFLOW_CAPTURE_DEFAULT_REGION: %q is not a supported ISO 3166-1 alpha-2 region", c.DefaultRegion))
	}
	for name, d := range map[string]time.Duration{
		"LEADFLOW_CAPTURE_IDEMPOTENCY_TTL": c.IdempotencyTTL, "LEADFLOW_CAPTURE_VISITOR_TTL": c.VisitorTTL,
		"LEADFLOW_CAPTURE_CLAIM_TTL": c.ClaimTTL, "LEADFLOW_CAPTURE_HANDOFF_BASE_BACKOFF": c.HandoffBaseBackoff,
		"LEADFLOW_CAPTURE_HANDOFF_MAX_BACKOFF": c.HandoffMaxBackoff,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", name))
		}
	}
	if c.HandoffQueue == "" {
		errs = append(errs, errors.New("LEADFLOW_CAPTURE_HANDOFF_QUEUE: must not be empty"))
	}
	if c.HandoffMaxAttempts < 1 {
		errs = append(errs, errors.New("LEADFLOW_CAPTURE_HANDOFF_MAX_ATTEMPTS: must be at least 1"))
	}
	if c.HandoffWorkers < 0 {
		errs = append(errs, errors.New("LEADFLOW_CAPTURE_HANDOFF_WORKERS: must not be negative"))
	}
	if err := jobs.CheckDirect("LEADFLOW_CAPTURE_DIRECT", jobs.DirectOptions{Timeout: c.DirectTimeout, Pause: c.DirectPause}); err != nil {
		errs = append(errs, err)
	}
	if c.ImportMaxRecords < 1 {
		errs = append(errs, errors.New("LEADFLOW_CAPTURE_IMPORT_MAX_RECORDS: must be at least 1"))
	}
	return errors.Join(errs...)
}
