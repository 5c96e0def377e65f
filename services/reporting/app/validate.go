package app

import (
	"errors"
	"fmt"
	"time"
)

func validate(c Config) error {
	var errs []error
	if c.Batch <= 0 || c.Batch > 10000 {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_BATCH: %d is not in 1..10000", c.Batch))
	}
	if c.Block <= 0 {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_BLOCK: must be positive"))
	}
	if c.Linger < 0 || c.Linger > time.Second {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_LINGER: %s is not in 0..1s", c.Linger))
	}
	if c.ClaimMinIdle <= 0 {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_CLAIM_MIN_IDLE: must be positive"))
	}
	if c.ClaimInterval <= 0 {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_CLAIM_INTERVAL: must be positive"))
	}
	if c.MaxDeliveries <= 0 {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_MAX_DELIVERIES: must be positive"))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_RETENTION: must not be negative (0 keeps everything)"))
	}
	if c.TrimInterval <= 0 {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_TRIM_INTERVAL: must be positive"))
	}
	if c.ScoreBandWidth <= 0 {
		errs = append(errs, fmt.Errorf("LEADFLOW_REPORTING_SCORE_BAND_WIDTH: must be positive"))
	}
	return errors.Join(errs...)
}
