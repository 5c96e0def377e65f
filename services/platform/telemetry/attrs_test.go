package telemetry

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Counts recorded through Attrs land on the same series as through
// metric.WithAttributes: one per distinct set of values.
func TestAttrsRecordsOneSeriesPerSetOfValues(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	ctr, err := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("t").Int64Counter("c")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := NewAttrs("kind", "outcome")
	for range 3 {
		ctr.Add(ctx, 1, a.Of("route", "assigned"))
	}
	ctr.Add(ctx, 2, a.Of("route", "queued"))
	ctr.Add(ctx, 5, a.Of("reassign", "assigned"))
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, dp := range rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints {
		kind, _ := dp.Attributes.Value("kind")
		outcome, _ := dp.Attributes.Value("outcome")
		if dp.Attributes.Len() != 2 {
			t.Errorf("set %v has %d attributes, want 2", dp.Attributes.ToSlice(), dp.Attributes.Len())
		}
		got[kind.AsString()+"/"+outcome.AsString()] = dp.Value
	}
	want := map[string]int64{"route/assigned": 3, "route/queued": 2, "reassign/assigned": 5}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	one := NewAttrs("queue")
	if one.Of("scoring-routing") != one.Of("scoring-routing") {
		t.Error("the same values built a second option")
	}
}
