package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/render"
	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
)

func leadCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lead",
		Short: "Submit, look up and qualify leads (capture and scoring)",
	}
	cmd.AddCommand(leadSubmitCmd(g), leadGetCmd(g), leadFindCmd(g), leadEngageCmd(g), leadScoreCmd(g), leadStatusCmd(g), leadHistoryCmd(g))
	return cmd
}

// enumValue parses an enum flag: "web_form", "WEB_FORM" or "CHANNEL_WEB_FORM".
func enumValue(ed protoreflect.EnumDescriptor, prefix, s string) (protoreflect.EnumNumber, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	name = strings.ReplaceAll(name, "-", "_")
	if !strings.HasPrefix(name, prefix) {
		name = prefix + name
	}
	v := ed.Values().ByName(protoreflect.Name(name))
	if v == nil || v.Number() == 0 {
		var names []string
		for i := 1; i < ed.Values().Len(); i++ {
			names = append(names, strings.ToLower(strings.TrimPrefix(string(ed.Values().Get(i).Name()), prefix)))
		}
		return 0, fmt.Errorf("%q is not one of %s", s, strings.Join(names, ", "))
	}
	return v.Number(), nil
}

func leadSubmitCmd(g *globals) *cobra.Command {
	var (
		file          string
		sub           = &capturev1.LeadSubmission{Contact: &leadv1.Contact{}, Company: &capturev1.Company{}, Touch: &leadv1.Touch{}}
		channel, idem string
		consent       bool
	)
	cmd := &cobra.Command{
		Use:   "submit",
		Short: "Submit a lead to capture (flags, or -f with a LeadSubmission in YAML/JSON)",
		Example: `  leadflow lead submit --email ann@acme.example --first-name Ann --last-name Lee \
      --title "VP Engineering" --company "Acme" --website https://acme.example \
      --industry software --employees 250 --country DE --channel web_form --source google --campaign q4
  leadflow lead submit -f lead.yaml --idempotency-key form-post-1234`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
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
				js, err := yaml.YAMLToJSON(data)
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				sub = &capturev1.LeadSubmission{}
				if err := protojson.Unmarshal(js, sub); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
			} else {
				ch, err := enumValue(leadv1.Channel(0).Descriptor(), "CHANNEL_", channel)
				if err != nil {
					return fmt.Errorf("--channel: %w", err)
				}
				sub.Touch.Channel = leadv1.Channel(ch)
				if consent {
					sub.Consent = &leadv1.Consent{MarketingOptIn: true, GivenAt: timestamppb.Now()}
				}
			}
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "capture SubmitLead", c.Capture.SubmitLead, &capturev1.SubmitLeadRequest{Submission: sub, IdempotencyKey: idem})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					return render.KV(w,
						"lead", resp.GetLeadId(),
						"outcome", render.Enum(resp.GetOutcome().String(), "SUBMIT_OUTCOME_")+matched(resp),
						"organisation", resp.GetOrganisationId()+newOrg(resp.GetNewOrganisation()),
						"trace id", resp.GetTraceId(),
						"replayed", fmt.Sprint(resp.GetReplayed()))
				})
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "a leadflow.capture.v1.LeadSubmission as YAML or JSON (- for stdin); replaces the other flags")
	f.StringVar(&idem, "idempotency-key", "", "idempotency key (a retry with the same key never creates a second lead)")
	f.StringVar(&sub.Contact.Email, "email", "", "contact e-mail")
	f.StringVar(&sub.Contact.Phone, "phone", "", "contact phone (E.164 or national)")
	f.StringVar(&sub.Contact.FirstName, "first-name", "", "contact first name")
	f.StringVar(&sub.Contact.LastName, "last-name", "", "contact last name")
	f.StringVar(&sub.Contact.JobTitle, "title", "", "job title (seniority is derived from it)")
	f.StringVar(&sub.Company.Name, "company", "", "company name")
	f.StringVar(&sub.Company.Website, "website", "", "company website")
	f.StringVar(&sub.Company.Domain, "domain", "", "company domain")
	f.StringVar(&sub.Company.Industry, "industry", "", "industry, e.g. software")
	f.Int32Var(&sub.Company.EmployeeCount, "employees", 0, "number of employees")
	f.StringVar(&sub.Company.Country, "country", "", "country (DE, DEU or Germany)")
	f.StringVar(&sub.Company.Region, "region", "", "region or state, e.g. US-CA")
	f.StringSliceVar(&sub.ProductInterests, "product", nil, "product interest (repeatable)")
	f.StringVar(&channel, "channel", "web_form", "channel: web_form, chatbot, event, paid_ad, email, referral, partner, api, import")
	f.StringVar(&sub.Touch.Source, "source", "", "source, e.g. google")
	f.StringVar(&sub.Touch.Medium, "medium", "", "medium, e.g. cpc")
	f.StringVar(&sub.Touch.Campaign, "campaign", "", "campaign")
	f.StringVar(&sub.VisitorId, "visitor-id", "", "anonymous visitor id whose earlier signals become the lead's")
	f.BoolVar(&consent, "consent", false, "the contact opted in to marketing (now)")
	return cmd
}

