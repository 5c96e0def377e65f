package fault

import (
	"bytes"
	"context"
	"fmt"
	"os"
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

// The suite on a three-master Redis Cluster: full journeys through all five
// services, conservation holds and no dead letters on any master, which
// proves every multi-key operation stays within one hash slot (a cross-slot
// script or transaction fails with CROSSSLOT).
func TestSuiteOnRedisCluster(t *testing.T) {
	if os.Getenv("LEADFLOW_SKIP_CLUSTER") == "1" {
		t.Skip("LEADFLOW_SKIP_CLUSTER=1")
	}
	cluster := platformtest.StartRedisCluster(t)
	addrs := cluster.Addrs()
	s, _ := suitetest.Boot(t, cluster.URL(), suitetest.Options{})
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
	cc := cluster.Client()
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
