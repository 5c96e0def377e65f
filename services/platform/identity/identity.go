// Package identity carries the authenticated caller through a context. It is
// its own package so that events and jobs can read the caller without
// importing the gRPC runtime.
package identity

import "context"

type key struct{}

// With returns ctx carrying the caller identity.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From is the caller identity in ctx, or "" for internal work.
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
