package platform

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

type result struct {
	code int32
	msg  string
}

func (r result) GetCode() int32     { return r.code }
func (r result) GetMessage() string { return r.msg }

// A batch answer comes back as the single calls' errors; an item without a
// result is an error, never an OK.
func TestItemErrors(t *testing.T) {
	errs := ItemErrors(3, []result{{}, {code: int32(codes.FailedPrecondition), msg: "not routable"}})
	if errs[0] != nil {
		t.Errorf("OK item: %v", errs[0])
	}
	if st := status.Convert(errs[1]); st.Code() != codes.FailedPrecondition || st.Message() != "not routable" {
		t.Errorf("failed item: %v", errs[1])
	}
	if status.Code(errs[2]) != codes.Internal {
		t.Errorf("item without a result: %v", errs[2])
	}
}

func TestSendAlone(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.InvalidArgument, "leads[1].profile"), true},
		{status.Error(codes.Unimplemented, "unknown method"), true},
		{status.Error(codes.Unavailable, "down"), false},
		{errors.New("plain"), false},
		{nil, false},
	} {
		if got := SendAlone(c.err); got != c.want {
			t.Errorf("SendAlone(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// ServeBatch answers each item with its own status, in its own lead's
// trace, and a panicking item (the last one runs on the call's goroutine)
// answers Internal without taking the batch down.
func TestServeBatchAnswersEachItem(t *testing.T) {
	tps := []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"",
		"00-7bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	seen := make([]string, len(tps))
	errs := ServeBatch(context.Background(), slog.New(slog.DiscardHandler), len(tps), func(i int) string { return tps[i] }, func(ctx context.Context, i int) error {
		seen[i] = leadtrace.Traceparent(ctx)
		switch i {
		case 1:
			return InvalidArgument("bad item", FieldViolation{Field: "leads[1].email", Description: "required"})
		case 3:
			panic("boom")
		}
		return nil
	})
	if len(errs) != 4 || errs[0] != nil || errs[2] != nil {
		t.Fatalf("errs = %v, want OK for items 0 and 2", errs)
	}
	if status.Code(errs[1]) != codes.InvalidArgument || status.Code(errs[3]) != codes.Internal {
		t.Errorf("errs[1] = %v, errs[3] = %v; want InvalidArgument, Internal", errs[1], errs[3])
	}
	for i, tp := range tps {
		if seen[i] != tp {
			t.Errorf("item %d ran in trace %q, want %q", i, seen[i], tp)
		}
	}
	if errs := ServeBatch(context.Background(), slog.New(slog.DiscardHandler), 0, nil, nil); len(errs) != 0 {
		t.Errorf("empty batch = %v", errs)
	}
}
