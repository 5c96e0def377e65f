package fault

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/load"
	"github.com/leadflow/leadflow/cmd/internal/suitetest"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// startCluster creates a local three-master Redis Cluster from
// redis-server (`redis-cli --cluster create`) and returns its seed
// addresses. The nodes are killed at cleanup.
func startCluster(t *testing.T) []string {
	t.Helper()
	bin, err := platformtest.RedisBinary()
	if err != nil {
		t.Skipf("redis-server: %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not on PATH (scripts/ensure-redis installs it with redis-server)")
	}
	var addrs []string
	for i := 0; i < 3; i++ {
		port := platformtest.FreePort(t)
		dir := t.TempDir()
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-config-file", dir+"/nodes.conf", "--dir", dir, "--save", "", "--appendonly", "no")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if !suitetest.Eventually(10*time.Second, func() bool {
			return exec.Command(cli, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "ping").Run() == nil
		}) {
			t.Fatalf("cluster node %s did not start", addr)
		}
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	var out bytes.Buffer
	create := exec.Command(cli, args...)
	create.Stdout, create.Stderr = &out, &out
	if err := create.Run(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out.String())
	}
	port := strings.Split(addrs[0], ":")[1]
	if !suitetest.Eventually(20*time.Second, func() bool {
		info, _ := exec.Command(cli, "-p", port, "cluster", "info").Output()
		return bytes.Contains(info, []byte("cluster_state:ok"))
	}) {
		t.Fatal("cluster_state never became ok")
	}
	return addrs
}

// The suite on a three-master Redis Cluster: full journeys through all five
// services, conservation holds and no dead letters on any master, which
// proves every multi-key operation stays within one hash slot (a cross-slot
// script or transaction fails with CROSSSLOT).
func TestSuiteOnRedisCluster(t *testing.T) {
	if os.Getenv("LEADFLOW_SKIP_CLUSTER") == "1" {
		t.Skip("LEADFLOW_SKIP_CLUSTER=1")
	}
	addrs := startCluster(t)
	url := "redis+cluster://" + strings.Join(addrs, ",")
	s, _ := suitetest.Boot(t, url, suitetest.Options{})
	var log bytes.Buffer
	rep, err := load.Run(context.Background(), load.Config{
		Addrs: client.FromPeers(s.Peers()), Token: platform.DevToken,
		Concurrency: 8, Count: 60, Further: 0.2, AssignWait: 30 * time.Second,
	}, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		dead  int64
		notes []string
	)
	err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, note := load.DeadLetters(ctx, m)
		if n < 0 {
			return fmt.Errorf("%s", note)
		}
		mu.Lock()
		defer mu.Unlock()
		dead += n
		notes = append(notes, note)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Redis Cluster (%s): %d leads answered OK, accounted for %d (assigned %d, queued %d), taken further %d, duplicates %d, dead letters %d; errors %v",
		strings.Join(addrs, ","), rep.Accepted, rep.Assigned+rep.Queued+rep.Nurturing+rep.BadFit, rep.Assigned, rep.Queued, rep.Further, rep.Duplicates, dead, rep.Errors)
	if rep.DeadLetters = dead; !rep.OK() {
		t.Errorf("conservation failed on Redis Cluster:\n%s\n%v", out.String(), notes)
	}
	if rep.Failed != 0 {
		t.Errorf("%d SubmitLead calls failed on Redis Cluster: %v", rep.Failed, rep.Errors)
	}
	for k := range rep.Errors {
		if !strings.Contains(k, "NotFound") && !strings.Contains(k, "FailedPrecondition") {
			t.Errorf("calls failed on Redis Cluster: %s x%d", k, rep.Errors[k])
		}
	}
}
