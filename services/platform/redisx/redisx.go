// Package redisx builds the one Redis client every service uses, from a URL,
// so the same code runs on a single Redis, Sentinel or Redis Cluster.
package redisx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultPoolSize is the connection pool per Redis node unless the URL sets
// ?pool_size=N.
const DefaultPoolSize = 64

// Options tune the client beyond what the URL says.
type Options struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// DialTimeout, ReadTimeout and WriteTimeout default to 2s, 3s, 3s.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
}

// ParseURL turns a Redis URL into universal options.
//
//	redis://[user:pass@]host:port[/db][?pool_size=N]    single server
//	rediss://...                                        the same over TLS
//	redis+cluster://[user:pass@]host1:port,host2:port   Redis Cluster (seed nodes)
//	redis+sentinel://[user:pass@]host1:port,host2:port/master-name[/db]  Sentinel
func ParseURL(raw string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	o := &redis.UniversalOptions{}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	addrs := strings.Split(u.Host, ",")
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("redis url: address %q: %w", a, err)
		}
	}
	path := strings.Trim(u.Path, "/")
	switch u.Scheme {
	case "redis", "rediss":
		if len(addrs) != 1 {
			return nil, errors.New("redis url: redis:// takes one address; use redis+cluster:// or redis+sentinel:// for several")
		}
		single, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		o.Addrs = []string{single.Addr}
		o.DB = single.DB
		o.TLSConfig = single.TLSConfig
		o.PoolSize = single.PoolSize // ?pool_size=N
	case "redis+cluster":
		o.Addrs = addrs
		o.IsClusterMode = true
	case "redis+sentinel":
		o.Addrs = addrs
		parts := strings.Split(path, "/")
		if parts[0] == "" {
			return nil, errors.New("redis url: redis+sentinel:// needs the master name as the path")
		}
		o.MasterName = parts[0]
		if len(parts) > 1 {
			db, err := strconv.Atoi(parts[1])
			if err != nil {
				return nil, fmt.Errorf("redis url: db %q: %w", parts[1], err)
			}
			o.DB = db
		}
	default:
		return nil, fmt.Errorf("redis url: unknown scheme %q (want redis, rediss, redis+cluster or redis+sentinel)", u.Scheme)
	}
	return o, nil
}

// New returns a traced, metered client for the URL. It does not contact Redis:
// readiness follows Redis through the health checker, so a service can start
// before Redis does.
//
// Retry policy: go-redis retries a command whose reply was lost, which would
// repeat a non-idempotent write (a Lua script that appends, an XADD). LeadFlow
// turns those retries off (MaxRetries = -1). A failed command surfaces as
// Unavailable to the caller, and callers retry whole RPCs that are idempotent
// by design (idempotency keys, ids chosen by the caller, NX writes).
func New(raw string, opts Options) (redis.UniversalClient, error) {
	o, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	o.MaxRetries = -1
	// go-redis's default pool (10 per CPU) runs dry under load: every WATCH
	// transaction, blocking read (job wake-ups, stream consumers, inbox) and
	// concurrent job delivery holds a connection, and a caller that waits for
	// one gets ErrPoolTimeout after 4 s. Redis serves thousands of clients.
	if o.PoolSize == 0 {
		o.PoolSize = DefaultPoolSize
	}
	o.DialTimeout = orDefault(opts.DialTimeout, 2*time.Second)
	o.ReadTimeout = orDefault(opts.ReadTimeout, 3*time.Second)
	o.WriteTimeout = orDefault(opts.WriteTimeout, 3*time.Second)
	// Sentinel needs a ReadOnly=false default and Cluster follows MOVED itself;
	// both are handled by NewUniversalClient from the options above.
	c := redis.NewUniversalClient(o)
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	// Only calls made inside a trace get spans (see inTrace).
	tp = inTrace{tp: tp}
	tOpts := []redisotel.TracingOption{redisotel.WithTracerProvider(tp)}
	// Commands can carry personal data (an e-mail index key); keep statements out of spans.
	tOpts = append(tOpts, redisotel.WithDBStatement(false))
	// The caller's file and line cost a stack walk per command (about 4% of
	// the suite's CPU under load) and always name a store package.
	tOpts = append(tOpts, redisotel.WithCallerEnabled(false))
	// Pipelines get their span from pipelineSpans, which names them without
	// rendering every argument.
	tOpts = append(tOpts, redisotel.WithCommandsFilter(func([]redis.Cmder) bool { return true }))
	tOpts = append(tOpts, redisotel.WithCommandFilter(isWaitOrProbe))
	if err := redisotel.InstrumentTracing(c, tOpts...); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis tracing: %w", err)
	}
	c.AddHook(newPipelineSpans(tp, firstAddr(o.Addrs)))
	if opts.MeterProvider != nil {
		if err := redisotel.InstrumentMetrics(c, redisotel.WithMeterProvider(opts.MeterProvider)); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("redis metrics: %w", err)
		}
	}
	return c, nil
}

