package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/render"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
)

func state(s routingv1.AssignmentState) string { return render.Enum(s.String(), "ASSIGNMENT_STATE_") }

func queueCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "queue TEAM_ID",
		Short:   "Show a team's assignment queue in hand-out order, then its parked leads",
		Example: "  leadflow queue emea\n  leadflow queue enterprise -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "routing GetQueue", c.Routing.GetQueue, &routingv1.GetQueueRequest{TeamId: args[0], PageSize: 500})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					fmt.Fprintf(w, "team %s: %d queued, %d parked\n", args[0], resp.GetQueued(), resp.GetParked())
					if len(resp.GetEntries()) == 0 {
						return nil
					}
					fmt.Fprintln(w)
					t := render.NewTable(w, "POS", "LEAD", "HEAT", "SCORE", "QUEUED AT", "EXCLUDED REPS", "PARKED")
					for _, e := range resp.GetEntries() {
						t.Row(e.GetPosition(), e.GetLeadId(), render.Enum(e.GetHeat().String(), "HEAT_"), e.GetScoreTotal(),
							render.Time(e.GetQueuedAt()), strings.Join(e.GetExcludedReps(), ","), e.GetParked())
					}
					return t.Flush()
				})
			})
		},
	}
}

func assignmentsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "assignments REP_ID",
		Short:   "Show a rep's open assignments (assigned or accepted)",
		Example: "  leadflow assignments rep-anna",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "routing ListAssignments", c.Routing.ListAssignments, &routingv1.ListAssignmentsRequest{RepId: args[0], PageSize: 500})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					t := render.NewTable(w, "LEAD", "TEAM", "STATE", "SCORE", "HEAT", "ASSIGNED", "FIRST TOUCH DUE", "TOUCHES", "TRACE ID")
					for _, a := range resp.GetAssignments() {
						t.Row(a.GetLeadId(), a.GetTeamId(), state(a.GetState()), a.GetScoreTotal(), render.Enum(a.GetHeat().String(), "HEAT_"),
							render.Time(a.GetAssignedAt()), firstTouch(a), fmt.Sprintf("%d/%d", a.GetTouches(), a.GetTouchesRequired()), a.GetTraceId())
					}
					return t.Flush()
				})
			})
		},
	}
}

func firstTouch(a *routingv1.Assignment) string {
	if a.GetFirstTouchAt() != nil {
		return "done " + render.Time(a.GetFirstTouchAt())
	}
	if a.GetFirstTouchDue() == nil {
		return ""
	}
	return "due " + render.Time(a.GetFirstTouchDue())
}

func printAssignment(w io.Writer, a *routingv1.Assignment) error {
	return render.KV(w,
		"lead", a.GetLeadId(),
		"state", state(a.GetState()),
		"team", a.GetTeamId(),
		"rep", a.GetRepId(),
		"decision", a.GetDecisionId(),
		"assigned", render.Time(a.GetAssignedAt()),
		"accepted", render.Time(a.GetAcceptedAt()),
		"first touch", firstTouch(a),
		"touches", fmt.Sprintf("%d of %d (due %s)", a.GetTouches(), a.GetTouchesRequired(), render.Time(a.GetTouchesDue())),
		"rejected by", strings.Join(a.GetRejectedBy(), ", "),
		"score", fmt.Sprintf("%d (%s)", a.GetScoreTotal(), render.Enum(a.GetHeat().String(), "HEAT_")),
		"trace id", a.GetTraceId())
}

func assignmentCmd(g *globals) *cobra.Command {
	var decisions bool
	cmd := &cobra.Command{
		Use:     "assignment LEAD_ID",
		Short:   "Show where a lead is in routing (and with --decisions, why)",
		Example: "  leadflow assignment 0197a1b2-…\n  leadflow assignment 0197a1b2-… --decisions",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				if decisions {
					resp, err := call(cmd.Context(), g, "routing ListDecisions", c.Routing.ListDecisions, &routingv1.ListDecisionsRequest{LeadId: args[0], PageSize: 100})
					if err != nil {
						return err
					}
					return g.print(resp, func(w io.Writer) error {
						for i, d := range resp.GetDecisions() {
							if i > 0 {
								fmt.Fprintln(w)
							}
							if err := printDecision(w, d); err != nil {
								return err
							}
						}
						return nil
					})
				}
				resp, err := call(cmd.Context(), g, "routing GetAssignment", c.Routing.GetAssignment, &routingv1.GetAssignmentRequest{LeadId: args[0]})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error { return printAssignment(w, resp.GetAssignment()) })
			})
		},
	}
	cmd.Flags().BoolVar(&decisions, "decisions", false, "list the routing decisions with their explanations and candidates")
	return cmd
}

func printDecision(w io.Writer, d *routingv1.RoutingDecision) error {
	if err := render.KV(w,
		"decision", d.GetId(),
		"at", render.Time(d.GetDecidedAt()),
		"kind", render.Enum(d.GetKind().String(), "DECISION_KIND_"),
		"outcome", render.Enum(d.GetOutcome().String(), "DECISION_OUTCOME_"),
		"team / rep", d.GetTeamId()+" / "+d.GetRepId(),
		"rule", d.GetRuleId(),
		"why", strings.Join(d.GetExplanation(), "; "),
		"sales-ready because", strings.Join(d.GetReasons(), "; "),
		"SLA", strings.TrimSpace(d.GetSlaPolicyId()+" first touch due "+render.Time(d.GetFirstTouchDue())),
		"config version", fmt.Sprint(d.GetConfigVersion())); err != nil {
		return err
	}
	t := render.NewTable(w, "  CANDIDATE", "ELIGIBLE", "OPEN/CAPACITY", "WEIGHT", "WHY NOT")
	for _, c := range d.GetCandidates() {
		var why []string
		for _, r := range c.GetReasons() {
			why = append(why, render.Enum(r.String(), "INELIGIBLE_REASON_"))
		}
		t.Row("  "+c.GetRepId(), c.GetEligible(), fmt.Sprintf("%d/%d", c.GetOpenLeads(), c.GetCapacity()), c.GetWeight(), strings.Join(why, ", "))
	}
	return t.Flush()
}

