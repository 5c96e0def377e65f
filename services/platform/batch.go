package platform

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// ServeBatch serves the n items of a batch call (UpsertLeads, RouteLeads)
// at once. Item i runs in ctx joined to traceparent(i) when that is set, so
// its spans nest under the caller's step in its own lead's trace, and its
// error comes back as the status the single-item call would have answered
// (mapped and logged as the interceptors map a call's error); nil when it
// succeeded.
func ServeBatch(ctx context.Context, logger *slog.Logger, n int, traceparent func(i int) string, serve func(ctx context.Context, i int) error) []error {
	method, _ := grpc.Method(ctx)
	errs := make([]error, n)
	var wg sync.WaitGroup
	one := func(i int) {
		ictx := ctx
		if tp := traceparent(i); tp != "" {
			ictx = leadtrace.ContextWith(ctx, tp)
		}
		defer func() {
			// The recovery interceptor guards the call's goroutine only.
			if r := recover(); r != nil {
				logger.ErrorContext(ictx, "panic serving a batch item", "method", method, "panic", fmt.Sprint(r))
				errs[i] = status.Error(codes.Internal, "internal error")
			}
		}()
		errs[i] = ToStatus(ictx, logger, method, serve(ictx, i))
	}
	// The last item runs on the call's own goroutine, whose stack has
	// grown already: a batch of one (most batches at low rates) starts no
	// goroutine.
	for i := range n - 1 {
		wg.Go(func() { one(i) })
	}
	if n > 0 {
		one(n - 1)
	}
	wg.Wait()
	return errs
}
