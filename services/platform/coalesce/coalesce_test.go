package coalesce

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Calls made while a batch runs go together in the next batch, each gets
// its own answer, and an idle call goes alone.
func TestCallsWhileBusyGoInOneBatch(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	g := New(100, func(_ context.Context, items []int) []Result[string] {
		mu.Lock()
		batches = append(batches, append([]int(nil), items...))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			<-release
		}
		out := make([]Result[string], len(items))
		for i, it := range items {
			out[i].Val = fmt.Sprint("answer ", it)
			if it == 7 {
				out[i].Err = errors.New("seven failed")
			}
		}
		return out
	})
	ctx := context.Background()
	firstDone := make(chan error, 1)
	go func() {
		v, err := g.Do(ctx, 0)
		if err == nil && v != "answer 0" {
			err = fmt.Errorf("first got %q", v)
		}
		firstDone <- err
	}()
	// Wait until the first batch runs, then queue ten calls behind it.
	until(&mu, func() bool { return len(batches) == 1 })
	var wg sync.WaitGroup
	errs := make([]error, 11)
	vals := make([]string, 11)
	for i := 1; i <= 10; i++ {
		wg.Go(func() { vals[i], errs[i] = g.Do(ctx, i) })
	}
	until(&g.mu, func() bool { return len(g.wait) == 10 })
	close(release)
	wg.Wait()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if len(batches) != 2 || len(batches[1]) != 10 {
		t.Fatalf("batches %v, want [0] then the ten waiting calls together", batches)
	}
	for i := 1; i <= 10; i++ {
		switch {
		case i == 7 && (errs[i] == nil || errs[i].Error() != "seven failed"):
			t.Errorf("call 7: %v, want its own error", errs[i])
		case i != 7 && (errs[i] != nil || vals[i] != fmt.Sprint("answer ", i)):
			t.Errorf("call %d: %q %v", i, vals[i], errs[i])
		}
	}
	// Idle again: the next call goes alone.
	if v, err := g.Do(ctx, 11); err != nil || v != "answer 11" || len(batches) != 3 || len(batches[2]) != 1 {
		t.Fatalf("idle call: %q %v, batches %v", v, err, batches)
	}
}

