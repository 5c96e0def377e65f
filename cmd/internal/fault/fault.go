// Package fault holds LeadFlow's fault tests (fault_test.go): the five
// services booted as `leadflow dev` boots them, against a real redis-server,
// with an in-process toxiproxy (github.com/Shopify/toxiproxy/v2 as a library)
// between the services and Redis or between a client and a service, and
// faults injected under load: Redis killed and restarted from its AOF, lost
// replies, a service unreachable, a network blackhole, bad input. Each test
// is bounded in time and logs its figures (accepted, accounted for,
// duplicates, recovery time).
package fault

import (
	"context"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Proxy is one in-process toxiproxy proxy.
type Proxy struct {
	*toxiproxy.Proxy
}

// StartProxy proxies a free loopback port to upstream until cleanup.
func StartProxy(t testing.TB, name, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.New(io.Discard))
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{p}
}

// Addr is the proxy's listen address.
func (p *Proxy) Addr() string { return p.Listen }

// AddToxic adds a toxic given as toxiproxy JSON, e.g.
// {"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":2000}}.
func (p *Proxy) AddToxic(t testing.TB, js string) {
	t.Helper()
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		t.Fatalf("add toxic %s: %v", js, err)
	}
}

// Blackhole drops everything through the proxy both ways and holds the
// connections open (timeout toxics with no timeout), until Heal.
func (p *Proxy) Blackhole(t testing.TB) {
	t.Helper()
	p.AddToxic(t, `{"name":"bh-up","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`)
	p.AddToxic(t, `{"name":"bh-down","type":"timeout","stream":"downstream","attributes":{"timeout":0}}`)
}

// Heal ends a Blackhole.
func (p *Proxy) Heal(t testing.TB) {
	t.Helper()
	p.RemoveToxic(t, "bh-up")
	p.RemoveToxic(t, "bh-down")
}

// RemoveToxic removes a toxic by name.
func (p *Proxy) RemoveToxic(t testing.TB, name string) {
	t.Helper()
	if err := p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("remove toxic %s: %v", name, err)
	}
}

// Snapshot is every key of a Redis with a dump of its value.
func Snapshot(ctx context.Context, t testing.TB, rdb *redis.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil && err != redis.Nil {
			t.Fatalf("dump %s: %v", k, err)
		}
		out[k] = v
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Diff lists the keys added, removed or changed between two snapshots.
func Diff(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "-"+k)
		} else if w != v {
			d = append(d, "~"+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "+"+k)
		}
	}
	return d
}

var healthConns = map[string]*grpc.ClientConn{}

// healthClient is a cached health client for addr (closed by
// closeHealthClients).
func healthClient(t testing.TB, addr string) healthpb.HealthClient {
	if c, ok := healthConns[addr]; ok {
		return healthpb.NewHealthClient(c)
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	healthConns[addr] = c
	return healthpb.NewHealthClient(c)
}

func closeHealthClients() {
	for k, c := range healthConns {
		_ = c.Close()
		delete(healthConns, k)
	}
}
