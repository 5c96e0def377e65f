package platform

import (
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestLoadBaseDefaultsAndErrorsNameTheVariable(t *testing.T) {
	b, err := LoadBase("routing")
	if err != nil {
		t.Fatal(err)
	}
	if b.GRPCAddr != ":7003" || b.Peers.Scoring != "127.0.0.1:7002" || b.ClientToken != DevToken {
		t.Fatalf("defaults: %+v", b)
	}

	cases := map[string]string{
		"LEADFLOW_SHUTDOWN_TIMEOUT":  "soon",
		"LEADFLOW_MAX_DEADLINE":      "-1s",
		"LEADFLOW_MAX_MESSAGE_BYTES": "lots",
		"LEADFLOW_LOG_LEVEL":         "chatty",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			_, err := LoadBase("routing")
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %v does not name %s", err, name)
			}
		})
	}
	if _, err := LoadBase("unknown"); err == nil || !strings.Contains(err.Error(), "LEADFLOW_GRPC_ADDR") {
		t.Fatalf("unknown service without address: %v", err)
	}
}

func TestAuthPolicy(t *testing.T) {
	p, err := ParseAuthPolicy([]byte(`{"callers":[
		{"identity":"scoring","token":"scoring-token-1","allow":["/leadflow.routing.v1.RoutingService/*","/leadflow.pipeline.v1.PipelineService/CreateDealFromLead"]},
		{"identity":"ops","token":"ops-token-123","allow":["*"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		token, method, identity string
		code                    codes.Code
	}{
		{"scoring-token-1", "/leadflow.routing.v1.RoutingService/RouteLead", "scoring", codes.OK},
		{"scoring-token-1", "/leadflow.pipeline.v1.PipelineService/CreateDealFromLead", "scoring", codes.OK},
		{"scoring-token-1", "/leadflow.pipeline.v1.PipelineService/CloseWon", "", codes.PermissionDenied},
		{"scoring-token-1", "/leadflow.routing.v1.RoutingServiceX/RouteLead", "", codes.PermissionDenied},
		{"ops-token-123", "/anything.v1.Any/Thing", "ops", codes.OK},
		{"", "/leadflow.routing.v1.RoutingService/RouteLead", "", codes.Unauthenticated},
		{"guess", "/leadflow.routing.v1.RoutingService/RouteLead", "", codes.Unauthenticated},
	}
	for _, c := range cases {
		id, err := p.Authorize(c.token, c.method)
		if status.Code(err) != c.code || id != c.identity {
			t.Errorf("Authorize(%q, %s) = %q, %v; want %q, %v", c.token, c.method, id, err, c.identity, c.code)
		}
	}

	for _, bad := range []string{
		`{"callers":[{"identity":"","token":"long-enough","allow":["*"]}]}`,
		`{"callers":[{"identity":"a","token":"short","allow":["*"]}]}`,
		`{"callers":[{"identity":"a","token":"long-enough","allow":["RoutingService"]}]}`,
		`{"callers":[{"identity":"a","token":"long-enough"},{"identity":"b","token":"long-enough"}]}`,
		`{"caller":[]}`,
	} {
		if _, err := ParseAuthPolicy([]byte(bad)); err == nil {
			t.Errorf("policy %s accepted", bad)
		}
	}
}

func TestTuneGCDefaultsUnlessGOGCIsSet(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	gogc, had := os.LookupEnv("GOGC")
	t.Cleanup(func() {
		if had {
			_ = os.Setenv("GOGC", gogc)
		} else {
			_ = os.Unsetenv("GOGC")
		}
	})

	_ = os.Unsetenv("GOGC")
	TuneGC()
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Fatalf("GOGC unset: GC percent %d, want %d", got, DefaultGCPercent)
	}

	// The runtime applied a set GOGC at start; TuneGC must not override it.
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50)
	TuneGC()
	if got := debug.SetGCPercent(100); got != 50 {
		t.Fatalf("GOGC=50: GC percent %d, want 50 kept", got)
	}
}
