// Package seed fills a LeadFlow Redis with leads that look exactly like
// leads the suite stored itself: it runs a few real journeys through the API
// (the templates), reads back every key they left in every service's
// keyspace, and writes N clones of them under fresh ids. The lead id, and
// every other id of the lead's that names keys of its own (its deal, its
// routing decisions, its identity and idempotency hashes), is replaced in key
// names, hash tags, fields, members and values, and each template's entries
// in shared keys (capture's per-organisation lead list, scoring's status
// lists, routing's rep sets, pipeline's deal indexes, reporting's cohort,
// job queues, the event stream) are added for every clone, so every index
// grows as it would after N journeys. It is the engine of `leadflow seed`
// and `make bench-1m` (the README, "A million leads stored").
package seed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// Config says what to seed.
type Config struct {
	// RedisURL is the suite's Redis (redis://; a single node).
	RedisURL string
	// Leads is the number of clones to write (0: only the templates).
	Leads int
	// Templates is the number of real journeys run first through the API
	// at Addrs (0: clone the leads already stored).
	Templates int
	// Further is the share of template journeys taken on to accept, touch,
	// BANT and QUALIFIED (as `leadflow load --further`).
	Further float64
	Addrs   client.Addrs
	Token   string
	// History and Retention: see CloneOptions.
	History, Retention time.Duration
	// Batch and Workers: see CloneOptions.
	Batch, Workers int
	// Settle bounds each wait for the suite to be idle (default 10 min).
	Settle time.Duration
	// MaxMemoryShare (0..1) stops the seed early when the first clones
	// show that all of them would take more than this share of the
	// machine's available memory (/proc/meminfo MemAvailable, read at the
	// start; Redis on the same machine). 0: no check.
	MaxMemoryShare float64
}

// Report is what a seed did.
type Report struct {
	Templates                int // template leads cloned
	TemplateKeys, SharedKeys int // keys read; shared keys with template entries
	Skipped                  []string
	Clone                    CloneStats
	KeysBefore, KeysAfter    int64
	CloneTime, SettleTime    time.Duration
	UsedMemory               string // INFO memory used_memory_human after seeding
	StreamLen                int64
}

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "templates: %d leads, %d keys read, %d shared keys with their entries\n", r.Templates, r.TemplateKeys, r.SharedKeys)
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "skipped (claimed by two templates): %s\n", strings.Join(r.Skipped, " "))
	}
	rate := 0.0
	if r.CloneTime > 0 {
		rate = float64(r.Clone.Leads) / r.CloneTime.Seconds()
	}
	fmt.Fprintf(w, "cloned: %d leads in %s (%.0f leads/s, %d commands): %d own keys, %d index entries, %d stream entries\n",
		r.Clone.Leads, r.CloneTime.Round(time.Millisecond), rate, r.Clone.Commands, r.Clone.Keys, r.Clone.IndexEntries, r.Clone.StreamEntries)
	fmt.Fprintf(w, "settled in %s (event stream consumed, no job due)\n", r.SettleTime.Round(time.Millisecond))
	fmt.Fprintf(w, "keys: %d before, %d after; event stream %d entries; used_memory_human %s\n", r.KeysBefore, r.KeysAfter, r.StreamLen, r.UsedMemory)
}

