package platform

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leadflow/leadflow/services/platform/redisx"
)

// FieldViolation names one bad field of a request and what is wrong with it.
type FieldViolation struct {
	Field       string
	Description string
}

// InvalidArgument is an InvalidArgument status listing every violated field
// as google.rpc.BadRequest details.
func InvalidArgument(msg string, violations ...FieldViolation) error {
	st := status.New(codes.InvalidArgument, msg)
	if len(violations) == 0 {
		return st.Err()
	}
	br := &errdetails.BadRequest{}
	for _, v := range violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		return withDetails.Err()
	}
	return st.Err()
}

// FieldViolations returns the google.rpc.BadRequest violations of a status error.
func FieldViolations(err error) []FieldViolation {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out []FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return out
}

// ToStatus maps an error that is not already a status to one: Redis
// unreachable → Unavailable (safe to retry), context errors → their codes,
// anything else → logged and Internal, without leaking its text.
func ToStatus(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "call canceled")
	case redisx.IsUnavailable(err):
		logger.WarnContext(ctx, "storage unavailable", "method", method, "error", err.Error())
		return status.Error(codes.Unavailable, "storage unavailable; retry later")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	logger.ErrorContext(ctx, "internal error", "method", method, "error", err.Error())
	return status.Error(codes.Internal, "internal error")
}

// ItemStatus is the google.rpc.Code and message of one item of a batch
// call: what the single-item call would have answered with err (already a
// gRPC status, e.g. from a service's own status mapping).
func ItemStatus(err error) (int32, string) {
	st := status.Convert(err)
	return int32(st.Code()), st.Message()
}

// ItemResult is what a batch call answers per item (UpsertLeadsResult,
// RouteLeadsResult).
type ItemResult interface {
	GetCode() int32
	GetMessage() string
}

// ItemErrors turns the n results of a batch call back into the errors the
// single-item calls would have returned (nil for OK); an item the answer
// has no result for gets Internal.
func ItemErrors[R ItemResult](n int, results []R) []error {
	errs := make([]error, n)
	for i := range errs {
		switch {
		case i >= len(results):
			errs[i] = status.Error(codes.Internal, "the batch answer has no result for this item")
		case results[i].GetCode() != 0:
			errs[i] = status.Error(codes.Code(results[i].GetCode()), results[i].GetMessage())
		}
	}
	return errs
}

// SendAlone reports whether a batch call's error means its items should be
// sent one by one with the single-item call: a malformed item refuses the
// whole batch (InvalidArgument), and a peer that predates the batch method
// (Unimplemented, during a rolling upgrade) has only the single call.
func SendAlone(err error) bool {
	c := status.Code(err)
	return c == codes.InvalidArgument || c == codes.Unimplemented
}
