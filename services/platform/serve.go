package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// Service is what a service module gives the runtime to serve.
type Service struct {
	// Register registers the gRPC implementations on the server.
	Register func(*grpc.Server)
	// Names are the full proto service names, reported by health.
	Names []string
	// Workers are background loops (job queues, timers, consumers). They run
	// until their context is cancelled at shutdown; an error from one is
	// logged and stops the service.
	Workers []func(ctx context.Context) error
	// Close releases what the service holds; called after the server and the
	// workers stopped, before Redis is closed.
	Close func() error
}

// Serve listens on Config.GRPCAddr and serves until ctx is done.
func (rt *Runtime) Serve(ctx context.Context, svc Service) error {
	lis, err := net.Listen("tcp", rt.Config.GRPCAddr)
	if err != nil {
		_ = rt.Close(context.Background())
		return fmt.Errorf("LEADFLOW_GRPC_ADDR %q: %w", rt.Config.GRPCAddr, err)
	}
	return rt.ServeListener(ctx, lis, svc)
}

// streamWorkers is the size of each server's pool of call goroutines.
const streamWorkers = 128

// NewServer builds the gRPC server with the platform's interceptors, health
// and reflection, and registers svc on it.
func (rt *Runtime) NewServer(svc Service) (*grpc.Server, *health.Server, error) {
	v, err := newValidator()
	if err != nil {
		return nil, nil, err
	}
	s := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(rt.tel.TracerProvider),
			otelgrpc.WithMeterProvider(rt.tel.MeterProvider),
			otelgrpc.WithPropagators(rt.tel.Propagator),
			otelgrpc.WithFilter(statsFilter),
		)),
		grpc.ChainUnaryInterceptor(recoveryUnary(rt.Logger), deadlineCap(rt.Config.MaxDeadline), rt.Auth.unary, v.unary, loggingUnary(rt.Logger)),
		grpc.ChainStreamInterceptor(recoveryStream(rt.Logger), rt.Auth.stream, v.stream, loggingStream(rt.Logger)),
		grpc.MaxRecvMsgSize(rt.Config.MaxMessageBytes),
		// Calls run on reused goroutines, whose stacks have grown already:
		// a new goroutine per call grew its stack on most calls (2.5 % of
		// the suite's CPU at the maximum rate; 0.7 % with the pool). Past
		// the pool, calls get a goroutine of their own, as without it.
		grpc.NumStreamWorkers(streamWorkers),
		// MaxConnectionAge makes clients reconnect now and then, so calls spread
		// over replicas that were added after the client connected.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: 5 * time.Minute, MaxConnectionAge: 5 * time.Minute, MaxConnectionAgeGrace: 30 * time.Second,
			Time: 30 * time.Second, Timeout: 10 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	if svc.Register != nil {
		svc.Register(s)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, n := range svc.Names {
		hs.SetServingStatus(n, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return s, hs, nil
}

// ServeListener serves on lis until ctx is done, then shuts down in order:
// health NOT_SERVING → drain (ShutdownDrain, still serving) → GracefulStop (at most ShutdownTimeout, then Stop) →
// workers stopped → svc.Close → Redis closed → telemetry flushed.
func (rt *Runtime) ServeListener(ctx context.Context, lis net.Listener, svc Service) error {
	s, hs, err := rt.NewServer(svc)
	if err != nil {
		_ = lis.Close()
		_ = rt.Close(context.Background())
		return err
	}
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	failed := make(chan error, 2+len(svc.Workers))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rt.watchHealth(workCtx, hs, svc.Names)
	}()
	for i, w := range svc.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w(workCtx); err != nil && workCtx.Err() == nil {
				rt.Logger.Error("worker stopped", "worker", i, "error", err.Error())
				failed <- fmt.Errorf("worker %d: %w", i, err)
			}
		}()
	}
	go func() {
		if err := s.Serve(lis); err != nil {
			failed <- fmt.Errorf("serve: %w", err)
		}
	}()
	rt.Logger.Info("serving", "addr", lis.Addr().String(), "services", svc.Names)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
	}

	// 1. Readiness goes first, so load balancers stop sending new calls; the
	// server keeps answering for the drain period while they notice, instead
	// of refusing calls a balancer is still routing here.
	hs.Shutdown()
	if d := rt.Config.ShutdownDrain; d > 0 {
		rt.Logger.Info("draining", "for", d.String())
		time.Sleep(d)
	}
	// 2. In-flight calls finish, up to the limit.
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(rt.Config.ShutdownTimeout):
		rt.Logger.Warn("graceful stop timed out; cutting remaining calls", "timeout", rt.Config.ShutdownTimeout.String())
		s.Stop()
		<-stopped
	}
	// 3. Workers stop (a claimed job not acked is retried after its lease).
	stopWork()
	wg.Wait()
	// 4. The service's own resources, 5. Redis and telemetry.
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	errs = append(errs, runErr)
	if svc.Close != nil {
		errs = append(errs, svc.Close())
	}
	errs = append(errs, rt.Close(flushCtx))
	rt.Logger.Info("stopped")
	return errors.Join(errs...)
}

// watchHealth makes readiness follow Redis: SERVING while PING answers,
// NOT_SERVING while it does not.
//
// The overall status ("") is liveness: SERVING from start until shutdown
// whatever Redis does, so a Redis outage never gets every pod restarted.
func (rt *Runtime) watchHealth(ctx context.Context, hs *health.Server, names []string) {
	all := names
	last := healthpb.HealthCheckResponse_UNKNOWN
	t := time.NewTicker(rt.Config.HealthInterval)
	defer t.Stop()
	for {
		pingCtx, cancel := context.WithTimeout(ctx, rt.Config.HealthInterval)
		err := rt.Redis.Ping(pingCtx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		st := healthpb.HealthCheckResponse_SERVING
		if err != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if st != last {
			for _, n := range all {
				hs.SetServingStatus(n, st)
			}
			if err != nil {
				rt.Logger.Warn("not serving: redis unreachable", "error", err.Error())
			} else {
				rt.Logger.Info("serving: redis reachable")
			}
			last = st
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DefaultGCPercent is the Go collector's target (GOGC) of a LeadFlow server
// process when GOGC is not set. A service's live heap is small (tens of MB)
// and nearly all it allocates is per-request garbage, so collecting at 5x
// the live heap rather than Go's 2x costs little memory and about a tenth of
// a server's CPU at full load (the collector's marking and assists).
const DefaultGCPercent = 400

// TuneGC sets DefaultGCPercent for a server process unless GOGC is set (the
// runtime has applied that already); GOMEMLIMIT still caps the heap.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// Main is a service's whole main: configuration, runtime, the service's
// builder, serving until SIGINT/SIGTERM. A bad configuration exits with 2 and
// a message naming the variable.
func Main(name string, build func(ctx context.Context, rt *Runtime) (Service, error)) {
	TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	base, err := LoadBase(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	rt, err := NewRuntime(ctx, base)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	svc, err := build(ctx, rt)
	if err != nil {
		rt.Logger.Error("start failed", "error", err.Error())
		_ = rt.Close(context.Background())
		os.Exit(1)
	}
	if err := rt.Serve(ctx, svc); err != nil {
		rt.Logger.Error("stopped with error", "error", err.Error())
		os.Exit(1)
	}
}