// Batches hold at most max calls; a caller whose context ends stops
// waiting; a run that panics or answers short fails its calls, not the
// process.
func TestMaxCancelAndPanic(t *testing.T) {
	release := make(chan struct{})
	var sizes []int
	var mu sync.Mutex
	g := New(3, func(_ context.Context, items []int) []Result[int] {
		mu.Lock()
		sizes = append(sizes, len(items))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release
		}
		if items[0] == 99 {
			panic("boom")
		}
		return make([]Result[int], len(items)-1) // one answer short
	})
	go func() { _, _ = g.Do(context.Background(), 0) }()
	until(&mu, func() bool { return len(sizes) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Do(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	var wg sync.WaitGroup
	var short int
	var smu sync.Mutex
	for i := 2; i <= 7; i++ {
		wg.Go(func() {
			if _, err := g.Do(context.Background(), i); errors.Is(err, errShort) {
				smu.Lock()
				short++
				smu.Unlock()
			}
		})
	}
	until(&g.mu, func() bool { return len(g.wait) == 7 }) // the cancelled call still waits in line
	close(release)
	wg.Wait()
	for _, s := range sizes {
		if s > 3 {
			t.Fatalf("batch of %d, max is 3: %v", s, sizes)
		}
	}
	if short == 0 {
		t.Fatal("the call left without an answer got no error")
	}
	if _, err := g.Do(context.Background(), 99); !errors.Is(err, errShort) {
		t.Fatalf("panicking run: %v", err)
	}
}

// With two flights, a call made while one batch runs goes at once in a
// second batch; only while both run do calls wait, and then they go
// together.
func TestTwoFlightsRunTwoBatchesAtOnce(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	running, most := 0, 0
	g := NewFlights(100, 2, func(_ context.Context, items []int) []Result[int] {
		mu.Lock()
		batches = append(batches, append([]int(nil), items...))
		running++
		most = max(most, running)
		blocked := len(batches) <= 2
		mu.Unlock()
		if blocked {
			<-release
		}
		mu.Lock()
		running--
		mu.Unlock()
		out := make([]Result[int], len(items))
		for i, it := range items {
			out[i].Val = it * 10
		}
		return out
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	vals := make([]int, 6)
	errs := make([]error, 6)
	do := func(i int) { wg.Go(func() { vals[i], errs[i] = g.Do(ctx, i) }) }
	do(0)
	until(&mu, func() bool { return len(batches) == 1 })
	do(1) // one batch in flight: goes at once
	for {
		mu.Lock()
		k := len(batches)
		mu.Unlock()
		if k == 2 {
			break
		}
		// Do queues the call and starts its batch in one critical
		// section: a call queued while only one batch runs is a call that
		// waits behind it.
		g.mu.Lock()
		behind := len(g.wait) == 1 && g.running == 1
		g.mu.Unlock()
		if behind {
			close(release)
			wg.Wait()
			t.Fatal("the second call waited behind the first batch")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 2; i < 6; i++ {
		do(i) // both in flight: wait
	}
	until(&g.mu, func() bool { return len(g.wait) == 4 })
	close(release)
	wg.Wait()
	for i := range 6 {
		if errs[i] != nil || vals[i] != i*10 {
			t.Errorf("call %d: %d %v", i, vals[i], errs[i])
		}
	}
	if most != 2 {
		t.Errorf("at most %d batches ran at once, want 2", most)
	}
	if len(batches) < 3 || len(batches[0]) != 1 || len(batches[1]) != 1 {
		t.Fatalf("batches %v: want [0], [1], then the waiting calls", batches)
	}
	waited := 0
	for _, b := range batches[2:] {
		waited += len(b)
	}
	if waited != 4 || len(batches) > 4 {
		t.Fatalf("batches %v: the four waiting calls should go in at most two batches", batches)
	}
	// Both drains end once nothing waits (else no new batch would start).
	until(&g.mu, func() bool { return g.running == 0 })
}

// A drain lingers once no call waits: the next calls run on its goroutine
// (whose stack has grown already), not on a new one each, and with two
// flights an idle drain is woken rather than a second one started. It
// ends once no call came for its linger.
func TestDrainLingersForTheNextCall(t *testing.T) {
	var mu sync.Mutex
	var ran []string // goroutine of each batch
	g := NewFlights(10, 2, func(_ context.Context, items []int) []Result[int] {
		mu.Lock()
		ran = append(ran, goroutine())
		mu.Unlock()
		out := make([]Result[int], len(items))
		for i, it := range items {
			out[i].Val = it * 2
		}
		return out
	})
	g.linger = time.Hour // long enough that the test cannot outlast it
	ctx := context.Background()
	for i := 1; i <= 5; i++ {
		if v, err := g.Do(ctx, i); err != nil || v != 2*i {
			t.Fatalf("call %d answered %d, %v", i, v, err)
		}
	}
	if len(ran) != 5 {
		t.Fatalf("%d batches, want 5 (one per call: each came alone)", len(ran))
	}
	for _, gr := range ran[1:] {
		if gr != ran[0] {
			t.Fatalf("batches ran on goroutines %v, want one: the lingering drain's", ran)
		}
	}
	g.mu.Lock()
	running, idle := g.running, g.idle
	g.mu.Unlock()
	if running != 1 || idle != 1 {
		t.Fatalf("running %d, idle %d after the calls; want the one drain, lingering", running, idle)
	}

	short := NewFlights(10, 2, func(_ context.Context, items []int) []Result[int] { return make([]Result[int], len(items)) })
	short.linger = time.Millisecond
	if _, err := short.Do(ctx, 1); err != nil {
		t.Fatal(err)
	}
	until(&short.mu, func() bool { return short.running == 0 && short.idle == 0 })
}

// goroutine is the calling goroutine's number, from its stack's header.
func goroutine() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	f := strings.Fields(string(b))
	return f[1]
}

// until polls cond, holding mu, until it holds (the test's deadline bounds
// it).
func until(mu sync.Locker, cond func() bool) {
	for {
		mu.Lock()
		ok := cond()
		mu.Unlock()
		if ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
