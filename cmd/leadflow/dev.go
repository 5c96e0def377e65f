package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/suite"
	"github.com/leadflow/leadflow/services/platform"
)

func devCmd(g *globals) *cobra.Command {
	var (
		redisURL     string
		host         string
		basePort     int
		embeddedAddr string
		logLevel     string
		pprofAddr    string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run all five services in one process (embedded Redis unless --redis)",
		Long: `dev runs capture, scoring, routing, pipeline and reporting in one process, each with its
own runtime (its own service.name in traces and metrics) on its own port, talking to each
other over real gRPC: capture on --base-port, then scoring, routing, pipeline, reporting.

With --redis URL (or LEADFLOW_REDIS_URL) every service uses that Redis. Without one, an
embedded Redis-compatible server (miniredis) runs in the process: NOTHING IS DURABLE, every
lead is gone when dev stops.

Each service reads its own LEADFLOW_<SERVICE>_* variables and the shared LEADFLOW_* ones
(auth policy, timeouts, OTEL_* for telemetry); listen addresses, Redis and peers are set by dev.
Ctrl-C (or SIGTERM) shuts all five down gracefully.`,
		Example: `  leadflow dev
  leadflow dev --redis redis://127.0.0.1:6379/0
  leadflow dev --base-port 8001 --log-level warn`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := g.out
			platform.TuneGC()
			if redisURL == "" {
				redisURL = os.Getenv("LEADFLOW_REDIS_URL")
			}
			// One OTEL_SERVICE_NAME would give all five services the same
			// name; each runtime names itself.
			if os.Getenv("OTEL_SERVICE_NAME") != "" {
				fmt.Fprintf(g.errOut, "note: OTEL_SERVICE_NAME=%q ignored: each service is named by its runtime\n", os.Getenv("OTEL_SERVICE_NAME"))
				_ = os.Unsetenv("OTEL_SERVICE_NAME")
			}
			if strings.Contains(os.Getenv("OTEL_RESOURCE_ATTRIBUTES"), "service.name=") {
				fmt.Fprintln(g.errOut, "warning: OTEL_RESOURCE_ATTRIBUTES sets service.name: all five services will report that one name")
			}

			redisNote := redisURL
			if redisURL == "" {
				emb, err := suite.StartEmbedded(embeddedAddr)
				if err != nil {
					return err
				}
				defer emb.Close()
				redisURL = emb.URL()
				redisNote = fmt.Sprintf("embedded (miniredis) at %s\n               NOTHING IS DURABLE: every lead, config and event is gone when dev stops.\n               For durable data: leadflow dev --redis redis://127.0.0.1:6379/0", emb.Addr())
			}
			s, err := suite.Start(ctx, suite.Options{
				Host: host, BasePort: basePort, RedisURL: redisURL,
				Base: func(service string) (platform.Base, error) {
					b, err := platform.LoadBase(service)
					if err != nil {
						return b, err
					}
					if logLevel != "" {
						b.LogLevel = logLevel
					}
					return b, nil
				},
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "LeadFlow all-in-one: five services in one process, over real gRPC")
			for _, name := range suite.Services {
				fmt.Fprintf(out, "  %-12s %s\n", name, s.Addr(name))
			}
			fmt.Fprintf(out, "  %-12s %s\n", "redis", redisNote)
			fmt.Fprintf(out, "  %-12s %s (development policy: accepted for every method; LEADFLOW_TOKEN=%s)\n", "dev token", platform.DevToken, platform.DevToken)
			if pprofAddr != "" {
				addr, err := servePprof(ctx, pprofAddr)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "  %-12s http://%s/debug/pprof/\n", "pprof", addr)
			}
			fmt.Fprintln(out, "Ctrl-C stops all five gracefully.")

			// Report readiness (health SERVING follows Redis).
			c, err := client.Dial(client.FromPeers(s.Peers()), platform.DevToken)
			if err == nil {
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				if err := c.WaitReady(wctx); err != nil {
					fmt.Fprintln(g.errOut, "warning: "+err.Error())
				} else {
					fmt.Fprintln(out, "Ready: all five report SERVING. Try: leadflow demo")
				}
				cancel()
				_ = c.Close()
			}

			select {
			case <-ctx.Done():
				fmt.Fprintln(out, "\nshutting down (health NOT_SERVING, in-flight calls finish, workers stop, telemetry flushed); Ctrl-C again quits at once…")
			case <-s.Done():
				fmt.Fprintln(out, "a service stopped; shutting the others down…")
			}
			if err := s.Stop(); err != nil {
				return err
			}
			fmt.Fprintln(out, "stopped.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&redisURL, "redis", "", "Redis URL for every service ($LEADFLOW_REDIS_URL); empty = embedded, not durable")
	f.StringVar(&host, "host", "127.0.0.1", "listen host of the five services (0.0.0.0 to accept remote calls)")
	f.IntVar(&basePort, "base-port", 7001, "capture's port; scoring, routing, pipeline and reporting use the next four")
	f.StringVar(&embeddedAddr, "embedded-redis-addr", "127.0.0.1:0", "listen address of the embedded Redis (without --redis)")
	f.StringVar(&pprofAddr, "pprof", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060 (off when empty)")
	f.StringVar(&logLevel, "log-level", "", "log level of the five services (debug, info, warn, error); default $LEADFLOW_LOG_LEVEL or info")
	return cmd
}

// servePprof serves the profiler's handlers on addr until ctx ends; it
// returns the address it listens on.
func servePprof(ctx context.Context, addr string) (string, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return lis.Addr().String(), nil
}
