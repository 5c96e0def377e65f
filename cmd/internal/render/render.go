// Package render prints LeadFlow API answers for people (aligned tables,
// text/tabwriter) and for scripts (protojson).
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
)

// JSON writes m as protojson (enum names, lowerCamelCase field names, zero
// values left out), indented the same way every time, and a newline.
func JSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	// protojson's own multiline output varies its spacing on purpose; a
	// stable layout is friendlier to diffs and line-based tools.
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(w)
	return err
}

// Table is a tabwriter with a header row.
type Table struct{ tw *tabwriter.Writer }

// NewTable starts a table on w with the given column headers.
func NewTable(w io.Writer, headers ...string) *Table {
	t := &Table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(headers) > 0 {
		t.Row(toAny(headers)...)
	}
	return t
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Row adds a row; each value is printed with %v, empty strings as "-".
func (t *Table) Row(cols ...any) {
	parts := make([]string, len(cols))
	for i, c := range cols {
		s := fmt.Sprint(c)
		if s == "" {
			s = "-"
		}
		parts[i] = s
	}
	fmt.Fprintln(t.tw, strings.Join(parts, "\t"))
}

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }

// KV prints aligned "key: value" lines.
func KV(w io.Writer, pairs ...string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		v := pairs[i+1]
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", pairs[i], v)
	}
	return tw.Flush()
}

// Money renders an amount as "EUR 12,345.67"; nil as "".
func Money(m *leadv1.Money) string {
	if m == nil {
		return ""
	}
	return m.GetCurrencyCode() + " " + Minor(m.GetAmountMinor())
}