func matched(r *capturev1.SubmitLeadResponse) string {
	if r.GetMatchedOn() == "" {
		return ""
	}
	s := " (matched on " + r.GetMatchedOn()
	if len(r.GetFilledFields()) > 0 {
		s += "; filled " + strings.Join(r.GetFilledFields(), ", ")
	}
	return s + ")"
}

func newOrg(b bool) string {
	if b {
		return " (new)"
	}
	return ""
}

func leadGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "get LEAD_ID",
		Short:   "Show a lead as capture keeps it (contact, organisation, attribution, trace id)",
		Example: "  leadflow lead get 0197a1b2-…\n  leadflow lead get 0197a1b2-… -o json | jq .lead.traceId",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "capture GetLead", c.Capture.GetLead, &capturev1.GetLeadRequest{LeadId: args[0]})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error { return printLead(w, resp.GetLead()) })
			})
		},
	}
}

func printLead(w io.Writer, l *leadv1.Lead) error {
	ct, o, a := l.GetContact(), l.GetOrganisation(), l.GetAttribution()
	name := strings.TrimSpace(ct.GetFirstName() + " " + ct.GetLastName())
	if l.GetErased() {
		name = "(erased " + render.Time(l.GetErasedAt()) + ")"
	}
	return render.KV(w,
		"lead", l.GetId(),
		"contact", name,
		"e-mail", ct.GetEmail(),
		"phone", ct.GetPhone(),
		"title", strings.TrimSpace(ct.GetJobTitle()+" "+paren(render.Enum(ct.GetSeniority().String(), "SENIORITY_"))),
		"organisation", strings.TrimSpace(o.GetName()+" "+paren(o.GetDomain())),
		"org id", o.GetId(),
		"firmographics", firmo(o),
		"products", strings.Join(l.GetProductInterests(), ", "),
		"first touch", touch(a.GetFirstTouch()),
		"last touch", touch(a.GetLastTouch()),
		"submissions", fmt.Sprint(l.GetSubmissionCount()),
		"consent", fmt.Sprint(l.GetConsent().GetMarketingOptIn()),
		"created", render.Time(l.GetCreatedAt()),
		"updated", render.Time(l.GetUpdatedAt()),
		"trace id", l.GetTraceId())
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func firmo(o *leadv1.Organisation) string {
	var parts []string
	if o.GetIndustry() != "" {
		parts = append(parts, o.GetIndustry())
	}
	if o.GetEmployeeCount() > 0 {
		parts = append(parts, fmt.Sprintf("%d employees", o.GetEmployeeCount()))
	}
	if o.GetAnnualRevenue() != nil {
		parts = append(parts, render.Money(o.GetAnnualRevenue())+" revenue")
	}
	loc := strings.Trim(o.GetCountryCode()+" "+o.GetRegion(), " ")
	if loc != "" {
		parts = append(parts, loc)
	}
	return strings.Join(parts, ", ")
}

func touch(t *leadv1.Touch) string {
	if t == nil {
		return ""
	}
	parts := []string{render.Enum(t.GetChannel().String(), "CHANNEL_")}
	for _, s := range []string{t.GetSource(), t.GetMedium(), t.GetCampaign()} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " / ") + " " + paren(render.Time(t.GetOccurredAt()))
}