// Run runs the template journeys (if any), waits for the suite to settle,
// reads the store and writes the clones, then waits for it to settle again.
// Progress goes to logw.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Report, error) {
	if cfg.Leads < 0 || cfg.Templates < 0 {
		return nil, errors.New("seed: --leads and --templates must be >= 0")
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 10 * time.Minute
	}
	if strings.HasPrefix(cfg.RedisURL, "redis+cluster://") || strings.Contains(cfg.RedisURL, ",") {
		return nil, errors.New("seed: a single Redis only (redis://…), not a cluster")
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	opt.PoolSize = max(cfg.Workers, 2) + 2
	opt.ReadTimeout = time.Minute
	opt.WriteTimeout = time.Minute
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	if cfg.Templates > 0 {
		fmt.Fprintf(logw, "seed: %d template journeys through the API\n", cfg.Templates)
		rep, err := load.Run(ctx, load.Config{
			Addrs: cfg.Addrs, Token: cfg.Token, RedisURL: cfg.RedisURL, Count: cfg.Templates,
			Concurrency: 16, Further: cfg.Further, RunID: "seed" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36),
		}, io.Discard)
		if err != nil {
			return nil, fmt.Errorf("template journeys: %w", err)
		}
		if !rep.OK() {
			return nil, fmt.Errorf("template journeys: conservation failed (%d OK, %d accounted for, %d duplicates, %d dead letters)",
				rep.Accepted, rep.Assigned+rep.Queued+rep.Nurturing+rep.BadFit, rep.Duplicates, rep.DeadLetters)
		}
		fmt.Fprintf(logw, "seed: %d journeys OK (%d assigned, %d queued, %d taken further)\n", rep.Accepted, rep.Assigned, rep.Queued, rep.Further)
	}
	if _, err := load.Settle(ctx, rdb, cfg.Settle); err != nil {
		return nil, err
	}
	r := &Report{}
	if r.KeysBefore, err = rdb.DBSize(ctx).Result(); err != nil {
		return nil, err
	}
	snap, err := Read(ctx, rdb)
	if err != nil {
		return nil, err
	}
	r.Templates, r.TemplateKeys, r.SharedKeys, r.Skipped = snap.Templates(), snap.Keys, snap.SharedKeys, snap.Skipped
	fmt.Fprintf(logw, "seed: %d template leads (%d keys); writing %d clones\n", r.Templates, r.TemplateKeys, cfg.Leads)
	mem0, err := usedBytes(ctx, rdb)
	if err != nil {
		return nil, err
	}
	avail := memAvailable()
	probe := int64(min(cfg.Leads, 5000))
	var (
		checked atomic.Bool
		mu      sync.Mutex // the workers report one at a time
		t0      = time.Now()
		last    = time.Now()
	)
	r.Clone, err = snap.Clone(ctx, rdb, cfg.Leads, CloneOptions{
		Batch: cfg.Batch, Workers: cfg.Workers, History: cfg.History, Retention: cfg.Retention,
		Progress: func(done int64) error {
			mu.Lock()
			defer mu.Unlock()
			if done >= probe && checked.CompareAndSwap(false, true) {
				mem, err := usedBytes(ctx, rdb)
				if err != nil {
					return err
				}
				per := float64(mem-mem0) / float64(done)
				need := per * float64(cfg.Leads)
				fmt.Fprintf(logw, "seed: %.1f KiB of Redis memory per clone: about %.1f GiB for %d clones (MemAvailable at the start %.1f GiB)\n",
					per/1024, need/(1<<30), cfg.Leads, float64(avail)/(1<<30))
				if cfg.MaxMemoryShare > 0 && avail > 0 && need > cfg.MaxMemoryShare*float64(avail) {
					return fmt.Errorf("seed: %d clones would need about %.1f GiB, more than %.0f%% of the %.1f GiB available: stopped after %d (use fewer --leads, or --max-memory-share)",
						cfg.Leads, need/(1<<30), 100*cfg.MaxMemoryShare, float64(avail)/(1<<30), done)
				}
			}
			if time.Since(last) >= 10*time.Second {
				last = time.Now()
				fmt.Fprintf(logw, "seed: %d/%d clones (%.0f/s)\n", done, cfg.Leads, float64(done)/time.Since(t0).Seconds())
			}
			return nil
		},
	})
	r.CloneTime = time.Since(t0)
	if err != nil {
		return r, err
	}
	t1 := time.Now()
	if _, err := load.Settle(ctx, rdb, cfg.Settle); err != nil {
		return r, err
	}
	r.SettleTime = time.Since(t1)
	r.KeysAfter, _ = rdb.DBSize(ctx).Result()
	r.StreamLen, _ = rdb.XLen(ctx, EventStream).Result()
	r.UsedMemory, _ = UsedMemory(ctx, rdb)
	return r, nil
}

func usedBytes(ctx context.Context, rdb *redis.Client) (int64, error) {
	v, err := redisx.InfoField(ctx, rdb, "memory", "used_memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// memAvailable is /proc/meminfo MemAvailable in bytes (0 if unknown).
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// UsedMemory is INFO memory used_memory_human.
func UsedMemory(ctx context.Context, rdb *redis.Client) (string, error) {
	return redisx.InfoField(ctx, rdb, "memory", "used_memory_human")
}
