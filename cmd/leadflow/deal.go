package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/render"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
)

func dealCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "deal", Short: "List, show, move and close deals (pipeline)"}
	cmd.AddCommand(dealListCmd(g), dealGetCmd(g), dealMoveCmd(g), dealWonCmd(g), dealLostCmd(g))
	return cmd
}

// parseMoney reads "12000", "12000.5" or "12,000.50" in major units.
func parseMoney(s, currency string) (*leadv1.Money, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 {
		return nil, fmt.Errorf("%q: at most two decimals", s)
	}
	frac = (frac + "00")[:2]
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not an amount", s)
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || w < 0 {
		return nil, fmt.Errorf("%q is not an amount", s)
	}
	return &leadv1.Money{AmountMinor: w*100 + f, CurrencyCode: strings.ToUpper(currency)}, nil
}

func dealRow(t *render.Table, d *pipelinev1.Deal, stages map[string]string) {
	st := stages[d.GetStageId()]
	if st == "" {
		st = d.GetStageId()
	}
	t.Row(d.GetId(), d.GetName(), st, render.Enum(d.GetStatus().String(), "DEAL_STATUS_"), d.GetOwnerRepId(),
		render.Money(d.GetAmount()), render.Time(d.GetExpectedCloseAt()), d.GetLeadId())
}

// stageNames maps the stage ids of every pipeline to their names.
func stageNames(ctx context.Context, g *globals, c *client.Clients) map[string]string {
	out := map[string]string{}
	resp, err := call(ctx, g, "pipeline ListPipelines", c.Pipeline.ListPipelines, &pipelinev1.ListPipelinesRequest{PageSize: 200})
	if err != nil {
		return out
	}
	for _, p := range resp.GetPipelines() {
		for _, s := range p.GetStages() {
			out[s.GetId()] = s.GetName()
		}
	}
	return out
}

func dealListCmd(g *globals) *cobra.Command {
	var rep, stage, pipeline, status, month string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List deals, newest first (filters combine)",
		Example: "  leadflow deal list --rep rep-anna --status open\n  leadflow deal list --month 2026-11 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pipelinev1.ListDealsRequest{OwnerRepId: rep, StageId: stage, PipelineId: pipeline, CloseMonth: month, PageSize: 500}
			if status != "" {
				v, err := enumValue(pipelinev1.DealStatus(0).Descriptor(), "DEAL_STATUS_", status)
				if err != nil {
					return fmt.Errorf("--status: %w", err)
				}
				req.Status = pipelinev1.DealStatus(v)
			}
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "pipeline ListDeals", c.Pipeline.ListDeals, req)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					names := stageNames(cmd.Context(), g, c)
					t := render.NewTable(w, "DEAL", "NAME", "STAGE", "STATUS", "OWNER", "AMOUNT", "EXPECTED CLOSE", "LEAD")
					for _, d := range resp.GetDeals() {
						dealRow(t, d, names)
					}
					return t.Flush()
				})
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&rep, "rep", "", "only deals of this owner")
	f.StringVar(&stage, "stage", "", "only deals in this stage id")
	f.StringVar(&pipeline, "pipeline", "", "only deals of this pipeline id")
	f.StringVar(&status, "status", "", "open, won or lost")
	f.StringVar(&month, "month", "", "only deals closing in this month (YYYY-MM)")
	return cmd
}

func printDeal(w io.Writer, d *pipelinev1.Deal, names map[string]string) error {
	name := func(id string) string {
		if n := names[id]; n != "" {
			return n
		}
		return id
	}
	if err := render.KV(w,
		"deal", d.GetId(),
		"name", d.GetName(),
		"status", render.Enum(d.GetStatus().String(), "DEAL_STATUS_"),
		"stage", name(d.GetStageId()),
		"owner", d.GetOwnerRepId(),
		"amount", render.Money(d.GetAmount()),
		"expected close", render.Time(d.GetExpectedCloseAt()),
		"closed", render.Time(d.GetClosedAt()),
		"lost reason", strings.TrimSpace(d.GetLostReason()+" "+d.GetLostNote()),
		"renewal", render.Time(d.GetRenewalAt()),
		"lead", d.GetLeadId(),
		"organisation", d.GetOrganisationId(),
		"version", fmt.Sprint(d.GetVersion())); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t := render.NewTable(w, "  STAGE HISTORY", "FROM", "TO", "BY")
	for _, h := range d.GetStageHistory() {
		t.Row("  "+render.Time(h.GetChangedAt()), name(h.GetFromStageId()), name(h.GetToStageId()), h.GetActor())
	}
	return t.Flush()
}

func dealGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "get DEAL_ID",
		Short:   "Show a deal with its stage history",
		Example: "  leadflow deal get 0197a1c3-…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "pipeline GetDeal", c.Pipeline.GetDeal, &pipelinev1.GetDealRequest{DealId: args[0]})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error { return printDeal(w, resp.GetDeal(), stageNames(cmd.Context(), g, c)) })
			})
		},
	}
}

func dealMoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "move DEAL_ID STAGE",
		Short: "Move an open deal to another open stage (by stage id or name)",
		Example: `  leadflow deal move 0197a1c3-… proposal
  leadflow deal move 0197a1c3-… "Demo/Presentation"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				ctx := cmd.Context()
				d, err := call(ctx, g, "pipeline GetDeal", c.Pipeline.GetDeal, &pipelinev1.GetDealRequest{DealId: args[0]})
				if err != nil {
					return err
				}
				p, err := call(ctx, g, "pipeline GetPipeline", c.Pipeline.GetPipeline, &pipelinev1.GetPipelineRequest{PipelineId: d.GetDeal().GetPipelineId()})
				if err != nil {
					return err
				}
				stageID := args[1]
				var names []string
				for _, s := range p.GetPipeline().GetStages() {
					names = append(names, s.GetName())
					if strings.EqualFold(s.GetName(), args[1]) || s.GetId() == args[1] {
						stageID = s.GetId()
					}
				}
				resp, err := call(ctx, g, "pipeline MoveDeal", c.Pipeline.MoveDeal, &pipelinev1.MoveDealRequest{DealId: args[0], StageId: stageID})
				if err != nil {
					return fmt.Errorf("%w\n  (stages of pipeline %q: %s)", err, p.GetPipeline().GetName(), strings.Join(names, ", "))
				}
				return g.print(resp, func(w io.Writer) error { return printDeal(w, resp.GetDeal(), stageNames(ctx, g, c)) })
			})
		},
	}
}

func dealWonCmd(g *globals) *cobra.Command {
	var amount, currency string
	var renewal int32
	cmd := &cobra.Command{
		Use:     "won DEAL_ID --amount AMOUNT --currency CUR",
		Short:   "Close a deal as won (amount in major units, e.g. 48000.00)",
		Example: "  leadflow deal won 0197a1c3-… --amount 48000 --currency EUR",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := parseMoney(amount, currency)
			if err != nil {
				return fmt.Errorf("--amount: %w", err)
			}
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "pipeline CloseWon", c.Pipeline.CloseWon, &pipelinev1.CloseWonRequest{
					DealId: args[0], Amount: m, ClosedAt: timestamppb.New(time.Now()), RenewalTermMonths: renewal,
				})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error { return printDeal(w, resp.GetDeal(), stageNames(cmd.Context(), g, c)) })
			})
		},
	}
	cmd.Flags().StringVar(&amount, "amount", "", "won amount in major units (required)")
	cmd.Flags().StringVar(&currency, "currency", "EUR", "ISO 4217 currency")
	cmd.Flags().Int32Var(&renewal, "renewal-months", 0, "renewal term in months (0 = the configured default)")
	_ = cmd.MarkFlagRequired("amount")
	return cmd
}

func dealLostCmd(g *globals) *cobra.Command {
	var reason, note string
	var recycle bool
	cmd := &cobra.Command{
		Use:   "lost DEAL_ID --reason REASON [--recycle]",
		Short: "Close a deal as lost (reason from the configured list); --recycle sends the lead to nurturing",
		Example: `  leadflow deal lost 0197a1c3-… --reason lost_to_competitor
  leadflow deal lost 0197a1c3-… --reason timing --recycle`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "pipeline CloseLost", c.Pipeline.CloseLost, &pipelinev1.CloseLostRequest{DealId: args[0], Reason: reason, Note: note, Recycle: recycle})
				if err != nil {
					if lr, lerr := call(cmd.Context(), g, "pipeline ListLostReasons", c.Pipeline.ListLostReasons, &pipelinev1.ListLostReasonsRequest{}); lerr == nil {
						return fmt.Errorf("%w\n  (lost reasons: %s)", err, strings.Join(lr.GetReasons(), ", "))
					}
					return err
				}
				return g.print(resp, func(w io.Writer) error { return printDeal(w, resp.GetDeal(), stageNames(cmd.Context(), g, c)) })
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "lost reason (see the error for the list)")
	cmd.Flags().StringVar(&note, "note", "", "free-text note (no personal data)")
	cmd.Flags().BoolVar(&recycle, "recycle", false, "hand the lead back to marketing as NURTURING")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// ------------------------------------------------------------------ reports

func funnelCmd(g *globals) *cobra.Command {
	var from, to, by string
	cmd := &cobra.Command{
		Use:   "funnel",
		Short: "Show the funnel of the leads captured in a period (default: the last 30 days)",
		Example: `  leadflow funnel
  leadflow funnel --from 2026-11-01 --to 2026-12-01 --by source
  leadflow funnel --by team -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := period(from, to)
			if err != nil {
				return err
			}
			gb := reportingv1.GroupBy_GROUP_BY_UNSPECIFIED
			if by != "" {
				v, err := enumValue(reportingv1.GroupBy(0).Descriptor(), "GROUP_BY_", by)
				if err != nil {
					return fmt.Errorf("--by: %w", err)
				}
				gb = reportingv1.GroupBy(v)
			}
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "reporting GetFunnel", c.Reporting.GetFunnel, &reportingv1.GetFunnelRequest{Period: p, GroupBy: gb})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					fmt.Fprintf(w, "leads captured %s – %s\n\n", render.Time(p.GetFrom()), render.Time(p.GetTo()))
					return render.Funnel(w, resp)
				})
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start of the capture period (YYYY-MM-DD or RFC 3339, UTC); default 30 days ago")
	cmd.Flags().StringVar(&to, "to", "", "end of the period, exclusive; default tomorrow")
	cmd.Flags().StringVar(&by, "by", "", "group by: day, week, month, source, campaign, team, rep, channel")
	return cmd
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: use YYYY-MM-DD or RFC 3339", s)
}

func period(from, to string) (*reportingv1.Period, error) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	f, t := today.AddDate(0, 0, -30), today.AddDate(0, 0, 1)
	var err error
	if from != "" {
		if f, err = parseTime(from); err != nil {
			return nil, fmt.Errorf("--from: %w", err)
		}
	}
	if to != "" {
		if t, err = parseTime(to); err != nil {
			return nil, fmt.Errorf("--to: %w", err)
		}
	}
	return &reportingv1.Period{From: timestamppb.New(f), To: timestamppb.New(t)}, nil
}

func journeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "journey LEAD_ID",
		Short: "Show every event of a lead's journey and its trace id (reporting)",
		Long: `journey lists the lead's lifecycle events in order (which service produced each, and
when) and prints the trace id of the lead's journey: look it up in the trace viewer to see
the same path as spans across capture, scoring, routing, pipeline and reporting.`,
		Example: "  leadflow journey 0197a1b2-…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "reporting GetLeadJourney", c.Reporting.GetLeadJourney, &reportingv1.GetLeadJourneyRequest{LeadId: args[0]})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error { return render.Journey(w, resp) })
			})
		},
	}
}
