package k8s_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// This file checks deploy/: the compose file (loaded and validated against
// the Compose specification by compose-go, the library docker compose uses),
// the Collector configuration, and the Dockerfile's targets.

const (
	composeFile      = "../deploy/compose.yaml"
	dockerfile       = "../deploy/Dockerfile"
	collectorConfig  = "../deploy/otelcol-config.yaml"
	collectorInK8s   = "components/otel-collector/otelcol-config.yaml"
	healthProbeInImg = "/usr/local/bin/grpc_health_probe"
)

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithName("leadflow"),
		cli.WithProfiles([]string{"demo"}),
		cli.WithEnv([]string{}),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose file does not load: %v", err)
	}
	return p
}

func TestCompose(t *testing.T) {
	p := loadCompose(t)
	stages := dockerStages(t)
	for _, s := range services {
		t.Run(s.name, func(t *testing.T) {
			svc, ok := p.Services[s.name]
			if !ok {
				t.Fatalf("no compose service %s", s.name)
			}
			if svc.Build == nil || svc.Build.Target != s.name || !strings.HasSuffix(svc.Build.Dockerfile, "deploy/Dockerfile") {
				t.Errorf("build %+v, want deploy/Dockerfile target %s", svc.Build, s.name)
			} else if !stages[s.name] {
				t.Errorf("Dockerfile has no stage %s", s.name)
			}
			env := map[string]string{}
			for k, v := range svc.Environment {
				if v == nil {
					t.Errorf("%s has no value", k)
					continue
				}
				env[k] = *v
				checkVar(t, s.name, "compose "+s.name, k, *v, true)
			}
			if _, port, err := net.SplitHostPort(env["LEADFLOW_GRPC_ADDR"]); err != nil || port != strconv.Itoa(int(s.port)) {
				t.Errorf("LEADFLOW_GRPC_ADDR=%q, want port %d", env["LEADFLOW_GRPC_ADDR"], s.port)
			}
			if env["OTEL_SERVICE_NAME"] != s.name {
				t.Errorf("OTEL_SERVICE_NAME=%q", env["OTEL_SERVICE_NAME"])
			}
			for _, peer := range services {
				v := env["LEADFLOW_"+strings.ToUpper(peer.name)+"_ADDR"]
				if v != peer.name+":"+strconv.Itoa(int(peer.port)) {
					t.Errorf("LEADFLOW_%s_ADDR=%q, want %s:%d", strings.ToUpper(peer.name), v, peer.name, peer.port)
				}
			}
			u, err := url.Parse(env["LEADFLOW_REDIS_URL"])
			if err != nil || u.Hostname() != "redis" {
				t.Errorf("LEADFLOW_REDIS_URL=%q, want the redis service", env["LEADFLOW_REDIS_URL"])
			}
			if u, err := url.Parse(env["OTEL_EXPORTER_OTLP_ENDPOINT"]); err != nil || u.Host != "otel-collector:4317" || env["OTEL_EXPORTER_OTLP_PROTOCOL"] != "grpc" {
				t.Errorf("OTLP endpoint %q protocol %q, want otel-collector:4317 over grpc", env["OTEL_EXPORTER_OTLP_ENDPOINT"], env["OTEL_EXPORTER_OTLP_PROTOCOL"])
			}

			// Health: the probe binary the image carries, on the service's
			// port, asking for the proto service name.
			hc := svc.HealthCheck
			if hc == nil || len(hc.Test) < 2 {
				t.Fatalf("no healthcheck")
			}
			test := strings.Join(hc.Test, " ")
			for _, want := range []string{"CMD " + healthProbeInImg, "-addr=127.0.0.1:" + strconv.Itoa(int(s.port)), "-service=" + s.proto} {
				if !strings.Contains(test, want) {
					t.Errorf("healthcheck %q lacks %q", test, want)
				}
			}
			if d := svc.DependsOn["redis"]; d.Condition != types.ServiceConditionHealthy {
				t.Errorf("starts before Redis is healthy (%+v)", d)
			}

			// Hardening and shutdown.
			if !svc.ReadOnly || !slices.Equal(svc.CapDrop, []string{"ALL"}) || !slices.Contains(svc.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("read_only %v cap_drop %v security_opt %v", svc.ReadOnly, svc.CapDrop, svc.SecurityOpt)
			}
			shutdown, err := time.ParseDuration(env["LEADFLOW_SHUTDOWN_TIMEOUT"])
			if err != nil {
				shutdown, _ = time.ParseDuration(readVars(t)["LEADFLOW_SHUTDOWN_TIMEOUT"].Default)
			}
			if svc.StopGracePeriod == nil || time.Duration(*svc.StopGracePeriod) <= shutdown {
				t.Errorf("stop_grace_period %v <= LEADFLOW_SHUTDOWN_TIMEOUT %s", svc.StopGracePeriod, shutdown)
			}
			var published bool
			for _, port := range svc.Ports {
				if port.Target == uint32(s.port) && port.HostIP == "127.0.0.1" {
					published = true
				}
			}
			if !published {
				t.Errorf("port %d not published on 127.0.0.1 (for the CLI on the host)", s.port)
			}
		})
	}

	redis := p.Services["redis"]
	if cmd := strings.Join(redis.Command, " "); !strings.Contains(cmd, "--appendonly yes") {
		t.Errorf("Redis runs %q: append-only file off", cmd)
	}
	if redis.HealthCheck == nil {
		t.Errorf("Redis has no healthcheck")
	}
	var dataVolume bool
	for _, v := range redis.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/data" {
			dataVolume = true
		}
	}
	if !dataVolume {
		t.Errorf("Redis /data is not a named volume")
	}

	col := p.Services["otel-collector"]
	var mounted bool
	for _, v := range col.Volumes {
		if strings.HasSuffix(v.Source, "deploy/otelcol-config.yaml") && slices.Contains(col.Command, "--config="+v.Target) && v.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("the Collector does not run deploy/otelcol-config.yaml (command %v, volumes %+v)", col.Command, col.Volumes)
	}
	if _, ok := p.Services["jaeger"]; !ok {
		t.Errorf("no trace viewer (jaeger)")
	}
	if demo, ok := p.Services["demo"]; !ok || demo.Build == nil || demo.Build.Target != "leadflow" || !stages["leadflow"] {
		t.Errorf("no demo service built from the leadflow target")
	}

	// The dev cluster runs the same third-party images as compose.
	dev := load(t, "overlays/dev")
	for compose, deploy := range map[string]string{"redis": "redis", "otel-collector": "otel-collector", "jaeger": "jaeger"} {
		d := get[appsv1.Deployment](t, dev, "Deployment", deploy)
		if img := d.Spec.Template.Spec.Containers[0].Image; img != p.Services[compose].Image {
			t.Errorf("%s: compose runs %s, the dev overlay %s", compose, p.Services[compose].Image, img)
		}
	}
}

