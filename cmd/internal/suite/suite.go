// Package suite runs the five LeadFlow services in one process, each with its
// own platform.Runtime (so each has its own service.name in telemetry), each
// served on its own port and talking to the others over real gRPC. It is the
// code path of `leadflow dev` and of the end-to-end tests.
package suite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	captureapp "github.com/leadflow/leadflow/services/capture/app"
	pipelineapp "github.com/leadflow/leadflow/services/pipeline/app"
	"github.com/leadflow/leadflow/services/platform"
	reportingapp "github.com/leadflow/leadflow/services/reporting/app"
	routingapp "github.com/leadflow/leadflow/services/routing/app"
	scoringapp "github.com/leadflow/leadflow/services/scoring/app"
)

// Services are the five services in port order (capture on the base port).
var Services = []string{"capture", "scoring", "routing", "pipeline", "reporting"}

// builders build each service from its own LEADFLOW_<SERVICE>_* configuration.
var builders = map[string]func(ctx context.Context, rt *platform.Runtime) (platform.Service, error){
	"capture": func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := captureapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return captureapp.New(ctx, rt, cfg)
	},
	"scoring": func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := scoringapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return scoringapp.New(ctx, rt, cfg)
	},
	"routing": func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := routingapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return routingapp.New(ctx, rt, cfg)
	},
	"pipeline": func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := pipelineapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return pipelineapp.New(ctx, rt, cfg)
	},
	"reporting": func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := reportingapp.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return reportingapp.New(ctx, rt, cfg)
	},
}

// Options say where and how the suite runs.
type Options struct {
	// Host is the listen host of every service; "" means 127.0.0.1.
	Host string
	// BasePort is capture's port; scoring, routing, pipeline and reporting
	// listen on the next four. 0 picks five free ports (tests).
	BasePort int
	// RedisURL is the Redis every service uses (required).
	RedisURL string
	// Base returns a service's shared configuration before the suite sets
	// its listen address, Redis URL and peers; nil means platform.LoadBase
	// (the LEADFLOW_* environment).
	Base func(service string) (platform.Base, error)
	// RuntimeOptions returns extra runtime options of a service (tests: a
	// shared span exporter, a log buffer).
	RuntimeOptions func(service string) []platform.Option
}

// Suite is the five services running.
type Suite struct {
	addrs  map[string]string
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	errs []error
}

// Start listens on the five ports, builds a runtime and the service for each,
// and serves them until ctx is done or Stop is called. When one service stops
// with an error, the others are shut down too. Start returns when every
// service is listening (readiness follows Redis; see client.WaitReady).
func Start(ctx context.Context, o Options) (*Suite, error) {
	if o.RedisURL == "" {
		return nil, errors.New("suite: no Redis URL")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Base == nil {
		o.Base = platform.LoadBase
	}
	if o.BasePort < 0 || o.BasePort > 65535-len(Services) {
		return nil, fmt.Errorf("suite: base port %d out of range", o.BasePort)
	}

	// 1. Listen first, so every service knows every peer's address (also
	// with free ports) before anything is built.
	listeners := map[string]net.Listener{}
	closeAll := func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}
	addrs := map[string]string{}
	for i, name := range Services {
		port := 0
		if o.BasePort != 0 {
			port = o.BasePort + i
		}
		l, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(port)))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: listen: %w", name, err)
		}
		listeners[name] = l
		addrs[name] = dialAddr(l.Addr(), o.Host)
	}
	peers := platform.Peers{
		Capture: addrs["capture"], Scoring: addrs["scoring"], Routing: addrs["routing"],
		Pipeline: addrs["pipeline"], Reporting: addrs["reporting"],
	}

	// 2. A runtime and the service for each.
	type built struct {
		rt  *platform.Runtime
		svc platform.Service
	}
	var all []built
	fail := func(err error) (*Suite, error) {
		closeAll()
		for _, b := range all {
			if b.svc.Close != nil {
				_ = b.svc.Close()
			}
			_ = b.rt.Close(context.Background())
		}
		return nil, err
	}
	for _, name := range Services {
		base, err := o.Base(name)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		base.Service = name
		base.GRPCAddr = listeners[name].Addr().String()
		base.RedisURL = o.RedisURL
		base.Peers = peers
		var opts []platform.Option
		if o.RuntimeOptions != nil {
			opts = o.RuntimeOptions(name)
		}
		rt, err := platform.NewRuntime(ctx, base, opts...)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		svc, err := builders[name](ctx, rt)
		if err != nil {
			_ = rt.Close(context.Background())
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		all = append(all, built{rt: rt, svc: svc})
	}

	// 3. Serve each on its own listener.
	runCtx, cancel := context.WithCancel(ctx)
	s := &Suite{addrs: addrs, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	for i, b := range all {
		name := Services[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.rt.ServeListener(runCtx, listeners[name], b.svc)
			if err != nil {
				s.mu.Lock()
				s.errs = append(s.errs, fmt.Errorf("%s: %w", name, err))
				s.mu.Unlock()
			}
			// One service down takes the suite down: the others would only
			// pile up hand-offs to it.
			cancel()
		}()
	}
	go func() { wg.Wait(); close(s.done) }()
	return s, nil
}

// dialAddr is the address clients use for a listener: a wildcard listen host
// is dialled on loopback.
func dialAddr(a net.Addr, host string) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || host == "0.0.0.0" || host == "::" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// Addr is the dial address of a service ("capture", …).
func (s *Suite) Addr(service string) string { return s.addrs[service] }

// Peers are the dial addresses of the five services.
func (s *Suite) Peers() platform.Peers {
	return platform.Peers{
		Capture: s.addrs["capture"], Scoring: s.addrs["scoring"], Routing: s.addrs["routing"],
		Pipeline: s.addrs["pipeline"], Reporting: s.addrs["reporting"],
	}
}

// Done is closed when every service has stopped.
func (s *Suite) Done() <-chan struct{} { return s.done }

// Err is what the services stopped with (after Done).
func (s *Suite) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// Stop shuts the five services down gracefully (each: health NOT_SERVING,
// GracefulStop, workers, Redis, telemetry flushed) and waits for them.
func (s *Suite) Stop() error {
	s.cancel()
	<-s.done
	return s.Err()
}
