// Package platformtest is the test kit every LeadFlow test uses: a real
// redis-server on a free loopback port, an in-memory span exporter, and a
// helper that serves a service on a loopback listener.
package platformtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server process owned by one test.
type Redis struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	aof  bool

	mu  sync.Mutex
	srv *server
}

// RedisOption configures StartRedis.
type RedisOption func(*Redis)

// WithAOF turns on the append-only file (appendfsync always), so a killed and
// restarted server keeps every acknowledged write.
func WithAOF() RedisOption { return func(r *Redis) { r.aof = true } }

// RedisBinary finds redis-server: $LEADFLOW_REDIS_SERVER, then PATH, then the
// Debian location.
func RedisBinary() (string, error) {
	return findBinary("redis-server", "LEADFLOW_REDIS_SERVER", "install it (make test does: apt-get install -y redis-server)")
}

// findBinary looks for name in $env, then PATH, then /usr/bin.
func findBinary(name, env, install string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name, nil
	}
	return "", fmt.Errorf("%s not found: %s or set %s", name, install, env)
}

// StartRedis starts a fresh redis-server on a free loopback port and stops it
// when the test ends. It fails the test when no redis-server can be found:
// LeadFlow's tests never fall back to a fake.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	bin, err := RedisBinary()
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{t: t, bin: bin, dir: t.TempDir()}
	for _, o := range opts {
		o(r)
	}
	r.port = FreePort(t)
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is host:port of the server.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL is the redis:// URL of the server, as services take it.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Client returns a plain client for the test's own checks; closed at cleanup.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start (re)starts the server on the same port and data directory and waits
// until it answers; the answering server must be the process just started.
func (r *Redis) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return
	}
	args := []string{
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--save", "", "--daemonize", "no",
		"--protected-mode", "yes", "--logfile", filepath.Join(r.dir, "redis.log"),
	}
	if r.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	srv, err := launch(r.bin, r.dir, r.Addr(), args)
	if err != nil {
		r.t.Fatalf("redis-server on %s: %v", r.Addr(), err)
	}
	r.srv = srv
}

// server is a running redis-server process.
type server struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited
}

// launch starts redis-server with args and waits until the server answering
// on addr is that very process (INFO server process_id). On failure the
// process is killed and the error carries dir/redis.log.
func launch(bin, dir, addr string, args []string) (*server, error) {
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	srv := &server{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(srv.exited)
	}()
	if err := waitForPID(addr, cmd.Process.Pid, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return srv, nil
}

// stop sends sig and waits (at most 10 s) until the process has exited, so
// its port can be bound again and its data directory is no longer written
// (a test's TempDir is removed right after).
func (s *server) stop(sig os.Signal) {
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Kill stops the server with SIGKILL (no shutdown save), as a crash would.
func (r *Redis) Kill() { r.stop(os.Kill) }

// Stop stops the server gracefully.
func (r *Redis) Stop() { r.stop(os.Interrupt) }

// Restart kills and starts the server again on the same port and data.
func (r *Redis) Restart() {
	r.Kill()
	r.Start()
}

func (r *Redis) stop(sig os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv == nil {
		return
	}
	r.srv.stop(sig)
	r.srv = nil
}

// waitForPID polls INFO server until the server at addr reports pid, so a
// test never talks to a stray server that happened to hold the port.
func waitForPID(addr string, pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		got, err := serverPID(addr)
		if err == nil {
			if got == pid {
				return nil
			}
			return fmt.Errorf("port answered by redis process %d, not the one started (%d)", got, pid)
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %w", timeout, last)
}

func serverPID(addr string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("INFO server has no process_id")
}