// dockerStages lists the Dockerfile's stage names and checks how each
// LeadFlow binary is built.
func dockerStages(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines.
	text := strings.ReplaceAll(string(src), "\\\n", " ")
	stages := map[string]bool{}
	from := regexp.MustCompile(`(?i)^FROM\s+(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)`)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if m := from.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			stages[m[2]] = true
		}
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), "\\\n", " ")
	stages := dockerStages(t)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "GOTOOLCHAIN=local", "gcr.io/distroless/static-debian12:nonroot", "USER 65532:65532", "COPY --from=healthprobe /out/grpc_health_probe " + healthProbeInImg} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	type bin struct{ name, pkg string }
	bins := []bin{{"leadflow", "./cmd/leadflow"}}
	for _, s := range services {
		bins = append(bins, bin{s.name, "./services/" + s.name})
	}
	for _, b := range bins {
		if !stages[b.name] || !stages["build-"+b.name] {
			t.Errorf("no stages %s and build-%s", b.name, b.name)
			continue
		}
		build := regexp.MustCompile(`RUN --mount=type=cache,target=/go/pkg/mod\s+--mount=type=cache,target=/root/.cache/go-build\s+go build -ldflags="-s -w" -o /out/` + b.name + ` ` + regexp.QuoteMeta(b.pkg) + `\n`)
		if !build.MatchString(text) {
			t.Errorf("no cached, stripped `go build -o /out/%s %s`", b.name, b.pkg)
		}
		if !strings.Contains(text, "COPY --from=build-"+b.name+" /out/"+b.name+" /usr/local/bin/"+b.name+"\n") ||
			!strings.Contains(text, `ENTRYPOINT ["/usr/local/bin/`+b.name+`"]`) {
			t.Errorf("stage %s does not copy and run /usr/local/bin/%s", b.name, b.name)
		}
		if _, err := os.Stat("../" + strings.TrimPrefix(b.pkg, "./")); err != nil {
			t.Logf("NOTE: %s does not exist yet (being written); the %s image cannot build until it does", b.pkg, b.name)
		}
	}
	for _, s := range services {
		if !strings.Contains(text, "FROM runtime AS "+s.name+"\n") || !regexp.MustCompile(`(?s)FROM runtime AS `+s.name+`\n.*?EXPOSE `+strconv.Itoa(int(s.port))+`\n`).MatchString(text) {
			t.Errorf("stage %s: not on the runtime image or does not EXPOSE %d", s.name, s.port)
		}
	}
	// leadflow is the default target: the last stage.
	last := regexp.MustCompile(`(?m)^FROM .* AS (\S+)$`).FindAllStringSubmatch(text, -1)
	if len(last) == 0 || last[len(last)-1][1] != "leadflow" {
		t.Errorf("the last stage (the default target) is not leadflow")
	}
}

