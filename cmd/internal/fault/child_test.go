package fault

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leadflow/leadflow/cmd/internal/client"
	"github.com/leadflow/leadflow/cmd/internal/suite"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// TestMain runs, when LEADFLOW_FAULT_CHILD is set, the five services as
// `leadflow dev --redis` runs them (internal/suite; SIGTERM/SIGINT shut them
// down gracefully) instead of the tests: the fault tests that kill or
// signal a process re-execute the test binary in this mode.
func TestMain(m *testing.M) {
	if redisURL := os.Getenv("LEADFLOW_FAULT_CHILD"); redisURL != "" {
		os.Exit(childSuite(redisURL))
	}
	os.Exit(m.Run())
}

func childSuite(redisURL string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := suite.Start(ctx, suite.Options{RedisURL: redisURL, Base: func(service string) (platform.Base, error) {
		b := platformtest.Base(service, redisURL)
		b.LogLevel = "error"
		// Longer than the 1s default: on a loaded CI machine with -race the
		// health update itself has taken 0.6 s to reach the watcher.
		b.ShutdownDrain = 3 * time.Second
		return b, nil
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p := s.Peers()
	fmt.Printf("ADDRS %s %s %s %s %s\n", p.Capture, p.Scoring, p.Routing, p.Pipeline, p.Reporting)
	<-s.Done()
	if err := s.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is the suite running in a child process.
type child struct {
	cmd   *exec.Cmd
	addrs client.Addrs
	done  chan error
}

// startChild starts the suite in a child process against redisURL and waits
// until it is ready.
func startChild(t *testing.T, redisURL string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Reporting takes back the entries a killed consumer read but did not
	// acknowledge after 5 s idle, not the default minute: the tests that
	// kill a process then wait seconds for it, not a minute or more (which
	// outlasted the killed-between-read-and-ack test's deadline whenever
	// the kill left such entries).
	cmd.Env = append(os.Environ(), "LEADFLOW_FAULT_CHILD="+redisURL,
		"LEADFLOW_REPORTING_CLAIM_MIN_IDLE=5s", "LEADFLOW_REPORTING_CLAIM_INTERVAL=1s")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ADDRS ") {
				lines <- sc.Text()
			}
		}
		ch.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	select {
	case l := <-lines:
		f := strings.Fields(l)
		ch.addrs = client.Addrs{Capture: f[1], Scoring: f[2], Routing: f[3], Pipeline: f[4], Reporting: f[5]}
	case <-time.After(60 * time.Second):
		t.Fatal("child suite did not start within 60 s")
	}
	c, err := client.Dial(ch.addrs, platform.DevToken)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return ch
}

// wait waits for the child to exit (bounded).
func (ch *child) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-ch.done:
		return err
	case <-time.After(d):
		t.Fatalf("child did not exit within %s", d)
		return nil
	}
}
