package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/cmd/internal/apply"
	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
)

func loadCmd(g *globals) *cobra.Command {
	var (
		cfg     load.Config
		setup   bool
		fail    bool
		targets bool
		profile string
		view    string
	)
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Drive full lead journeys against a running suite; throughput, latency, conservation, baselines",
		Long: `load submits good-fit leads to capture at --rate per second (0 = as fast as --concurrency
allows) for --duration or --count (whichever comes first), follows each to routing
(assigned or queued) and takes --further of the assigned ones on to accept, touch, BANT and
QUALIFIED, then (--close-deals) waits for the deal scoring's hand-off opens (pipeline ListDeals
by lead_id, with backoff, up to --assign-wait) and closes it won. Assignments are observed on
the reps' inboxes: at the start it reads the routing configuration and opens one routing
WatchInbox stream per rep (from now; reconnecting from the last cursor if a stream breaks)
with --inbox-view (basic: the notification alone, as a service that reacts to assignments
reads it; full: also the lead's profile, score and contact, as a rep's UI reads it, which
costs routing a record read and capture a contact lookup per item), and each journey waits
for its lead's ASSIGNED item; a lead
not announced within --inbox-grace (queued, nurturing, bad fit) is polled with routing
GetAssignment. It prints throughput, p50/p90/p99 per RPC and end to end (SubmitLead start →
inbox item received, or assignment polled), how many journeys were observed each way, and the
conservation check: leads answered OK = assigned + queued + nurturing + bad fit,
duplicates = 0, dead letters = 0, deals closed (read back WON) = leads taken further.

Baselines in the same run: a plain gRPC echo (grpc.health.v1 Check served in this process on
loopback) and, with --redis, Redis PING round trips, at the same concurrency; every figure is
also printed as a ratio to them. With --redis the Redis commands and round trips per lead (INFO
commandstats, INFO stats) are reported, and after the last journey the tool waits until the suite
is idle (reporting has applied every event, no hand-off is due): the sustained rate counts that
catch-up, and the CPU figures its work. With --otlp-sink the spans and the Redis round trips made
inside traces, per lead. Dead letters are
read through the services' APIs (JobsService, reporting ListDeadLetters). Traffic goes only to the given addresses, and only to loopback unless --allow-remote.

--targets runs twice, first at the maximum rate and then paced at half the journeys/s that
run sustained, and judges both targets on the pair: throughput (sustained, with --redis) at
least 1/30 of the first run's echo, SubmitLead p99 under 25 ms in the second. The tool waits for
each journey's assignment, so it cannot go faster than --concurrency ÷ the end-to-end latency:
give it enough journeys in flight (make bench-targets uses 512).`,
		Example: `  leadflow load --duration 20s --redis redis://127.0.0.1:6379/0 --setup
  leadflow load --count 1000 --rate 200
  leadflow load --targets --further 0 --concurrency 512 --duration 20s --redis redis://127.0.0.1:6379/0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg.Addrs, cfg.Token = g.addrs, g.token
			if err := load.CheckAddrs([]string{cfg.Addrs.Capture, cfg.Addrs.Scoring, cfg.Addrs.Routing, cfg.Addrs.Pipeline, cfg.Addrs.Reporting, cfg.RedisURL}, cfg.AllowRemote); err != nil {
				return err
			}
			var err error
			if cfg.InboxView, err = load.ParseInboxView(view); err != nil {
				return err
			}
			if setup {
				if err := g.applyLoadSetup(ctx); err != nil {
					return err
				}
			}
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
			if targets {
				maximum, half, err := load.RunTargets(ctx, cfg, g.errOut)
				if maximum != nil {
					maximum.Print(g.out)
				}
				if err != nil {
					return err
				}
				half.Print(g.out)
				load.PrintTargets(g.out, maximum, half)
				if fail && (!maximum.OK() || !half.OK()) {
					return fmt.Errorf("conservation check failed")
				}
				return nil
			}
			rep, err := load.Run(ctx, cfg, g.errOut)
			if err != nil {
				return err
			}
			rep.Print(g.out)
			if fail && !rep.OK() {
				return fmt.Errorf("conservation check failed")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.RedisURL, "redis", "", "Redis of the suite: Redis PING baseline, commands per lead")
	f.Float64Var(&cfg.Rate, "rate", 0, "journeys started per second (0 = as fast as possible)")
	f.IntVar(&cfg.Concurrency, "concurrency", 32, "journeys in flight at most")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to submit (0 = until --count)")
	f.IntVar(&cfg.Count, "count", 0, "journeys to run (0 = until --duration)")
	f.Float64Var(&cfg.Further, "further", 0.1, "share of assigned leads taken on to accept, touch, BANT and QUALIFIED")
	f.BoolVar(&cfg.CloseDeals, "close-deals", true, "then wait for each further lead's deal (pipeline ListDeals lead_id) and close it won")
	f.DurationVar(&cfg.CallTimeout, "call-timeout", 5*time.Second, "deadline of each call")
	f.DurationVar(&cfg.AssignWait, "assign-wait", 30*time.Second, "how long a journey waits for its lead to be routed")
	f.DurationVar(&cfg.InboxGrace, "inbox-grace", 2*time.Second, "how long a journey waits for its lead's ASSIGNED inbox item before polling GetAssignment")
	f.IntVar(&cfg.InboxStreams, "inbox-streams", 32, "WatchInbox streams at most (one per rep; leads of reps beyond it are polled)")
	f.StringVar(&view, "inbox-view", "basic", "WatchInbox view: basic (the notification, all a journey needs) or full (also profile, score and contact: routing reads each lead's record and asks capture for its contact, as for a rep's UI)")
	f.BoolVar(&cfg.PollOnly, "poll-only", false, "observe assignments only by polling GetAssignment (no inbox streams), for comparison")
	f.DurationVar(&cfg.Baseline, "baseline", 3*time.Second, "duration of each baseline (0 = skip)")
	f.StringVar(&cfg.OTLPSink, "otlp-sink", "", "serve an in-process OTLP/gRPC trace collector on this address during the run (counts and discards spans; make bench points the suite at it)")
	f.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow non-loopback addresses")
	f.BoolVar(&setup, "setup", false, "apply the load configuration (one team of 20 reps) first: CHANGES the suite's routing config")
	f.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the load tool itself over the journeys to this file (go tool pprof)")
	f.BoolVar(&fail, "fail", true, "exit non-zero when the conservation check fails")
	f.BoolVar(&targets, "targets", false, "run twice, at the maximum rate and then paced at half of it, and judge both targets (throughput, SubmitLead p99) on the pair")
	return cmd
}

// applyLoadSetup applies the load configuration (one team of 20 reps) once
// the suite is ready: --setup of load and seed.
func (g *globals) applyLoadSetup(ctx context.Context) error {
	err := g.withClients(func(c *client.Clients) error {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := apply.ApplyText(actx, c, load.SetupConfig)
		return err
	})
	if err != nil {
		return fmt.Errorf("--setup: %w", err)
	}
	fmt.Fprintln(g.errOut, "setup: applied the load configuration (team load, 20 reps)")
	return nil
}
