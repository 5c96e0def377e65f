package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/cmd/internal/apply"
	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/demo"
	"github.com/leadflow/leadflow/cmd/internal/render"
)

// demoConfig is the configuration `leadflow demo` applies first.
//
//go:embed demo/demo.yaml
var demoConfig []byte

func demoCmd(g *globals) *cobra.Command {
	var (
		leads     int
		seed      uint64
		runID     string
		wait      time.Duration
		readyWait time.Duration
		config    string
		noConfig  bool
		verbose   bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Play realistic leads through a running suite and show the funnel",
		Long: `demo waits until the five services report SERVING, applies the demo configuration
(three teams with reps, weights, capacities and working hours; routing rules by region and
company size; SLA policies; the default scoring model and pipeline — see --print-config),
then plays --leads submissions through the whole journey with the public APIs:

  capture → engagement → scoring (MQL) → routing (assigned) → reps accept, reject, touch,
  give back (junk, recycle, unreachable) → qualify (BANT, QUALIFIED) → deals through the
  stages with a quote → won or lost (some recycled) → the funnel report

Hand-offs between services are asynchronous: demo polls the APIs, at most --wait for each
step. It ends with the funnel of the run's leads (checked against what it did) and the
trace id of one lead's whole journey. The same --seed plays the same leads and outcomes.`,
		Example: `  leadflow demo
  leadflow demo --leads 200 --seed 7 -v
  leadflow demo --print-config > my-config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pc, _ := cmd.Flags().GetBool("print-config"); pc {
				_, err := g.out.Write(demoConfig)
				return err
			}
			cfg := demoConfig
			if config != "" {
				b, err := os.ReadFile(config)
				if err != nil {
					return err
				}
				cfg = b
			}
			if noConfig {
				cfg = nil
			}
			if cfg != nil {
				if _, err := apply.Parse(cfg); err != nil {
					return fmt.Errorf("configuration: %w", err)
				}
			}
			return g.withClients(func(c *client.Clients) error {
				ctx := cmd.Context()
				if err := waitReady(ctx, g.out, c, readyWait); err != nil {
					return err
				}
				var out io.Writer = g.out
				if g.output == "json" {
					out = g.errOut // progress to stderr, the funnel as JSON on stdout
				}
				sum, err := demo.Run(ctx, c, demo.Options{
					Leads: leads, Seed: seed, RunID: runID, Wait: wait, Config: cfg, Out: out, Verbose: verbose,
				})
				if g.output == "json" && sum != nil && sum.Funnel != nil {
					if jerr := render.JSON(g.out, sum.Funnel); jerr != nil {
						return jerr
					}
				}
				return err
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&leads, "leads", 60, "number of submissions to play")
	f.Uint64Var(&seed, "seed", 1, "seed of the people, companies and outcomes (same seed, same run)")
	f.StringVar(&runID, "run-id", "", "tag of this run's e-mail addresses and idempotency keys (default: from the clock, so reruns make new leads)")
	f.DurationVar(&wait, "wait", 30*time.Second, "longest wait for each asynchronous hand-off")
	f.DurationVar(&readyWait, "ready-wait", 60*time.Second, "longest wait for the five services to report SERVING")
	f.StringVar(&config, "config", "", "apply this configuration file instead of the built-in demo configuration")
	f.BoolVar(&noConfig, "no-config", false, "apply no configuration (use what the suite has)")
	f.BoolVarP(&verbose, "verbose", "v", false, "print one line per lead at the end")
	f.Bool("print-config", false, "print the built-in demo configuration and exit")
	return cmd
}

// waitReady waits for health SERVING on all five, saying what it waits for.
func waitReady(ctx context.Context, out io.Writer, c *client.Clients, d time.Duration) error {
	qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err := c.WaitReady(qctx)
	cancel()
	if err == nil {
		return nil
	}
	fmt.Fprintf(out, "waiting up to %s for the five services to report SERVING…\n", d)
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return c.WaitReady(wctx)
}

func applyCmd(g *globals) *cobra.Command {
	var file string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Apply a configuration file (routing, scoring model, pipelines, campaign spend)",
		Long: `apply reads one YAML file and applies it through the services' APIs, like kubectl apply:
objects already as described are left alone ("unchanged"), the others are created or
changed, and nothing the file does not mention is deleted.

  routing:         leadflow.routing.v1.RoutingConfig     → RoutingService.ApplyConfig (new version)
  scoring.model:   leadflow.scoring.v1.ScoringModel      → ScoringService.CreateModel + activate
  pipelines:       leadflow.pipeline.v1.CreatePipelineRequest list (default: true = the default
                   pipeline) → CreatePipeline, or AddStage/RenameStage on an existing one
  campaign_spend:  leadflow.reporting.v1.RecordCampaignSpendRequest list → RecordCampaignSpend

Fields are the proto fields (snake_case or lowerCamelCase), enums by name, durations "900s".
"-f -" reads standard input. See the README (the all-in-one, the CLI and the demo) and 'leadflow demo --print-config'.`,
		Example: `  leadflow apply -f config.yaml
  leadflow demo --print-config | leadflow apply -f -
  leadflow apply -f config.yaml --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f FILE is required")
			}
			var data []byte
			var err error
			if file == "-" {
				data, err = io.ReadAll(os.Stdin)
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			f, err := apply.Parse(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if dryRun {
				fmt.Fprintf(g.out, "%s: valid (routing: %t, scoring model: %t, pipelines: %d, campaign spend: %d); nothing applied\n",
					file, f.Routing != nil, f.ScoringModel != nil, len(f.Pipelines), len(f.CampaignSpend))
				return nil
			}
			return g.withClients(func(c *client.Clients) error {
				ctx, cancel := context.WithTimeout(cmd.Context(), 4*g.timeout)
				defer cancel()
				res, err := apply.Apply(ctx, c, f)
				for _, r := range res {
					fmt.Fprintln(g.out, r)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "configuration file (YAML; - for stdin)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only parse and check the file locally")
	return cmd
}

func healthCmd(g *globals) *cobra.Command {
	var wait time.Duration
	return withWait(&wait, &cobra.Command{
		Use:   "health",
		Short: "Show each service's readiness (grpc.health.v1)",
		Example: `  leadflow health
  leadflow health --wait 30s   # exit 0 once all five are SERVING`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClients(func(c *client.Clients) error {
				if wait > 0 {
					wctx, cancel := context.WithTimeout(cmd.Context(), wait)
					defer cancel()
					if err := c.WaitReady(wctx); err != nil {
						return err
					}
				}
				hs := c.Check(cmd.Context())
				t := render.NewTable(g.out, "SERVICE", "ADDRESS", "STATUS")
				bad := 0
				for _, h := range hs {
					t.Row(h.Service, h.Addr, h.Status)
					if !h.Ready {
						bad++
					}
				}
				if err := t.Flush(); err != nil {
					return err
				}
				if bad > 0 {
					return fmt.Errorf("%d of %d services not SERVING", bad, len(hs))
				}
				return nil
			})
		},
	})
}

func withWait(wait *time.Duration, cmd *cobra.Command) *cobra.Command {
	cmd.Flags().DurationVar(wait, "wait", 0, "wait up to this long for every service to report SERVING")
	return cmd
}
