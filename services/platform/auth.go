package platform

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/leadflow/leadflow/services/platform/identity"
)

// DevToken is the token of the development policy that applies when no
// policy is configured.
const DevToken = "leadflow-dev"

// AuthPolicy maps bearer tokens to caller identities and the methods each may call.
type AuthPolicy struct {
	Callers []AuthCaller `json:"callers"`
	// byToken is keyed by the token's SHA-256, so lookups take the same time
	// whatever the prefix a guess shares with a real token.
	byToken map[[32]byte]*AuthCaller
	dev     bool
}

// AuthCaller is one entry of the policy.
type AuthCaller struct {
	Identity string `json:"identity"`
	Token    string `json:"token"`
	// Allow lists full method names ("/leadflow.routing.v1.RoutingService/RouteLead"),
	// whole services ("/leadflow.routing.v1.RoutingService/*") or "*".
	Allow []string `json:"allow"`
}

// DevPolicy lets the dev token call everything.
func DevPolicy() *AuthPolicy {
	p := &AuthPolicy{Callers: []AuthCaller{{Identity: "dev", Token: DevToken, Allow: []string{"*"}}}, dev: true}
	_ = p.index()
	return p
}

// ParseAuthPolicy parses the JSON policy and checks it.
func ParseAuthPolicy(data []byte) (*AuthPolicy, error) {
	var p AuthPolicy
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("auth policy: %w", err)
	}
	if err := p.index(); err != nil {
		return nil, err
	}
	return &p, nil
}

// LoadAuthPolicy reads the policy from LEADFLOW_AUTH_TOKENS or the file in
// LEADFLOW_AUTH_TOKENS_FILE; with neither it is the dev policy.
func LoadAuthPolicy(b Base) (*AuthPolicy, error) {
	switch {
	case b.AuthTokens != "" && b.AuthTokensFile != "":
		return nil, errors.New("LEADFLOW_AUTH_TOKENS and LEADFLOW_AUTH_TOKENS_FILE: set one, not both")
	case b.AuthTokens != "":
		p, err := ParseAuthPolicy([]byte(b.AuthTokens))
		if err != nil {
			return nil, fmt.Errorf("LEADFLOW_AUTH_TOKENS: %w", err)
		}
		return p, nil
	case b.AuthTokensFile != "":
		data, err := os.ReadFile(b.AuthTokensFile)
		if err != nil {
			return nil, fmt.Errorf("LEADFLOW_AUTH_TOKENS_FILE: %w", err)
		}
		p, err := ParseAuthPolicy(data)
		if err != nil {
			return nil, fmt.Errorf("LEADFLOW_AUTH_TOKENS_FILE: %w", err)
		}
		return p, nil
	default:
		return DevPolicy(), nil
	}
}

// IsDev reports whether this is the built-in development policy.
func (p *AuthPolicy) IsDev() bool { return p.dev }

func (p *AuthPolicy) index() error {
	p.byToken = make(map[[32]byte]*AuthCaller, len(p.Callers))
	var errs []error
	for i := range p.Callers {
		c := &p.Callers[i]
		if c.Identity == "" {
			errs = append(errs, fmt.Errorf("auth policy: callers[%d].identity: empty", i))
		}
		if len(c.Token) < 8 {
			errs = append(errs, fmt.Errorf("auth policy: callers[%d].token: shorter than 8 characters", i))
		}
		for j, a := range c.Allow {
			if a != "*" && !strings.HasPrefix(a, "/") {
				errs = append(errs, fmt.Errorf("auth policy: callers[%d].allow[%d]: %q is not \"*\", \"/pkg.Service/*\" or \"/pkg.Service/Method\"", i, j, a))
			}
		}
		h := sha256.Sum256([]byte(c.Token))
		if _, dup := p.byToken[h]; dup {
			errs = append(errs, fmt.Errorf("auth policy: callers[%d].token: used twice", i))
		}
		p.byToken[h] = c
	}
	return errors.Join(errs...)
}

// Authorize returns the identity for a token and method, or a status error:
// Unauthenticated for a missing or unknown token, PermissionDenied for a
// method the caller may not call.
func (p *AuthPolicy) Authorize(token, method string) (string, error) {
	if token == "" {
		return "", status.Error(codes.Unauthenticated, "missing bearer token (metadata \"authorization: Bearer <token>\")")
	}
	c, ok := p.byToken[sha256.Sum256([]byte(token))]
	if !ok {
		return "", status.Error(codes.Unauthenticated, "unknown bearer token")
	}
	for _, a := range c.Allow {
		if a == "*" || a == method || (strings.HasSuffix(a, "/*") && strings.HasPrefix(method, strings.TrimSuffix(a, "*"))) {
			return c.Identity, nil
		}
	}
	return "", status.Errorf(codes.PermissionDenied, "caller %q may not call %s", c.Identity, method)
}

// Caller is the authenticated identity of the request in ctx ("" for
// internal work such as a job worker).
func Caller(ctx context.Context) string { return identity.From(ctx) }

// publicMethod: health and reflection need no token (probes and grpcurl discovery).
func publicMethod(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		if t, ok := strings.CutPrefix(v, "bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}

func (p *AuthPolicy) authenticate(ctx context.Context, method string) (context.Context, error) {
	if publicMethod(method) {
		return ctx, nil
	}
	id, err := p.Authorize(bearer(ctx), method)
	if err != nil {
		return nil, err
	}
	return identity.With(ctx, id), nil
}

func (p *AuthPolicy) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := p.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (p *AuthPolicy) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := p.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// bearerCreds sends the client token on every call. Transport security is the
// network's (mTLS in the mesh), so it does not insist on TLS itself.
type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearerCreds) RequireTransportSecurity() bool { return false }
