// Package suitetest boots the five LeadFlow services for a test exactly as
// `leadflow dev` boots them (internal/suite: one runtime each, real gRPC
// between them) against a given Redis URL, waits for readiness and applies
// a routing configuration. The fault and load tests build on it.
package suitetest

import (
	"context"
	"testing"
	"time"

	"github.com/leadflow/leadflow/cmd/internal/apply"
	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
	"github.com/leadflow/leadflow/cmd/internal/suite"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// Options tune a booted suite.
type Options struct {
	// Base adjusts each service's configuration (after platformtest.Base).
	Base func(b *platform.Base)
	// RuntimeOptions are extra runtime options per service.
	RuntimeOptions func(service string) []platform.Option
	// Config is the YAML applied after readiness; "" = load.SetupConfig.
	Config string
	// NoStopAtCleanup leaves stopping to the test (Stop).
	NoStopAtCleanup bool
}

// Boot starts the suite on free loopback ports against redisURL and returns
// it with clients (dev token). It is stopped at cleanup.
func Boot(t testing.TB, redisURL string, o Options) (*suite.Suite, *client.Clients) {
	t.Helper()
	s, err := suite.Start(context.Background(), suite.Options{
		BasePort: 0, RedisURL: redisURL,
		Base: func(service string) (platform.Base, error) {
			b := platformtest.Base(service, redisURL)
			b.LogLevel = "warn"
			if o.Base != nil {
				o.Base(&b)
			}
			return b, nil
		},
		RuntimeOptions: o.RuntimeOptions,
	})
	if err != nil {
		t.Fatalf("start suite: %v", err)
	}
	if !o.NoStopAtCleanup {
		t.Cleanup(func() {
			if err := s.Stop(); err != nil {
				t.Logf("suite stopped with: %v", err)
			}
		})
	}
	c, err := client.Dial(client.FromPeers(s.Peers()), platform.DevToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	readyAndConfigured(t, c, o.Config)
	return s, c
}

// readyAndConfigured waits until the five services are ready and applies
// cfg ("" = load.SetupConfig).
func readyAndConfigured(t testing.TB, c *client.Clients, cfg string) {
	t.Helper()
	if cfg == "" {
		cfg = load.SetupConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := apply.ApplyText(ctx, c, cfg); err != nil {
		t.Fatalf("apply configuration: %v", err)
	}
}

// Eventually polls fn every 50 ms until it returns true or d passes, and
// reports whether it did.
func Eventually(d time.Duration, fn func() bool) bool {
	deadline := time.Now().Add(d)
	for !fn() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
