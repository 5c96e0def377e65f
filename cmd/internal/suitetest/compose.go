package suitetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/suite"
	captureapp "github.com/leadflow/leadflow/services/capture/app"
	pipelineapp "github.com/leadflow/leadflow/services/pipeline/app"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	reportingapp "github.com/leadflow/leadflow/services/reporting/app"
	routingapp "github.com/leadflow/leadflow/services/routing/app"
	scoringapp "github.com/leadflow/leadflow/services/scoring/app"
)

// Build builds one service from its LEADFLOW_<SERVICE>_* configuration, as
// internal/suite does (whose builders are unexported).
func Build(ctx context.Context, name string, rt *platform.Runtime) (platform.Service, error) {
	switch name {
	case "capture":
		cfg, err := captureapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return captureapp.New(ctx, rt, cfg)
	case "scoring":
		cfg, err := scoringapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return scoringapp.New(ctx, rt, cfg)
	case "routing":
		cfg, err := routingapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return routingapp.New(ctx, rt, cfg)
	case "pipeline":
		cfg, err := pipelineapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return pipelineapp.New(ctx, rt, cfg)
	case "reporting":
		cfg, err := reportingapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return reportingapp.New(ctx, rt, cfg)
	}
	return platform.Service{}, fmt.Errorf("unknown service %q", name)
}

// Proxied is a suite whose services reach each other (and Redis) through
// addresses the test chooses: the fault tests put a toxiproxy in between.
type Proxied struct {
	// Addrs are the services' own listen addresses (clients dial these).
	Addrs  map[string]string
	cancel map[string]context.CancelFunc
	done   map[string]chan struct{}
	mu     sync.Mutex
	errs   []error
}

// Stop stops one service gracefully and waits for it.
func (p *Proxied) Stop(name string) {
	p.cancel[name]()
	<-p.done[name]
}

// StopAll stops every service.
func (p *Proxied) StopAll() {
	for _, n := range suite.Services {
		p.cancel[n]()
	}
	for _, n := range suite.Services {
		<-p.done[n]
	}
}

// Err is what the stopped services returned.
func (p *Proxied) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// BootProxied starts the five services on free loopback ports; service s
// dials peer q at peerAddr(q, addr of q) and Redis at redisURL(s). Unlike
// internal/suite, one service stopping does not stop the others. Stopped at
// cleanup; the configuration (o.Config or load.SetupConfig) is applied.
func BootProxied(t testing.TB, redisURL func(service string) string, peerAddr func(peer, addr string) string, o Options) (*Proxied, *client.Clients) {
	t.Helper()
	lis := map[string]net.Listener{}
	p := &Proxied{Addrs: map[string]string{}, cancel: map[string]context.CancelFunc{}, done: map[string]chan struct{}{}}
	for _, n := range suite.Services {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis[n] = l
		p.Addrs[n] = l.Addr().String()
	}
	peers := platform.Peers{
		Capture: peerAddr("capture", p.Addrs["capture"]), Scoring: peerAddr("scoring", p.Addrs["scoring"]),
		Routing: peerAddr("routing", p.Addrs["routing"]), Pipeline: peerAddr("pipeline", p.Addrs["pipeline"]),
		Reporting: peerAddr("reporting", p.Addrs["reporting"]),
	}
	for _, n := range suite.Services {
		b := platformtest.Base(n, redisURL(n))
		b.LogLevel = "warn"
		if o.Base != nil {
			o.Base(&b)
		}
		b.Service, b.GRPCAddr, b.RedisURL, b.Peers = n, p.Addrs[n], redisURL(n), peers
		var opts []platform.Option
		if o.RuntimeOptions != nil {
			opts = o.RuntimeOptions(n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		rt, err := platform.NewRuntime(ctx, b, opts...)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", n, err)
		}
		svc, err := Build(ctx, n, rt)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", n, err)
		}
		done := make(chan struct{})
		p.cancel[n], p.done[n] = cancel, done
		go func() {
			defer close(done)
			if err := rt.ServeListener(ctx, lis[n], svc); err != nil {
				p.mu.Lock()
				p.errs = append(p.errs, fmt.Errorf("%s: %w", n, err))
				p.mu.Unlock()
			}
		}()
	}
	t.Cleanup(p.StopAll)
	c, err := client.Dial(client.Addrs{Capture: p.Addrs["capture"], Scoring: p.Addrs["scoring"], Routing: p.Addrs["routing"], Pipeline: p.Addrs["pipeline"], Reporting: p.Addrs["reporting"]}, platform.DevToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	readyAndConfigured(t, c, o.Config)
	return p, c
}
