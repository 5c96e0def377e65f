package telemetry

import (
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Attrs memoizes a metric's attribute sets by their values.
// metric.WithAttributes builds a new set (sorted, hashed, allocated) on
// every call, which cost about 1 % of the suite's CPU where a lead's every
// step counts something. The values must come from small closed sets
// (outcomes, kinds, queue names, currency codes): each distinct one is
// kept for the life of the process.
type Attrs struct {
	keys []string
	mu   sync.RWMutex
	sets map[[2]string]metric.MeasurementOption
}

// NewAttrs is the cache of the attribute sets with these keys (one or two).
func NewAttrs(keys ...string) *Attrs {
	if len(keys) == 0 || len(keys) > 2 {
		panic("telemetry.NewAttrs: one or two keys")
	}
	return &Attrs{keys: keys, sets: map[[2]string]metric.MeasurementOption{}}
}

// Of is the option that records with the set keys[i] = values[i].
func (a *Attrs) Of(values ...string) metric.MeasurementOption {
	var k [2]string
	copy(k[:], values)
	a.mu.RLock()
	o, ok := a.sets[k]
	a.mu.RUnlock()
	if ok {
		return o
	}
	kvs := make([]attribute.KeyValue, len(a.keys))
	for i, key := range a.keys {
		kvs[i] = attribute.String(key, k[i])
	}
	o = metric.WithAttributeSet(attribute.NewSet(kvs...))
	a.mu.Lock()
	a.sets[k] = o
	a.mu.Unlock()
	return o
}