// Minor renders minor units with a thousands separator: 1234567 → "12,345.67".
func Minor(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	units := fmt.Sprint(minor / 100)
	var b strings.Builder
	for i, c := range units {
		if i > 0 && (len(units)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return fmt.Sprintf("%s%s.%02d", sign, b.String(), minor%100)
}

// Time renders a timestamp in UTC to the second; nil as "".
func Time(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04:05Z")
}

// Duration renders a duration rounded for people; nil as "".
func Duration(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return Dur(d.AsDuration())
}

// Dur rounds a duration for display.
func Dur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// Enum renders an enum value name without its prefix: "PROSPECT_STATUS_WORKING"
// with prefix "PROSPECT_STATUS_" → "working".
func Enum(name, prefix string) string {
	s := strings.TrimPrefix(name, prefix)
	if s == "UNSPECIFIED" {
		return ""
	}
	return strings.ToLower(s)
}

// Ratio renders a conversion as a percentage with two decimals.
func Ratio(r *reportingv1.Ratio) string {
	if r == nil || r.GetDenominator() == 0 {
		return ""
	}
	return fmt.Sprintf("%d.%02d%%", r.GetBasisPoints()/100, r.GetBasisPoints()%100)
}

// Revenue renders a list of per-currency amounts.
func Revenue(ms []*leadv1.Money) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		parts = append(parts, Money(m))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// Funnel prints a funnel report: the total as a step table, then one row per
// group when the report is grouped.
func Funnel(w io.Writer, resp *reportingv1.GetFunnelResponse) error {
	t := resp.GetTotal()
	conv := map[reportingv1.FunnelStep]*reportingv1.Ratio{}
	for _, c := range t.GetConversions() {
		conv[c.GetTo()] = c.GetRate()
	}
	tab := NewTable(w, "STEP", "LEADS", "CONVERSION FROM PREVIOUS STEP")
	tab.Row("captured", t.GetCaptured(), "")
	tab.Row("mql", t.GetMql(), Ratio(conv[reportingv1.FunnelStep_FUNNEL_STEP_MQL]))
	tab.Row("routed", t.GetRouted(), Ratio(conv[reportingv1.FunnelStep_FUNNEL_STEP_ROUTED]))
	tab.Row("accepted", t.GetAccepted(), Ratio(conv[reportingv1.FunnelStep_FUNNEL_STEP_ACCEPTED]))
	tab.Row("qualified", t.GetQualified(), Ratio(conv[reportingv1.FunnelStep_FUNNEL_STEP_QUALIFIED]))
	tab.Row("opportunity", t.GetOpportunities(), Ratio(conv[reportingv1.FunnelStep_FUNNEL_STEP_OPPORTUNITY]))
	tab.Row("won", t.GetWon(), Ratio(conv[reportingv1.FunnelStep_FUNNEL_STEP_WON]))
	tab.Row("lost", t.GetLost(), "")
	if err := tab.Flush(); err != nil {
		return err
	}
	if rev := Revenue(t.GetRevenue()); rev != "" {
		fmt.Fprintf(w, "revenue won: %s\n", rev)
	}
	rows := resp.GetRows()
	if len(rows) <= 1 && (len(rows) == 0 || rows[0].GetKey() == "") {
		return nil
	}
	fmt.Fprintln(w)
	g := NewTable(w, "GROUP", "CAPTURED", "MQL", "ROUTED", "ACCEPTED", "QUALIFIED", "OPPORTUNITY", "WON", "LOST", "REVENUE")
	for _, r := range rows {
		key := r.GetKey()
		if key == "" {
			key = "(none)"
		}
		g.Row(key, r.GetCaptured(), r.GetMql(), r.GetRouted(), r.GetAccepted(), r.GetQualified(), r.GetOpportunities(), r.GetWon(), r.GetLost(), Revenue(r.GetRevenue()))
	}
	return g.Flush()
}

// Journey prints a lead's journey: one line per event with its producer and
// the time since capture, and the trace id to look up.
func Journey(w io.Writer, resp *reportingv1.GetLeadJourneyResponse) error {
	if err := KV(w, "lead", resp.GetLeadId(), "trace id", resp.GetTraceId()); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t := NewTable(w, "#", "AT", "+SINCE CAPTURE", "SERVICE", "EVENT", "DETAIL")
	for i, s := range resp.GetSteps() {
		t.Row(i+1, Time(s.GetEvent().GetOccurredAt()), Duration(s.GetSinceStart()), s.GetProducer(), s.GetKind(), EventDetail(s))
	}
	return t.Flush()
}

// EventDetail is a one-line summary of an event's payload (never personal
// data: events carry none).
func EventDetail(s *reportingv1.JourneyStep) string {
	ev := s.GetEvent()
	var parts []string
	add := func(k, v string) {
		if v != "" && v != "0" {
			parts = append(parts, k+"="+v)
		}
	}
	switch {
	case ev.GetLeadCaptured() != nil:
		p := ev.GetLeadCaptured()
		add("channel", Enum(p.GetChannel().String(), "CHANNEL_"))
		add("source", p.GetSource())
		add("campaign", p.GetCampaign())
		add("country", p.GetCountryCode())
	case ev.GetLeadMerged() != nil:
		p := ev.GetLeadMerged()
		add("matched_on", p.GetMatchedOn())
		add("source", p.GetSource())
	case ev.GetEngagementRecorded() != nil:
		add("type", Enum(ev.GetEngagementRecorded().GetType().String(), "SIGNAL_TYPE_"))
	case ev.GetLeadScored() != nil:
		p := ev.GetLeadScored()
		add("score", fmt.Sprint(p.GetScore().GetTotal()))
		add("fit", fmt.Sprint(p.GetScore().GetFit()))
		add("engagement", fmt.Sprint(p.GetScore().GetEngagement()))
	case ev.GetMqlReached() != nil:
		p := ev.GetMqlReached()
		add("score", fmt.Sprint(p.GetTotal()))
		add("grade", Enum(p.GetGrade().String(), "GRADE_"))
		add("heat", Enum(p.GetHeat().String(), "HEAT_"))
	case ev.GetStatusChanged() != nil:
		p := ev.GetStatusChanged()
		add("from", Enum(p.GetFrom().String(), "PROSPECT_STATUS_"))
		add("to", Enum(p.GetTo().String(), "PROSPECT_STATUS_"))
		add("owner", p.GetOwnerRepId())
	case ev.GetLeadQualified() != nil:
		add("bant_met", fmt.Sprint(ev.GetLeadQualified().GetBantMet()))
	case ev.GetLeadRouted() != nil:
		p := ev.GetLeadRouted()
		add("team", p.GetTeamId())
		add("rep", p.GetRepId())
		add("rule", p.GetRuleId())
	case ev.GetLeadQueued() != nil:
		add("team", ev.GetLeadQueued().GetTeamId())
	case ev.GetLeadAssigned() != nil:
		add("team", ev.GetLeadAssigned().GetTeamId())
		add("rep", ev.GetLeadAssigned().GetRepId())
	case ev.GetLeadAccepted() != nil:
		add("rep", ev.GetLeadAccepted().GetRepId())
	case ev.GetLeadRejected() != nil:
		add("rep", ev.GetLeadRejected().GetRepId())
	case ev.GetLeadTouched() != nil:
		p := ev.GetLeadTouched()
		add("rep", p.GetRepId())
		add("type", p.GetTouchType())
		if p.GetFirstTouch() {
			add("first_touch", fmt.Sprint(p.GetWithinSla()))
		}
	case ev.GetSlaBreached() != nil:
		p := ev.GetSlaBreached()
		add("rep", p.GetRepId())
		add("kind", p.GetKind())
		add("action", p.GetAction())
	case ev.GetLeadReassigned() != nil:
		p := ev.GetLeadReassigned()
		add("from", p.GetFromRepId())
		add("to", p.GetToRepId())
	case ev.GetLeadRecycled() != nil:
		p := ev.GetLeadRecycled()
		add("outcome", p.GetOutcome())
		add("reason", p.GetReason())
	case ev.GetDealCreated() != nil:
		p := ev.GetDealCreated()
		add("deal", p.GetDealId())
		add("stage", p.GetStageId())
	case ev.GetStageChanged() != nil:
		p := ev.GetStageChanged()
		add("from", p.GetFromStageId())
		add("to", p.GetToStageId())
	case ev.GetActivityLogged() != nil:
		add("type", ev.GetActivityLogged().GetActivityType())
	case ev.GetQuoteSent() != nil:
		add("total", Money(ev.GetQuoteSent().GetTotal()))
	case ev.GetDealWon() != nil:
		add("amount", Money(ev.GetDealWon().GetAmount()))
	case ev.GetDealLost() != nil:
		p := ev.GetDealLost()
		add("reason", p.GetReason())
		if p.GetRecycled() {
			add("recycled", "true")
		}
	case ev.GetRenewalDue() != nil:
		add("renewal_at", Time(ev.GetRenewalDue().GetRenewalAt()))
	case ev.GetDealReopened() != nil:
		add("stage", ev.GetDealReopened().GetStageId())
	}
	return strings.Join(parts, " ")
}