// collector is the part of the Collector configuration the checks read.
type collector struct {
	Extensions map[string]any `json:"extensions"`
	Receivers  map[string]any `json:"receivers"`
	Processors map[string]any `json:"processors"`
	Exporters  map[string]struct {
		Endpoint string `json:"endpoint"`
	} `json:"exporters"`
	Service struct {
		Extensions []string `json:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `json:"receivers"`
			Processors []string `json:"processors"`
			Exporters  []string `json:"exporters"`
		} `json:"pipelines"`
	} `json:"service"`
}

type redaction struct {
	AllowAllKeys  bool     `json:"allow_all_keys"`
	IgnoredKeys   []string `json:"ignored_keys"`
	BlockedValues []string `json:"blocked_values"`
	Summary       string   `json:"summary"`
}

type attributes struct {
	Actions []struct {
		Action  string `json:"action"`
		Key     string `json:"key"`
		Pattern string `json:"pattern"`
	} `json:"actions"`
}

func TestCollectorConfig(t *testing.T) {
	raw, err := os.ReadFile(collectorConfig)
	if err != nil {
		t.Fatal(err)
	}
	if inK8s, err := os.ReadFile(collectorInK8s); err != nil || !bytes.Equal(raw, inK8s) {
		t.Fatalf("%s differs from %s (err %v): copy it (kustomize cannot read files outside k8s/)", collectorInK8s, collectorConfig, err)
	}
	var c collector
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Service.Pipelines) == 0 {
		t.Fatal("no pipelines")
	}
	for name, p := range c.Service.Pipelines {
		if len(p.Processors) == 0 || p.Processors[0] != "memory_limiter" {
			t.Errorf("pipeline %s: processors %v, memory_limiter must be first", name, p.Processors)
		}
		if p.Processors[len(p.Processors)-1] != "batch" {
			t.Errorf("pipeline %s: batch is not last", name)
		}
		var attrs, redact bool
		for _, pr := range p.Processors {
			if _, ok := c.Processors[pr]; !ok {
				t.Errorf("pipeline %s: processor %s not defined", name, pr)
			}
			attrs = attrs || strings.HasPrefix(pr, "attributes/")
			redact = redact || strings.HasPrefix(pr, "redaction/")
		}
		if !attrs || !redact {
			t.Errorf("pipeline %s has no personal-data guard (attributes and redaction)", name)
		}
		for _, r := range p.Receivers {
			if _, ok := c.Receivers[r]; !ok {
				t.Errorf("pipeline %s: receiver %s not defined", name, r)
			}
		}
		for _, e := range p.Exporters {
			if _, ok := c.Exporters[e]; !ok {
				t.Errorf("pipeline %s: exporter %s not defined", name, e)
			}
		}
	}
	if tr, ok := c.Service.Pipelines["traces"]; !ok || !slices.Contains(tr.Exporters, "otlp/jaeger") || c.Exporters["otlp/jaeger"].Endpoint != "jaeger:4317" {
		t.Errorf("traces do not go to the viewer at jaeger:4317")
	}
	for _, e := range c.Service.Extensions {
		if _, ok := c.Extensions[e]; !ok {
			t.Errorf("extension %s not defined", e)
		}
	}

	// The value patterns, compiled with Go's regexp (RE2, the engine the
	// Collector uses), mask personal data and leave what an SRE needs.
	var red redaction
	reJSON(t, c.Processors["redaction/pii"], &red)
	if !red.AllowAllKeys || !slices.Contains(red.IgnoredKeys, "leadflow.lead.id") || len(red.BlockedValues) == 0 {
		t.Errorf("redaction/pii: %+v", red)
	}
	var values []*regexp.Regexp
	for _, p := range red.BlockedValues {
		re, err := regexp.Compile(p)
		if err != nil {
			t.Fatalf("blocked value %q: %v", p, err)
		}
		values = append(values, re)
	}
	masked := func(s string) bool {
		for _, re := range values {
			if re.MatchString(s) {
				return true
			}
		}
		return false
	}
	for _, pii := range []string{
		"jane.doe@example.com", "contact: Jane.Doe+promo@mail.example.co.uk",
		"+4915112345678", "+1 415 555 0100", "+44 (20) 7946 0958", "+33-1-23-45-67-89", "(415) 555-0100",
	} {
		if !masked(pii) {
			t.Errorf("redaction/pii lets %q through", pii)
		}
	}
	for _, ok := range []string{
		"019a8a4e-6c1f-7d2b-9f00-1a2b3c4d5e6f", // a lead id (UUIDv7)
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"2026-11-24T05:18:52.123+01:00", "1.5s", "lf:{events}:stream", "lf:routing:{team:42}:queue",
		"/leadflow.capture.v1.CaptureService/SubmitLead", "10.0.1.10:6379", "12345 EUR", "MARKETING_QUALIFIED",
	} {
		if masked(ok) {
			t.Errorf("redaction/pii masks %q, which is not personal data", ok)
		}
	}

	var at attributes
	reJSON(t, c.Processors["attributes/pii"], &at)
	var keyPatterns []*regexp.Regexp
	keys := map[string]bool{}
	for _, a := range at.Actions {
		if a.Action != "delete" {
			t.Errorf("attributes/pii: action %s", a.Action)
		}
		if a.Pattern != "" {
			keyPatterns = append(keyPatterns, regexp.MustCompile(a.Pattern))
		}
		if a.Key != "" {
			keys[a.Key] = true
		}
	}
	deleted := func(k string) bool {
		if keys[k] {
			return true
		}
		for _, re := range keyPatterns {
			if re.MatchString(k) {
				return true
			}
		}
		return false
	}
	for _, k := range []string{"email", "lead.email", "contact.email_address", "phone", "phone_number", "contact.phone", "mobile",
		"first_name", "lastName", "full_name", "user.email", "user.full_name", "db.statement", "db.query.text"} {
		if !deleted(k) {
			t.Errorf("attributes/pii keeps %q", k)
		}
	}
	for _, k := range []string{"leadflow.lead.id", "leadflow.outcome", "rpc.method", "rpc.service", "rpc.grpc.status_code",
		"db.system", "db.operation.name", "server.address", "network.peer.address", "service.name", "messaging.destination.name"} {
		if deleted(k) {
			t.Errorf("attributes/pii deletes %q, which an SRE needs", k)
		}
	}
}

func reJSON(t *testing.T, in any, out any) {
	t.Helper()
	b, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, out); err != nil {
		t.Fatalf("%T: %v", out, err)
	}
}
