package suite

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is an in-process Redis-compatible server (miniredis) for the
// all-in-one when no Redis is given. Nothing it holds is durable: it lives
// and dies with the process.
type Embedded struct {
	m    *miniredis.Miniredis
	stop chan struct{}
	wg   sync.WaitGroup
}

// StartEmbedded starts the embedded server on addr ("127.0.0.1:0" picks a
// free loopback port).
func StartEmbedded(addr string) (*Embedded, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	e := &Embedded{m: m, stop: make(chan struct{})}
	// miniredis only ages keys when told to: move its clock along with the
	// wall clock so TTLs (idempotency keys, claims, leases) expire as they
	// would on a real server.
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-e.stop:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return e, nil
}

// Addr is the server's host:port.
func (e *Embedded) Addr() string { return e.m.Addr() }

// URL is the redis:// URL of the server.
func (e *Embedded) URL() string { return "redis://" + e.m.Addr() + "/0" }

// Close stops the server; everything it held is gone.
func (e *Embedded) Close() {
	close(e.stop)
	e.wg.Wait()
	e.m.Close()
}
