package platform

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
