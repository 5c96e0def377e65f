package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/cmd/internal/load"
	"github.com/leadflow/leadflow/cmd/internal/seed"
)

func seedCmd(g *globals) *cobra.Command {
	var (
		cfg           seed.Config
		setup, remote bool
	)
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Fill a suite's Redis with N leads cloned from real journeys (for benchmarks on a full store)",
		Long: `seed runs --templates real journeys through the running suite (as leadflow load does),
waits until the suite is idle, reads back every key those leads left in every service's
keyspace and writes --leads clones of them under fresh ids: the lead id, and each id of the
lead's that names keys of its own (deal, routing decisions, the e-mail/phone identity hash,
the idempotency hash) is replaced in key names, hash tags, fields, members and values, and
every template entry in a shared key (per-organisation lead lists, scoring's status lists,
routing's rep sets and load counters, pipeline's deal indexes, reporting's cohort, job
queues) is added for each clone, so every index grows as after that many journeys.

What lives for a limited time is sized as in steady state, as if the --leads arrived evenly
over --history, the last one now: the event stream (trimmed by time, reporting's
LEADFLOW_REPORTING_RETENTION) gets the events of the clones that arrived within --retention,
keys with a TTL (idempotency records) exist for the clones within their TTL, job queue
entries (routing's SLA timers) for the clones within the time until they fall due, and the
reps' inbox streams are filled up to their cap (~10,000). Then it waits until reporting has
read the new stream entries and prints the memory used (INFO memory).

For benchmarks: it writes a lot. Seed a fresh Redis, a single node. Loopback only unless
--allow-remote.`,
		Example: `  leadflow seed --redis redis://127.0.0.1:6379/0 --leads 1000000 --setup`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg.Addrs, cfg.Token = g.addrs, g.token
			if cfg.RedisURL == "" {
				return fmt.Errorf("--redis is required")
			}
			if err := load.CheckAddrs([]string{cfg.Addrs.Capture, cfg.Addrs.Scoring, cfg.Addrs.Routing, cfg.Addrs.Pipeline, cfg.Addrs.Reporting, cfg.RedisURL}, remote); err != nil {
				return err
			}
			if setup {
				if err := g.applyLoadSetup(ctx); err != nil {
					return err
				}
			}
			rep, err := seed.Run(ctx, cfg, g.errOut)
			if err != nil {
				return err
			}
			rep.Print(g.out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.RedisURL, "redis", "", "the suite's Redis (redis://host:port/db, a single node)")
	f.IntVar(&cfg.Leads, "leads", 0, "clones to write")
	f.IntVar(&cfg.Templates, "templates", 200, "real journeys to run first as templates (0 = clone the leads already stored)")
	f.Float64Var(&cfg.Further, "further", 0.1, "share of template journeys taken on to accept, touch, BANT and QUALIFIED (as leadflow load)")
	f.DurationVar(&cfg.History, "history", 365*24*time.Hour, "the period over which the --leads arrived, evenly, the last one now (0 = all now)")
	f.DurationVar(&cfg.Retention, "retention", 2160*time.Hour, "the event stream's retention (reporting's LEADFLOW_REPORTING_RETENTION; 0 = kept for ever)")
	f.IntVar(&cfg.Batch, "batch", 200, "clones per pipeline")
	f.IntVar(&cfg.Workers, "workers", 2, "pipelines in flight")
	f.DurationVar(&cfg.Settle, "settle", 10*time.Minute, "how long to wait for the suite to be idle (before reading the templates, after writing)")
	f.BoolVar(&setup, "setup", false, "apply the load configuration (one team of 20 reps) first: CHANGES the suite's routing config")
	f.Float64Var(&cfg.MaxMemoryShare, "max-memory-share", 0.8, "stop early if the clones would take more than this share of the machine's available memory (0 = no check)")
	f.BoolVar(&remote, "allow-remote", false, "allow non-loopback addresses")
	return cmd
}
