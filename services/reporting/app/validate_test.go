package app

import (
	"strings"
	"testing"
	"time"
)

func TestValidateLinger(t *testing.T) {
	ok := Config{Batch: 100, Block: 2 * time.Second, ClaimMinIdle: time.Minute, ClaimInterval: 15 * time.Second,
		MaxDeliveries: 5, TrimInterval: time.Minute, ScoreBandWidth: 10}
	for _, d := range []time.Duration{0, 20 * time.Millisecond, time.Second} {
		c := ok
		c.Linger = d
		if err := validate(c); err != nil {
			t.Errorf("linger %s refused: %v", d, err)
		}
	}
	for _, d := range []time.Duration{-time.Millisecond, 1500 * time.Millisecond} {
		c := ok
		c.Linger = d
		if err := validate(c); err == nil || !strings.Contains(err.Error(), "LEADFLOW_REPORTING_LINGER") {
			t.Errorf("linger %s: %v, want an error naming LEADFLOW_REPORTING_LINGER", d, err)
		}
	}
}
