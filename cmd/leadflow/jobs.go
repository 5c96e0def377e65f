package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/render"
	opsv1 "github.com/leadflow/leadflow/gen/go/leadflow/ops/v1"
)

func jobsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Operators: the job queues of every service (hand-offs, timers), their dead letters, redrive",
		Long: `jobs shows each service's durable job queues through its leadflow.ops.v1.JobsService:
the hand-offs between services (capture-to-scoring, scoring-routing, scoring-pipeline,
routing-scoring, pipeline-recycle), SLA timers (routing-sla) and renewal reminders
(pipeline-renewal).

A job that exhausted its attempts (or failed permanently) is a dead letter: its work was not
done. Fix the cause (the trace id leads to the failed attempts), then redrive it.`,
		Example: `  leadflow jobs
  leadflow jobs dead scoring scoring-routing
  leadflow jobs redrive scoring scoring-routing route:0190…:1
  leadflow jobs redrive scoring scoring-routing --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClients(func(c *client.Clients) error {
				all := &opsv1.ListQueuesResponse{}
				type row struct {
					service string
					q       *opsv1.Queue
				}
				var rows []row
				for _, svc := range client.JobServices {
					resp, err := call(cmd.Context(), g, svc+" ListQueues", c.Jobs[svc].ListQueues, &opsv1.ListQueuesRequest{})
					if err != nil {
						return err
					}
					for _, q := range resp.GetQueues() {
						rows = append(rows, row{svc, q})
						all.Queues = append(all.Queues, q)
					}
				}
				return g.print(all, func(w io.Writer) error {
					t := render.NewTable(w, "SERVICE", "QUEUE", "DEPTH", "DUE NOW", "DEAD")
					for _, r := range rows {
						t.Row(r.service, r.q.GetName(), r.q.GetDepth(), r.q.GetDue(), r.q.GetDead())
					}
					return t.Flush()
				})
			})
		},
	}
	cmd.AddCommand(jobsDeadCmd(g), jobsRedriveCmd(g))
	return cmd
}

func jobService(c *client.Clients, name string) (opsv1.JobsServiceClient, error) {
	j, ok := c.Jobs[name]
	if !ok {
		return nil, fmt.Errorf("service %q has no job queues; use one of %s", name, strings.Join(client.JobServices, ", "))
	}
	return j, nil
}

// deadJobs reads every dead job of a queue, page by page.
func deadJobs(cmd *cobra.Command, g *globals, j opsv1.JobsServiceClient, queue string, limit int) (*opsv1.ListDeadJobsResponse, error) {
	out := &opsv1.ListDeadJobsResponse{}
	token := ""
	for {
		resp, err := call(cmd.Context(), g, "ListDeadJobs", j.ListDeadJobs, &opsv1.ListDeadJobsRequest{Queue: queue, PageSize: 500, PageToken: token})
		if err != nil {
			return nil, err
		}
		out.Total = resp.GetTotal()
		out.Jobs = append(out.Jobs, resp.GetJobs()...)
		if token = resp.GetNextPageToken(); token == "" || (limit > 0 && len(out.Jobs) >= limit) {
			break
		}
	}
	if limit > 0 && len(out.Jobs) > limit {
		out.Jobs = out.Jobs[:limit]
	}
	return out, nil
}

func jobsDeadCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:     "dead SERVICE QUEUE",
		Short:   "List a queue's dead jobs, oldest first",
		Example: "  leadflow jobs dead capture capture-to-scoring\n  leadflow jobs dead scoring scoring-routing -o json",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				j, err := jobService(c, args[0])
				if err != nil {
					return err
				}
				resp, err := deadJobs(cmd, g, j, args[1], limit)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					fmt.Fprintf(w, "%s %s: %d dead\n", args[0], args[1], resp.GetTotal())
					if len(resp.GetJobs()) == 0 {
						return nil
					}
					t := render.NewTable(w, "JOB", "LEAD", "ATTEMPTS", "DEAD AT", "LAST ERROR", "TRACE ID")
					for _, d := range resp.GetJobs() {
						t.Row(d.GetId(), d.GetLeadId(), d.GetAttempts(), render.Time(d.GetDeadAt()), d.GetLastError(), d.GetTraceId())
					}
					return t.Flush()
				})
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 200, "show at most this many (0 = all)")
	return cmd
}

func jobsRedriveCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "redrive SERVICE QUEUE [JOB_ID...]",
		Short: "Put dead jobs back in their queue, due now (each is sent once, however often you redrive)",
		Example: `  leadflow jobs redrive scoring scoring-routing route:0190…:1
  leadflow jobs redrive capture capture-to-scoring --all`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids := args[2:]
			if all == (len(ids) > 0) {
				return fmt.Errorf("name the jobs to redrive, or --all (not both)")
			}
			return g.withClients(func(c *client.Clients) error {
				j, err := jobService(c, args[0])
				if err != nil {
					return err
				}
				if all {
					resp, err := deadJobs(cmd, g, j, args[1], 0)
					if err != nil {
						return err
					}
					for _, d := range resp.GetJobs() {
						ids = append(ids, d.GetId())
					}
				}
				slices.Sort(ids)
				ids = slices.Compact(ids)
				for _, id := range ids {
					if _, err := call(cmd.Context(), g, "RedriveDeadJob "+id, j.RedriveDeadJob, &opsv1.RedriveDeadJobRequest{Queue: args[1], JobId: id}); err != nil {
						return err
					}
				}
				fmt.Fprintf(g.out, "redriven: %d job(s) of %s %s\n", len(ids), args[0], args[1])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "redrive every dead job of the queue")
	return cmd
}
