// Command leadflow is LeadFlow for people: `leadflow dev` runs the five
// services in one process, `leadflow demo` plays realistic leads through a
// running suite, and the other subcommands are the everyday calls (submit
// and look up leads, apply a configuration file, work a rep's leads, move
// deals, read the funnel and a lead's journey). See the README (the all-in-one, the CLI and the demo).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/render"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C cancels ctx (a graceful stop); after it the default
	// handling is back, so a second Ctrl-C quits at once.
	go func() { <-ctx.Done(); stop() }()
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error: "+err.Error())
		os.Exit(1)
	}
}

// globals are the flags every client subcommand shares.
type globals struct {
	addrs   client.Addrs
	token   string
	output  string
	timeout time.Duration
	out     io.Writer
	errOut  io.Writer
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newRoot(out, errOut io.Writer) *cobra.Command {
	g := &globals{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:   "leadflow",
		Short: "LeadFlow: B2B leads from marketing to sales, one trace per lead",
		Long: `leadflow runs and drives a LeadFlow suite.

  leadflow dev            all five services in one process (embedded Redis unless --redis)
  leadflow demo           play realistic leads through a running suite
  leadflow apply -f F     apply a configuration file (teams, rules, SLAs, scoring model, pipelines)

Everyday calls: lead submit|get|find|engage|score|status|history, queue, assignments, assignment,
accept, reject, touch, giveback, qualify, deal list|get|move|won|lost, funnel, journey, health.
Operators: jobs (queues, dead letters, redrive).

Client commands talk to the services at --capture-addr … --reporting-addr (defaults
127.0.0.1:7001…7005, or LEADFLOW_CAPTURE_ADDR … LEADFLOW_REPORTING_ADDR) with the bearer
token --token (LEADFLOW_TOKEN, default leadflow-dev). Output is a table; -o json prints the
API's answer as protojson for scripts.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	def := client.DefaultAddrs()
	pf := root.PersistentFlags()
	pf.StringVar(&g.addrs.Capture, "capture-addr", envOr("LEADFLOW_CAPTURE_ADDR", def.Capture), "capture service address ($LEADFLOW_CAPTURE_ADDR)")
	pf.StringVar(&g.addrs.Scoring, "scoring-addr", envOr("LEADFLOW_SCORING_ADDR", def.Scoring), "scoring service address ($LEADFLOW_SCORING_ADDR)")
	pf.StringVar(&g.addrs.Routing, "routing-addr", envOr("LEADFLOW_ROUTING_ADDR", def.Routing), "routing service address ($LEADFLOW_ROUTING_ADDR)")
	pf.StringVar(&g.addrs.Pipeline, "pipeline-addr", envOr("LEADFLOW_PIPELINE_ADDR", def.Pipeline), "pipeline service address ($LEADFLOW_PIPELINE_ADDR)")
	pf.StringVar(&g.addrs.Reporting, "reporting-addr", envOr("LEADFLOW_REPORTING_ADDR", def.Reporting), "reporting service address ($LEADFLOW_REPORTING_ADDR)")
	pf.StringVar(&g.token, "token", envOr("LEADFLOW_TOKEN", "leadflow-dev"), "bearer token ($LEADFLOW_TOKEN)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&g.timeout, "timeout", 10*time.Second, "deadline of each call")

	root.AddCommand(
		devCmd(g), demoCmd(g), applyCmd(g), healthCmd(g), loadCmd(g), seedCmd(g),
		leadCmd(g),
		queueCmd(g), assignmentsCmd(g), assignmentCmd(g), acceptCmd(g), rejectCmd(g), touchCmd(g), giveBackCmd(g), qualifyCmd(g),
		dealCmd(g),
		funnelCmd(g), journeyCmd(g),
		jobsCmd(g),
	)
	return root
}

// dial connects to the five services.
func (g *globals) dial() (*client.Clients, error) {
	if g.output != "table" && g.output != "json" {
		return nil, fmt.Errorf("-o %q: use table or json", g.output)
	}
	return client.Dial(g.addrs, g.token)
}

// call runs one API call with the per-call deadline and names it in the
// error.
func call[Req, Resp any](ctx context.Context, g *globals, name string, fn func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	resp, err := fn(cctx, req)
	if err != nil {
		var zero Resp
		return zero, client.Wrap(name, err)
	}
	return resp, nil
}

// print writes m as JSON with -o json, or calls table otherwise.
func (g *globals) print(m proto.Message, table func(w io.Writer) error) error {
	if g.output == "json" {
		return render.JSON(g.out, m)
	}
	return table(g.out)
}

// withClients dials, runs fn and closes the connections.
func (g *globals) withClients(fn func(c *client.Clients) error) error {
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}