func leadFindCmd(g *globals) *cobra.Command {
	var email, phone, domain string
	cmd := &cobra.Command{
		Use:     "find (--email E | --phone P | --domain D)",
		Short:   "Find leads by e-mail, phone or organisation domain",
		Example: "  leadflow lead find --email ann@acme.example\n  leadflow lead find --domain acme.example",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &capturev1.FindLeadsRequest{PageSize: 100}
			switch {
			case email != "":
				req.Query = &capturev1.FindLeadsRequest_Email{Email: email}
			case phone != "":
				req.Query = &capturev1.FindLeadsRequest_Phone{Phone: phone}
			case domain != "":
				req.Query = &capturev1.FindLeadsRequest_Domain{Domain: domain}
			default:
				return fmt.Errorf("give one of --email, --phone, --domain")
			}
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "capture FindLeads", c.Capture.FindLeads, req)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					t := render.NewTable(w, "LEAD", "NAME", "ORGANISATION", "FIRST TOUCH", "CREATED", "TRACE ID")
					for _, l := range resp.GetLeads() {
						t.Row(l.GetId(), strings.TrimSpace(l.GetContact().GetFirstName()+" "+l.GetContact().GetLastName()),
							l.GetOrganisation().GetDomain(), touch(l.GetAttribution().GetFirstTouch()), render.Time(l.GetCreatedAt()), l.GetTraceId())
					}
					return t.Flush()
				})
			})
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "e-mail (normalised like a submission)")
	cmd.Flags().StringVar(&phone, "phone", "", "phone")
	cmd.Flags().StringVar(&domain, "domain", "", "organisation domain or website")
	return cmd
}

func leadEngageCmd(g *globals) *cobra.Command {
	var typ, id, subject, campaign, visitor string
	cmd := &cobra.Command{
		Use:   "engage [LEAD_ID] --type TYPE",
		Short: "Record an engagement signal of a lead (or of an anonymous --visitor-id)",
		Example: `  leadflow lead engage 0197a1b2-… --type demo_request
  leadflow lead engage --visitor-id cookie-42 --type pricing_page_view`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := enumValue(leadv1.SignalType(0).Descriptor(), "SIGNAL_TYPE_", typ)
			if err != nil {
				return fmt.Errorf("--type: %w", err)
			}
			sig := &leadv1.EngagementSignal{Id: id, Type: leadv1.SignalType(t), OccurredAt: timestamppb.Now(), Subject: subject, Campaign: campaign, VisitorId: visitor}
			if len(args) == 1 {
				sig.LeadId = args[0]
			}
			if sig.Id == "" {
				sig.Id = fmt.Sprintf("cli-%d", time.Now().UnixNano())
			}
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "capture RecordEngagement", c.Capture.RecordEngagement, &capturev1.RecordEngagementRequest{Signal: sig})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					return render.KV(w, "signal", sig.GetId(), "lead", resp.GetLeadId(),
						"pending visitor", fmt.Sprint(resp.GetPendingVisitor()), "duplicate", fmt.Sprint(resp.GetDuplicate()))
				})
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "page_view, pricing_page_view, content_download, webinar_registered, webinar_attended, demo_request, email_open, email_click, email_reply, chat")
	f.StringVar(&id, "id", "", "signal id (idempotency); default a fresh one")
	f.StringVar(&subject, "subject", "", "page URL, e-mail or content id")
	f.StringVar(&campaign, "campaign", "", "campaign")
	f.StringVar(&visitor, "visitor-id", "", "anonymous visitor id (instead of a lead id)")
	return cmd
}

func leadScoreCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "score LEAD_ID",
		Short:   "Show a lead's status, owner, BANT and score with its breakdown (scoring)",
		Example: "  leadflow lead score 0197a1b2-…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "scoring GetLead", c.Scoring.GetLead, &scoringv1.GetLeadRequest{LeadId: args[0]})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					l := resp.GetLead()
					s := l.GetScore()
					if err := render.KV(w,
						"lead", l.GetLeadId(),
						"status", render.Enum(l.GetStatus().String(), "PROSPECT_STATUS_"),
						"owner", l.GetOwnerRepId(),
						"score", fmt.Sprintf("%d = fit %d + engagement %d (grade %s, %s, model v%d)", s.GetTotal(), s.GetFit(), s.GetEngagement(),
							render.Enum(s.GetGrade().String(), "GRADE_"), render.Enum(s.GetHeat().String(), "HEAT_"), s.GetModelVersion()),
						"mql", fmt.Sprintf("%t (episodes %d, with routing: %t)", s.GetMql(), l.GetMqlEpisodes(), l.GetHandedToRouting()),
						"bant met", fmt.Sprintf("%d of 4", l.GetBant().GetMetCount()),
						"signals", fmt.Sprint(l.GetSignalCount())); err != nil {
						return err
					}
					fmt.Fprintln(w)
					t := render.NewTable(w, "RULE", "CATEGORY", "POINTS", "WHY")
					for _, f := range s.GetFactors() {
						t.Row(f.GetRuleId(), f.GetCategory(), f.GetPoints(), f.GetReason())
					}
					return t.Flush()
				})
			})
		},
	}
}

func leadStatusCmd(g *globals) *cobra.Command {
	var reason, rep, requestID string
	cmd := &cobra.Command{
		Use:   "status LEAD_ID STATUS",
		Short: "Move a lead's prospect status (potential, working, nurturing, qualified, bad_fit)",
		Long: `status calls ScoringService.SetStatus. QUALIFIED hands the lead to pipeline, which opens a
deal in the default pipeline; NURTURING and BAD_FIT release it from routing. Illegal
transitions are refused with FailedPrecondition.`,
		Example: `  leadflow lead status 0197a1b2-… qualified --reason "BANT 4/4"
  leadflow lead status 0197a1b2-… nurturing --reason "budget next year"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := enumValue(leadv1.ProspectStatus(0).Descriptor(), "PROSPECT_STATUS_", args[1])
			if err != nil {
				return fmt.Errorf("STATUS: %w", err)
			}
			return setStatus(cmd, g, args[0], leadv1.ProspectStatus(st), reason, rep, requestID)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (no personal data)")
	cmd.Flags().StringVar(&rep, "rep", "", "owner rep (required for working unless the lead has one)")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key; default a fresh one")
	return cmd
}

func setStatus(cmd *cobra.Command, g *globals, lead string, st leadv1.ProspectStatus, reason, rep, requestID string) error {
	if requestID == "" {
		requestID = fmt.Sprintf("cli-%d", time.Now().UnixNano())
	}
	return g.withClients(func(c *client.Clients) error {
		resp, err := call(cmd.Context(), g, "scoring SetStatus", c.Scoring.SetStatus, &scoringv1.SetStatusRequest{
			LeadId: lead, Status: st, Reason: reason, OwnerRepId: rep, RequestId: requestID,
		})
		if err != nil {
			return err
		}
		return g.print(resp, func(w io.Writer) error {
			return render.KV(w, "lead", resp.GetLead().GetLeadId(),
				"status", render.Enum(resp.GetLead().GetStatus().String(), "PROSPECT_STATUS_"),
				"owner", resp.GetLead().GetOwnerRepId(), "changed", fmt.Sprint(resp.GetChanged()))
		})
	})
}

func leadHistoryCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "history LEAD_ID",
		Short:   "Show a lead's status transitions with who, when and why (scoring)",
		Example: "  leadflow lead history 0197a1b2-…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClients(func(c *client.Clients) error {
				resp, err := call(cmd.Context(), g, "scoring GetStatusHistory", c.Scoring.GetStatusHistory, &scoringv1.GetStatusHistoryRequest{LeadId: args[0], PageSize: 200})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) error {
					t := render.NewTable(w, "AT", "FROM", "TO", "OWNER", "ACTOR", "REASON")
					for _, s := range resp.GetTransitions() {
						t.Row(render.Time(s.GetAt()), render.Enum(s.GetFrom().String(), "PROSPECT_STATUS_"), render.Enum(s.GetTo().String(), "PROSPECT_STATUS_"),
							s.GetOwnerRepId(), s.GetActor(), s.GetReason())
					}
					return t.Flush()
				})
			})
		},
	}
}
