// Package platform is the one runtime every LeadFlow service runs on: typed
// configuration, the gRPC server with its interceptors, health, reflection,
// telemetry, Redis, authentication, clients for other services, and an
// orderly shutdown. A service's main is platform.Main plus its builder.
package platform

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// DefaultPorts are the gRPC ports of the five services.
var DefaultPorts = map[string]int{
	"capture":   7001,
	"scoring":   7002,
	"routing":   7003,
	"pipeline":  7004,
	"reporting": 7005,
}

// Peers are the addresses of the other services.
type Peers struct {
	Capture   string `env:"LEADFLOW_CAPTURE_ADDR" envDefault:"127.0.0.1:7001"`
	Scoring   string `env:"LEADFLOW_SCORING_ADDR" envDefault:"127.0.0.1:7002"`
	Routing   string `env:"LEADFLOW_ROUTING_ADDR" envDefault:"127.0.0.1:7003"`
	Pipeline  string `env:"LEADFLOW_PIPELINE_ADDR" envDefault:"127.0.0.1:7004"`
	Reporting string `env:"LEADFLOW_REPORTING_ADDR" envDefault:"127.0.0.1:7005"`
}

// Base is the configuration every service reads, from LEADFLOW_* variables.
type Base struct {
	// Service is the service name ("capture", …); set by the code, not the environment.
	Service string
	// GRPCAddr is the listen address; default ":<the service's port>".
	GRPCAddr string `env:"LEADFLOW_GRPC_ADDR"`
	// RedisURL: redis://, rediss://, redis+cluster:// or redis+sentinel://.
	RedisURL string `env:"LEADFLOW_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	Peers    Peers
	// AuthTokens is the caller policy as JSON; AuthTokensFile names a file with it.
	AuthTokens     string `env:"LEADFLOW_AUTH_TOKENS"`
	AuthTokensFile string `env:"LEADFLOW_AUTH_TOKENS_FILE"`
	// ClientToken is the bearer token this service presents to the others.
	ClientToken string `env:"LEADFLOW_CLIENT_TOKEN" envDefault:"leadflow-dev"`
	// ShutdownTimeout bounds the graceful stop; calls still running then are cut.
	ShutdownTimeout time.Duration `env:"LEADFLOW_SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// ShutdownDrain is how long the server keeps serving after readiness went
	// NOT_SERVING, so balancers watching health move away before connections
	// are refused. 0 stops at once.
	ShutdownDrain time.Duration `env:"LEADFLOW_SHUTDOWN_DRAIN" envDefault:"1s"`
	// MaxDeadline caps the deadline of incoming unary calls (and is the
	// deadline of calls that came without one).
	MaxDeadline time.Duration `env:"LEADFLOW_MAX_DEADLINE" envDefault:"30s"`
	// ClientTimeout is the deadline of calls to other services when the
	// context has none.
	ClientTimeout time.Duration `env:"LEADFLOW_CLIENT_TIMEOUT" envDefault:"5s"`
	// MaxMessageBytes caps a received message.
	MaxMessageBytes int `env:"LEADFLOW_MAX_MESSAGE_BYTES" envDefault:"4194304"`
	// HealthInterval is how often readiness pings Redis.
	HealthInterval time.Duration `env:"LEADFLOW_HEALTH_INTERVAL" envDefault:"1s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LEADFLOW_LOG_LEVEL" envDefault:"info"`
}

// LoadBase reads the shared configuration for service. A malformed value is an
// error that names the variable.
func LoadBase(service string) (Base, error) {
	var b Base
	if err := LoadEnv(&b); err != nil {
		return Base{}, err
	}
	b.Service = service
	if b.GRPCAddr == "" {
		port, ok := DefaultPorts[service]
		if !ok {
			return Base{}, fmt.Errorf("LEADFLOW_GRPC_ADDR: not set and %q has no default port", service)
		}
		b.GRPCAddr = fmt.Sprintf(":%d", port)
	}
	return b, b.Validate()
}

// Validate checks values env parsing cannot.
func (b Base) Validate() error {
	var errs []error
	if b.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("LEADFLOW_SHUTDOWN_TIMEOUT: must be positive"))
	}
	if b.ShutdownDrain < 0 {
		errs = append(errs, errors.New("LEADFLOW_SHUTDOWN_DRAIN: must not be negative"))
	}
	if b.MaxDeadline <= 0 {
		errs = append(errs, errors.New("LEADFLOW_MAX_DEADLINE: must be positive"))
	}
	if b.ClientTimeout <= 0 {
		errs = append(errs, errors.New("LEADFLOW_CLIENT_TIMEOUT: must be positive"))
	}
	if b.HealthInterval <= 0 {
		errs = append(errs, errors.New("LEADFLOW_HEALTH_INTERVAL: must be positive"))
	}
	if b.MaxMessageBytes < 1024 {
		errs = append(errs, errors.New("LEADFLOW_MAX_MESSAGE_BYTES: must be at least 1024"))
	}
	switch strings.ToLower(b.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LEADFLOW_LOG_LEVEL: %q is not debug, info, warn or error", b.LogLevel))
	}
	return errors.Join(errs...)
}

// LoadEnv fills a struct from the environment by its `env` tags (see
// github.com/caarlos0/env); errors name the variable at fault.
func LoadEnv(cfg any) error {
	err := env.Parse(cfg)
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	vars := envVarsByField(reflect.TypeOf(cfg))
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && vars[pe.Name] != "" {
			errs = append(errs, fmt.Errorf("%s: invalid %s: %w", vars[pe.Name], pe.Type, pe.Err))
			continue
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// envVarsByField maps struct field names to their variables (env's parse
// errors name only the field).
func envVarsByField(t reflect.Type) map[string]string {
	out := map[string]string{}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			out[f.Name] = name
		}
		if f.Type.Kind() == reflect.Struct {
			for k, v := range envVarsByField(f.Type) {
				out[k] = v
			}
		}
	}
	return out
}
