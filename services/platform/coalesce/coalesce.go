// Package coalesce turns concurrent calls into batches ("group commit"): a
// call made while a batch is running waits for it and goes in the next one
// with every other call that arrived meanwhile. An idle caller goes at once,
// alone, so coalescing adds no wait when there is no load, and under load
// one Redis round trip serves many callers instead of one each.
package coalesce

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Result is one call's answer.
type Result[R any] struct {
	Val R
	Err error
}

// Group batches calls of one kind.
type Group[T, R any] struct {
	run     func(ctx context.Context, items []T) []Result[R]
	max     int
	flights int
	mu      sync.Mutex
	wait    []*call[T, R]
	running int           // drains alive: running a batch or lingering
	idle    int           // drains lingering for a call
	wake    chan struct{} // one token per lingering drain a call woke
	linger  time.Duration
}

// linger is how long a drain waits for another call once no call waits,
// before its goroutine ends. At moderate load (a call every few
// milliseconds) the next call then runs on the same goroutine, whose stack
// has grown already: a new goroutine per call grew its stack on most
// batches (5 % of the suite's CPU at half the maximum rate).
const linger = 5 * time.Millisecond

type call[T, R any] struct {
	item T
	done chan Result[R]
}

// New returns a Group whose batches (at most max items) run through run,
// which answers one Result per item, in order. One batch runs at a time,
// so batches keep the order of their calls.
func New[T, R any](max int, run func(ctx context.Context, items []T) []Result[R]) *Group[T, R] {
	return NewFlights(max, 1, run)
}

// NewFlights is New (batches of at most maxItems) with up to flights
// batches running at once: a call waits only while that many are in
// flight. For calls whose order does not matter (independent reads, NX
// claims): at moderate load most of them go at once instead of waiting a
// whole round trip, and under full load they still share round trips.
func NewFlights[T, R any](maxItems, flights int, run func(ctx context.Context, items []T) []Result[R]) *Group[T, R] {
	flights = max(flights, 1)
	return &Group[T, R]{run: run, max: maxItems, flights: flights, wake: make(chan struct{}, flights), linger: linger}
}

// Do adds item to the next batch and waits for its answer or for ctx to
// end (the batch then still runs: what it does must be safe to repeat, as
// the caller's retry may repeat it).
func (g *Group[T, R]) Do(ctx context.Context, item T) (R, error) {
	c := &call[T, R]{item: item, done: make(chan Result[R], 1)}
	g.mu.Lock()
	g.wait = append(g.wait, c)
	switch {
	case g.idle > 0:
		g.idle--
		g.wake <- struct{}{} // never blocks: at most flights drains linger
	case g.running < g.flights:
		g.running++
		go g.drain(ctx)
	}
	g.mu.Unlock()
	select {
	case r := <-c.done:
		return r.Val, r.Err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// drain runs batches until no call has waited for linger (with several
// flights, each drain takes the calls waiting when its previous batch
// ends). The batches run on the context of the call that started the
// drain, without its cancellation and outside its trace (a batch serves
// many callers and many leads' traces).
func (g *Group[T, R]) drain(first context.Context) {
	ctx := trace.ContextWithSpanContext(context.WithoutCancel(first), trace.SpanContext{})
	var timer *time.Timer
	for {
		g.mu.Lock()
		n := min(len(g.wait), g.max)
		if n == 0 {
			g.idle++
			g.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(g.linger)
			} else {
				timer.Reset(g.linger)
			}
			select {
			case <-g.wake:
				timer.Stop()
				continue
			case <-timer.C:
			}
			g.mu.Lock()
			select {
			case <-g.wake: // a call woke a lingering drain just now: take it
				g.mu.Unlock()
				continue
			default:
			}
			g.idle--
			g.running--
			g.mu.Unlock()
			return
		}
		batch := make([]*call[T, R], n)
		copy(batch, g.wait)
		g.wait = append(g.wait[:0], g.wait[n:]...)
		g.mu.Unlock()
		items := make([]T, n)
		for i, c := range batch {
			items[i] = c.item
		}
		res := safeRun(ctx, g.run, items)
		for i, c := range batch {
			c.done <- res[i]
		}
	}
}

// safeRun answers every item even when run panics or answers short.
func safeRun[T, R any](ctx context.Context, run func(context.Context, []T) []Result[R], items []T) (res []Result[R]) {
	defer func() {
		if p := recover(); p != nil {
			res = nil
		}
		for len(res) < len(items) {
			res = append(res, Result[R]{Err: errShort})
		}
	}()
	return run(ctx, items)
}

var errShort = errors.New("coalesce: the batch did not answer this call")
