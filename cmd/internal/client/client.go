// Package client connects the leadflow CLI to the five services: one gRPC
// connection each, the bearer token on every call, readiness checks and
// readable errors.
package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	opsv1 "github.com/leadflow/leadflow/gen/go/leadflow/ops/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
)

// Addrs are the dial addresses of the five services.
type Addrs struct {
	Capture, Scoring, Routing, Pipeline, Reporting string
}

// DefaultAddrs are the all-in-one's default ports on loopback.
func DefaultAddrs() Addrs {
	return Addrs{Capture: "127.0.0.1:7001", Scoring: "127.0.0.1:7002", Routing: "127.0.0.1:7003", Pipeline: "127.0.0.1:7004", Reporting: "127.0.0.1:7005"}
}

// FromPeers turns platform peers into Addrs.
func FromPeers(p platform.Peers) Addrs {
	return Addrs{Capture: p.Capture, Scoring: p.Scoring, Routing: p.Routing, Pipeline: p.Pipeline, Reporting: p.Reporting}
}

// JobServices are the services that have job queues (JobsService), in the
// order a lead meets them.
var JobServices = []string{"capture", "scoring", "routing", "pipeline"}

// Clients are the five service clients.
type Clients struct {
	Capture   capturev1.CaptureServiceClient
	Scoring   scoringv1.ScoringServiceClient
	Routing   routingv1.RoutingServiceClient
	Pipeline  pipelinev1.PipelineServiceClient
	Reporting reportingv1.ReportingServiceClient
	// Jobs is the operators' JobsService of each service that has job
	// queues, by service name (capture, scoring, routing, pipeline).
	Jobs map[string]opsv1.JobsServiceClient

	addrs Addrs
	conns map[string]*grpc.ClientConn
}

// Dial connects to the five services; token is sent as "authorization:
// Bearer <token>" on every call. Connections are lazy: nothing fails here
// when a service is down.
func Dial(addrs Addrs, token string) (*Clients, error) {
	c := &Clients{addrs: addrs, conns: map[string]*grpc.ClientConn{}}
	for name, addr := range map[string]string{
		"capture": addrs.Capture, "scoring": addrs.Scoring, "routing": addrs.Routing,
		"pipeline": addrs.Pipeline, "reporting": addrs.Reporting,
	} {
		conn, err := DialOne(addr, token)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("%s at %q: %w", name, addr, err)
		}
		c.conns[name] = conn
	}
	c.Capture = capturev1.NewCaptureServiceClient(c.conns["capture"])
	c.Scoring = scoringv1.NewScoringServiceClient(c.conns["scoring"])
	c.Routing = routingv1.NewRoutingServiceClient(c.conns["routing"])
	c.Pipeline = pipelinev1.NewPipelineServiceClient(c.conns["pipeline"])
	c.Reporting = reportingv1.NewReportingServiceClient(c.conns["reporting"])
	c.Jobs = map[string]opsv1.JobsServiceClient{}
	for _, name := range JobServices {
		c.Jobs[name] = opsv1.NewJobsServiceClient(c.conns[name])
	}
	return c, nil
}

// DialOne connects to one service with the bearer token.
func DialOne(addr, token string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		auth := "Bearer " + token
		opts = append(opts,
			grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
				return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", auth), method, req, reply, cc, o...)
			}),
			grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
				return streamer(metadata.AppendToOutgoingContext(ctx, "authorization", auth), desc, cc, method, o...)
			}))
	}
	return grpc.NewClient(addr, opts...)
}

// Close closes every connection.
func (c *Clients) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// Health is one service's readiness.
type Health struct {
	Service string
	Addr    string
	Status  string // SERVING, NOT_SERVING, or the error
	Ready   bool
}

// Names are the services in port order.
var Names = []string{"capture", "scoring", "routing", "pipeline", "reporting"}

// protoServices are the health names of the services' readiness, which
// follows Redis ("" is liveness and stays SERVING through a Redis outage).
var protoServices = map[string]string{
	"capture":   capturev1.CaptureService_ServiceDesc.ServiceName,
	"scoring":   scoringv1.ScoringService_ServiceDesc.ServiceName,
	"routing":   routingv1.RoutingService_ServiceDesc.ServiceName,
	"pipeline":  pipelinev1.PipelineService_ServiceDesc.ServiceName,
	"reporting": reportingv1.ReportingService_ServiceDesc.ServiceName,
}

// Addr is a service's dial address.
func (c *Clients) Addr(service string) string {
	switch service {
	case "capture":
		return c.addrs.Capture
	case "scoring":
		return c.addrs.Scoring
	case "routing":
		return c.addrs.Routing
	case "pipeline":
		return c.addrs.Pipeline
	case "reporting":
		return c.addrs.Reporting
	}
	return ""
}

// Check asks every service's grpc.health.v1 for its readiness.
func (c *Clients) Check(ctx context.Context) []Health {
	out := make([]Health, 0, len(Names))
	for _, name := range Names {
		h := Health{Service: name, Addr: c.Addr(name)}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := healthpb.NewHealthClient(c.conns[name]).Check(cctx, &healthpb.HealthCheckRequest{Service: protoServices[name]})
		cancel()
		if err != nil {
			h.Status = Describe(err)
		} else {
			h.Status = resp.GetStatus().String()
			h.Ready = resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		}
		out = append(out, h)
	}
	return out
}

// WaitReady waits until every service reports SERVING, or ctx ends (then the
// error names the services that are not ready and why).
func (c *Clients) WaitReady(ctx context.Context) error {
	for {
		hs := c.Check(ctx)
		var notReady []string
		for _, h := range hs {
			if !h.Ready {
				notReady = append(notReady, fmt.Sprintf("%s (%s): %s", h.Service, h.Addr, h.Status))
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("services not ready: %s", strings.Join(notReady, "; "))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Describe renders an error from a service: the status code, the message and
// every field violation (google.rpc.BadRequest), one per line.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString(st.Code().String())
	if msg := st.Message(); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	for _, v := range platform.FieldViolations(err) {
		fmt.Fprintf(&b, "\n  - %s: %s", v.Field, v.Description)
	}
	if st.Code() == codes.Unavailable {
		b.WriteString("\n  (is the service running? `leadflow dev` starts all five)")
	}
	return b.String()
}

// Error wraps a service error with the call that failed, rendered by Describe.
type Error struct {
	Call string
	Err  error
}

func (e *Error) Error() string { return e.Call + ": " + Describe(e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus lets status.FromError see the wrapped status.
func (e *Error) GRPCStatus() *status.Status {
	st, _ := status.FromError(e.Err)
	return st
}

// Wrap names the call of a service error; nil stays nil.
func Wrap(call string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Call: call, Err: err}
}