// isWaitOrProbe reports whether cmd waits for work (a blocking pop or
// stream read) or probes liveness (PING). Those get no span: an idle
// worker's poll would be a trace of its own every 100 ms, and a rep's inbox
// stream would gather one span per read; their time is waiting, not work.
func isWaitOrProbe(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "blpop", "brpop", "blmove", "bzpopmin", "bzpopmax", "ping":
		return true
	case "xread", "xreadgroup":
		for _, a := range cmd.Args() {
			if s, ok := a.(string); ok && strings.EqualFold(s, "block") {
				return true
			}
		}
	}
	return false
}

func firstAddr(addrs []string) string {
	if len(addrs) == 0 {
		return ""
	}
	return addrs[0]
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// IsUnavailable reports whether err means Redis could not be reached or did not
// answer in time (as opposed to a reply such as redis.Nil or a script error).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "broken pipe", "connection reset", "i/o timeout", "EOF", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// ServerCPU is the CPU time the Redis server has used since it started
// (INFO cpu: used_cpu_sys + used_cpu_user): benchmarks divide its growth by
// the work done to report Redis's cost per lead or per event.
func ServerCPU(ctx context.Context, rdb redis.Cmdable) (time.Duration, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var secs float64
	for _, l := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO cpu %s: %w", k, err)
			}
			secs += x
		}
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// ReadsProcessed is INFO stats total_reads_processed: the reads Redis made
// on client connections since it started. Each request a client sends, a
// single command or a whole pipeline, is one read unless it is too large
// for one, so its growth counts round trips, all clients together.
func ReadsProcessed(ctx context.Context, rdb redis.Cmdable) (int64, error) {
	v, err := InfoField(ctx, rdb, "stats", "total_reads_processed")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// InfoField is one field of an INFO section.
func InfoField(ctx context.Context, rdb redis.Cmdable, section, field string) (string, error) {
	info, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

// CommandStat is one command's INFO commandstats entry.
type CommandStat struct {
	Calls int64
	Usec  int64 // time Redis spent in the command (a script's includes its commands)
}

// CommandStats reads INFO commandstats: calls and time per command since
// the server started (commands inside scripts and transactions included).
func CommandStats(ctx context.Context, rdb redis.Cmdable) (map[string]CommandStat, error) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]CommandStat{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st CommandStat
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				st.Calls, _ = strconv.ParseInt(v, 10, 64)
			} else if v, ok := strings.CutPrefix(f, "usec="); ok {
				st.Usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out, nil
}

// CommandCalls is CommandStats' calls per command.
func CommandCalls(ctx context.Context, rdb redis.Cmdable) (map[string]int64, error) {
	st, err := CommandStats(ctx, rdb)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(st))
	for k, v := range st {
		out[k] = v.Calls
	}
	return out, nil
}
