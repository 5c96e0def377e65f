package consumer

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	"github.com/leadflow/leadflow/services/platform/events"
	"github.com/leadflow/leadflow/services/platform/telemetry"
	"github.com/leadflow/leadflow/services/reporting/domain"
)

type metrics struct {
	funnel    metric.Int64Counter
	revenue   metric.Int64Counter
	processed metric.Int64Counter
	claimed   metric.Int64Counter
	trimmed   metric.Int64Counter
}

// stepOfGroup names the headline counter a first-time fact group feeds.
var stepOfGroup = map[string]string{
	domain.GroupCaptured:  "captured",
	domain.GroupMQL:       "mql",
	domain.GroupRouted:    "routed",
	domain.GroupAccepted:  "accepted",
	domain.GroupQualified: "qualified",
	domain.GroupDeal:      "opportunity",
	domain.GroupWon:       "won",
	domain.GroupLost:      "lost",
}

func newMetrics(m metric.Meter, c *Consumer) (*metrics, error) {
	var out metrics
	var err error
	if out.funnel, err = m.Int64Counter("leadflow.reporting.funnel.leads",
		metric.WithDescription("Leads reaching a funnel step for the first time (step: captured, mql, routed, accepted, qualified, opportunity, won, lost)"),
		metric.WithUnit("{lead}")); err != nil {
		return nil, err
	}
	if out.revenue, err = m.Int64Counter("leadflow.reporting.revenue.won",
		metric.WithDescription("Won deal amounts in minor units of the currency attribute"),
		metric.WithUnit("{minor_unit}")); err != nil {
		return nil, err
	}
	if out.processed, err = m.Int64Counter("leadflow.reporting.events.processed",
		metric.WithDescription("Stream entries processed (outcome: applied, duplicate, dead_letter, failed)"),
		metric.WithUnit("{event}")); err != nil {
		return nil, err
	}
	if out.claimed, err = m.Int64Counter("leadflow.reporting.events.claimed",
		metric.WithDescription("Pending entries claimed back from another consumer"),
		metric.WithUnit("{event}")); err != nil {
		return nil, err
	}
	if out.trimmed, err = m.Int64Counter("leadflow.reporting.stream.trimmed",
		metric.WithDescription("Stream entries removed by retention trimming"),
		metric.WithUnit("{event}")); err != nil {
		return nil, err
	}
	lag, err := m.Int64ObservableGauge("leadflow.reporting.consumer.lag",
		metric.WithDescription("Stream entries not yet delivered to the reporting group"), metric.WithUnit("{event}"))
	if err != nil {
		return nil, err
	}
	pending, err := m.Int64ObservableGauge("leadflow.reporting.consumer.pending",
		metric.WithDescription("Entries delivered to the reporting group and not yet acknowledged"), metric.WithUnit("{event}"))
	if err != nil {
		return nil, err
	}
	dead, err := m.Int64ObservableGauge("leadflow.reporting.deadletters",
		metric.WithDescription("Entries in the dead-letter stream"), metric.WithUnit("{event}"))
	if err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		groups, err := c.rdb.XInfoGroups(ctx, events.StreamKey).Result()
		if err != nil {
			return nil // stream or group not there yet, or Redis down: no observation
		}
		for _, g := range groups {
			if g.Name == Group {
				o.ObserveInt64(lag, g.Lag)
				o.ObserveInt64(pending, g.Pending)
			}
		}
		if n, err := c.rdb.XLen(ctx, events.DeadLetterKey).Result(); err == nil {
			o.ObserveInt64(dead, n)
		}
		return nil
	}, lag, pending, dead)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// The consumer's metrics' attribute sets (currency codes are validated
// ISO 4217 codes, a closed set).
var (
	outcomeAttrs  = telemetry.NewAttrs("outcome")
	stepAttrs     = telemetry.NewAttrs("step")
	currencyAttrs = telemetry.NewAttrs("currency")
)

// headline counts the steps an applied event reached for the first time.
func (m *metrics) headline(ctx context.Context, ev *eventsv1.LeadEvent, groups []string) {
	for _, g := range groups {
		step, ok := stepOfGroup[g]
		if !ok {
			continue
		}
		m.funnel.Add(ctx, 1, stepAttrs.Of(step))
		if g == domain.GroupWon {
			amt := ev.GetDealWon().GetAmount()
			m.revenue.Add(ctx, amt.GetAmountMinor(), currencyAttrs.Of(amt.GetCurrencyCode()))
		}
	}
}
