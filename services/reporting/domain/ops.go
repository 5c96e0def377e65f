package domain

import (
	"errors"
	"fmt"
	"strconv"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
)

// ErrInvalidEvent marks an event that can never be applied (a poison event).
var ErrInvalidEvent = errors.New("invalid event")

// Ops translates an event into the changes of its lead's facts. An event
// kind reporting does not aggregate (it still joins the journey) gives no
// ops. An event missing what every event must carry is ErrInvalidEvent.
func Ops(ev *eventsv1.LeadEvent) ([]Op, error) {
	switch {
	case ev.GetId() == "":
		return nil, fmt.Errorf("%w: no id", ErrInvalidEvent)
	case ev.GetLeadId() == "":
		return nil, fmt.Errorf("%w: no lead_id", ErrInvalidEvent)
	case ev.GetOccurredAt() == nil:
		return nil, fmt.Errorf("%w: no occurred_at", ErrInvalidEvent)
	case ev.GetPayload() == nil:
		return nil, fmt.Errorf("%w: no payload", ErrInvalidEvent)
	}
	key := EventKey(ev.GetOccurredAt().AsTime(), ev.GetId())
	minOp := func(g string, kv ...string) []Op { return []Op{{Kind: OpMin, Group: g, Key: key, Fields: kv}} }
	maxOp := func(g string, kv ...string) []Op { return []Op{{Kind: OpMax, Group: g, Key: key, Fields: kv}} }
	incr := func(field string) Op { return Op{Kind: OpIncr, Group: field, Delta: 1} }
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}

	switch p := ev.GetPayload().(type) {
	case *eventsv1.LeadEvent_LeadCaptured:
		c := p.LeadCaptured
		return minOp(GroupCaptured,
			"src", c.GetSource(), "cmp", c.GetCampaign(), "med", c.GetMedium(),
			"ch", c.GetChannel().String(), "ctry", c.GetCountryCode(), "ind", c.GetIndustry()), nil
	case *eventsv1.LeadEvent_LeadMerged:
		return []Op{incr(CounterMerges)}, nil
	case *eventsv1.LeadEvent_EngagementRecorded:
		return []Op{incr(CounterEngagements)}, nil
	case *eventsv1.LeadEvent_LeadScored:
		s := p.LeadScored.GetScore()
		return maxOp(GroupScore, "tot", i64(int64(s.GetTotal())), "gr", s.GetGrade().String()), nil
	case *eventsv1.LeadEvent_MqlReached:
		m := p.MqlReached
		return minOp(GroupMQL, "tot", i64(int64(m.GetTotal())), "gr", m.GetGrade().String(),
			"heat", m.GetHeat().String(), "mv", i64(int64(m.GetModelVersion()))), nil
	case *eventsv1.LeadEvent_LeadQualified:
		q := p.LeadQualified
		return minOp(GroupQualified, "bant", i64(int64(q.GetBantMet())), "rep", q.GetOwnerRepId()), nil
	case *eventsv1.LeadEvent_LeadRouted:
		return minOp(GroupRouted, "team", p.LeadRouted.GetTeamId(), "rep", p.LeadRouted.GetRepId()), nil
	case *eventsv1.LeadEvent_LeadAssigned:
		a := p.LeadAssigned
		due := ""
		if a.GetFirstTouchDue() != nil {
			due = i64(a.GetFirstTouchDue().AsTime().UnixMilli())
		}
		return minOp(GroupAssigned, "team", a.GetTeamId(), "rep", a.GetRepId(), "due", due), nil
	case *eventsv1.LeadEvent_LeadAccepted:
		return minOp(GroupAccepted, "team", p.LeadAccepted.GetTeamId(), "rep", p.LeadAccepted.GetRepId()), nil
	case *eventsv1.LeadEvent_LeadRejected:
		return []Op{incr(CounterRejections)}, nil
	case *eventsv1.LeadEvent_LeadTouched:
		t := p.LeadTouched
		ops := minOp(GroupTouched, "team", t.GetTeamId(), "rep", t.GetRepId(), "sla", b(t.GetWithinSla()))
		return append(ops, incr(CounterTouches)), nil
	case *eventsv1.LeadEvent_SlaBreached:
		ops := []Op{incr(CounterBreaches)}
		if p.SlaBreached.GetKind() == "first_touch" {
			ops = append(ops, minOp(GroupTouchBreach, "rep", p.SlaBreached.GetRepId())...)
		}
		return ops, nil
	case *eventsv1.LeadEvent_LeadReassigned:
		return []Op{incr(CounterReassigned)}, nil
	case *eventsv1.LeadEvent_LeadRecycled:
		return []Op{incr(CounterRecycles)}, nil
	case *eventsv1.LeadEvent_DealCreated:
		d := p.DealCreated
		ops := minOp(GroupDeal, "id", d.GetDealId(), "pipe", d.GetPipelineId(), "stage", d.GetStageId(),
			"rep", d.GetOwnerRepId(), "amt", i64(d.GetAmount().GetAmountMinor()), "cur", d.GetAmount().GetCurrencyCode())
		if d.GetStageId() != "" {
			ops = append(ops, minOp(GroupStagePrefix+d.GetStageId())...)
		}
		return ops, nil
	case *eventsv1.LeadEvent_StageChanged:
		if s := p.StageChanged.GetToStageId(); s != "" {
			return minOp(GroupStagePrefix + s), nil
		}
		return nil, nil
	case *eventsv1.LeadEvent_DealWon:
		w := p.DealWon
		if w.GetAmount().GetCurrencyCode() == "" {
			return nil, fmt.Errorf("%w: deal_won without amount currency", ErrInvalidEvent)
		}
		created := ""
		if w.GetDealCreatedAt() != nil {
			created = i64(w.GetDealCreatedAt().AsTime().UnixMilli())
		}
		return maxOp(GroupWon, "id", w.GetDealId(), "amt", i64(w.GetAmount().GetAmountMinor()),
			"cur", w.GetAmount().GetCurrencyCode(), "rep", w.GetOwnerRepId(), "created", created), nil
	case *eventsv1.LeadEvent_DealLost:
		l := p.DealLost
		return maxOp(GroupLost, "id", l.GetDealId(), "reason", l.GetReason(), "rep", l.GetOwnerRepId()), nil
	case *eventsv1.LeadEvent_DealReopened:
		return maxOp(GroupReopened, "stage", p.DealReopened.GetStageId()), nil
	default:
		// LeadErased, StatusChanged, LeadQueued, ActivityLogged, QuoteSent,
		// RenewalDue and future kinds: journey only.
		return nil, nil
	}
}

// Kind is the payload's field name, e.g. "lead_captured"; "unknown" when
// there is no payload.
func Kind(ev *eventsv1.LeadEvent) string {
	m := ev.ProtoReflect()
	if f := m.WhichOneof(m.Descriptor().Oneofs().ByName("payload")); f != nil {
		return string(f.Name())
	}
	return "unknown"
}
