package platformtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a three-master Redis Cluster (no replicas) of redis-server
// processes on loopback, owned by one test and stopped at its cleanup.
type RedisCluster struct {
	t     testing.TB
	addrs []string
	srvs  []*server
}

// RedisCLIBinary finds redis-cli: $LEADFLOW_REDIS_CLI, then PATH, then the
// Debian location (package redis-tools, pulled in by redis-server).
func RedisCLIBinary() (string, error) {
	return findBinary("redis-cli", "LEADFLOW_REDIS_CLI", "it creates the test Redis Cluster: install it (apt-get install -y redis-tools, which redis-server pulls in)")
}

// StartRedisCluster starts three redis-server processes in cluster mode on
// free loopback ports, joins them with `redis-cli --cluster create
// --cluster-replicas 0`, and waits until every node reports cluster_state:ok.
// It fails the test when redis-server or redis-cli is missing.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	bin, err := RedisBinary()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := RedisCLIBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &RedisCluster{t: t}
	// Directories first, so the cleanup that removes them runs after stop.
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	t.Cleanup(c.stop)
	for _, dir := range dirs {
		port := FreePort(t)
		// The cluster bus port defaults to port+10000, which may be taken or
		// out of range; give it its own free port.
		bus := FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
			"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
			"--protected-mode", "yes", "--logfile", filepath.Join(dir, "redis.log"),
		}
		srv, err := launch(bin, dir, addr, args)
		if err != nil {
			t.Fatalf("cluster node redis-server on %s: %v", addr, err)
		}
		c.srvs = append(c.srvs, srv)
		c.addrs = append(c.addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create %s: %v\n%s", strings.Join(c.addrs, " "), err, out)
	}
	if err := c.waitOK(ctx); err != nil {
		t.Fatalf("redis cluster %s: %v", strings.Join(c.addrs, ","), err)
	}
	return c
}

// waitOK polls CLUSTER INFO on every node until each says cluster_state:ok
// and knows all three nodes.
func (c *RedisCluster) waitOK(ctx context.Context) error {
	var last string
	for _, addr := range c.addrs {
		node := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		for {
			info, err := node.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			last = fmt.Sprintf("%s: %v %q", addr, err, info)
			select {
			case <-ctx.Done():
				_ = node.Close()
				return fmt.Errorf("not ok: %s", last)
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = node.Close()
	}
	return nil
}

// Addrs are host:port of the three nodes.
func (c *RedisCluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// URL is the redis+cluster:// URL of the cluster, as services take it
// (redisx.ParseURL); the platform then builds a ClusterClient.
func (c *RedisCluster) URL() string { return "redis+cluster://" + strings.Join(c.addrs, ",") }

// Client returns a cluster client for the test's own checks; closed at cleanup.
func (c *RedisCluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func (c *RedisCluster) stop() {
	for _, srv := range c.srvs {
		srv.stop(os.Interrupt)
	}
	c.srvs = nil
}