func repFlag(cmd *cobra.Command, rep *string) {
	cmd.Flags().StringVar(rep, "rep", "", "the rep (required)")
	_ = cmd.MarkFlagRequired("rep")
}

func acceptCmd(g *globals) *cobra.Command {
	var rep string
	cmd := &cobra.Command{
		Use:     "accept LEAD_ID --rep REP_ID",
		Short:   "The rep accepts an assigned lead (scoring then sets it WORKING)",
		Example: "  leadflow accept 0197a1b2-… --rep rep-anna",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "routing AcceptLead", c.Routing.AcceptLead, &routingv1.AcceptLeadRequest{LeadId: args[0], RepId: rep})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error { return printAssignment(w, resp.GetAssignment()) })
			})
		},
	}
	repFlag(cmd, &rep)
	return cmd
}

func rejectCmd(g *globals) *cobra.Command {
	var rep, reason string
	cmd := &cobra.Command{
		Use:     "reject LEAD_ID --rep REP_ID --reason TEXT",
		Short:   "The rep rejects an assigned lead; it is rerouted inside the team",
		Example: `  leadflow reject 0197a1b2-… --rep rep-anna --reason "partner account"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "routing RejectLead", c.Routing.RejectLead, &routingv1.RejectLeadRequest{LeadId: args[0], RepId: rep, Reason: reason})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error { return printDecision(w, resp.GetDecision()) })
			})
		},
	}
	repFlag(cmd, &rep)
	cmd.Flags().StringVar(&reason, "reason", "", "why (no personal data)")
	return cmd
}

func touchCmd(g *globals) *cobra.Command {
	var rep, typ, id string
	cmd := &cobra.Command{
		Use:     "touch LEAD_ID --rep REP_ID [--type call|email|meeting]",
		Short:   "Record a sales touch (the first one stops the first-touch SLA clock)",
		Example: "  leadflow touch 0197a1b2-… --rep rep-anna --type call",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := enumValue(routingv1.TouchType(0).Descriptor(), "TOUCH_TYPE_", typ)
			if err != nil {
				return fmt.Errorf("--type: %w", err)
			}
			if id == "" {
				id = fmt.Sprintf("cli-%d", time.Now().UnixNano())
			}
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "routing RecordTouch", c.Routing.RecordTouch, &routingv1.RecordTouchRequest{LeadId: args[0], RepId: rep, Type: routingv1.TouchType(t), TouchId: id})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					a := resp.GetAssignment()
					return render.KV(w, "lead", a.GetLeadId(), "first touch", fmt.Sprint(resp.GetFirstTouch()),
						"within SLA", fmt.Sprint(resp.GetWithinSla()), "duplicate", fmt.Sprint(resp.GetDuplicate()),
						"touches", fmt.Sprintf("%d of %d", a.GetTouches(), a.GetTouchesRequired()))
				})
			})
		},
	}
	repFlag(cmd, &rep)
	cmd.Flags().StringVar(&typ, "type", "call", "call, email or meeting")
	cmd.Flags().StringVar(&id, "touch-id", "", "idempotency key; default a fresh one")
	return cmd
}

func giveBackCmd(g *globals) *cobra.Command {
	var rep, outcome, reason string
	cmd := &cobra.Command{
		Use:   "giveback LEAD_ID --rep REP_ID --outcome recycle|junk|unreachable",
		Short: "The rep gives a lead back: recycle (nurturing), junk (bad fit) or unreachable",
		Example: `  leadflow giveback 0197a1b2-… --rep rep-anna --outcome recycle --reason "budget next year"
  leadflow giveback 0197a1b2-… --rep rep-anna --outcome junk --reason "student project"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := enumValue(routingv1.GiveBackOutcome(0).Descriptor(), "GIVE_BACK_OUTCOME_", outcome)
			if err != nil {
				return fmt.Errorf("--outcome: %w", err)
			}
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "routing GiveBack", c.Routing.GiveBack, &routingv1.GiveBackRequest{LeadId: args[0], RepId: rep, Outcome: routingv1.GiveBackOutcome(o), Reason: reason})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error { return printAssignment(w, resp.GetAssignment()) })
			})
		},
	}
	repFlag(cmd, &rep)
	cmd.Flags().StringVar(&outcome, "outcome", "", "recycle, junk or unreachable")
	cmd.Flags().StringVar(&reason, "reason", "", "why, in the rep's words (no personal data)")
	_ = cmd.MarkFlagRequired("outcome")
	return cmd
}

func qualifyCmd(g *globals) *cobra.Command {
	var reason, rep, requestID string
	cmd := &cobra.Command{
		Use:   "qualify LEAD_ID",
		Short: "Qualify a lead (scoring SetStatus QUALIFIED): pipeline opens a deal for it",
		Example: `  leadflow qualify 0197a1b2-… --reason "BANT 4/4"
  leadflow deal list --rep rep-anna   # the new deal appears here`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setStatus(cmd, g, args[0], leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, reason, rep, requestID)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "qualified by the rep", "why (no personal data)")
	cmd.Flags().StringVar(&rep, "rep", "", "owner rep (default: the rep who works the lead)")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key; default a fresh one")
	return cmd
}
