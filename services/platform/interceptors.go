package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The server chain runs recovery → deadline cap → authentication and
// authorisation → protovalidate → logging → error mapping → handler.
// Telemetry is otelgrpc's stats handler, which wraps the whole chain.

func recoveryUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(ctx, req)
	}
}

func recoveryStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.ErrorContext(ss.Context(), "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(srv, ss)
	}
}

// deadlineCap bounds every unary call: no deadline, or one further than max,
// becomes max, so a forgotten client deadline cannot pin a server goroutine.
func deadlineCap(max time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if d, ok := ctx.Deadline(); !ok || time.Until(d) > max {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, max)
			defer cancel()
		}
		return h(ctx, req)
	}
}

type validator struct{ v protovalidate.Validator }

func newValidator() (*validator, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, err
	}
	return &validator{v: v}, nil
}

// check returns InvalidArgument with every violated field, or nil.
func (v *validator) check(req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	err := v.v.Validate(msg)
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return status.Errorf(codes.Internal, "validation rules could not be evaluated")
	}
	fvs := make([]FieldViolation, 0, len(verr.Violations))
	for _, vi := range verr.Violations {
		field := protovalidate.FieldPathString(vi.Proto.GetField())
		if field == "" {
			field = "(message)"
		}
		fvs = append(fvs, FieldViolation{Field: field, Description: vi.Proto.GetMessage()})
	}
	return InvalidArgument(fmt.Sprintf("invalid %s: %d field(s) violate the contract", msg.ProtoReflect().Descriptor().Name(), len(fvs)), fvs...)
}

func (v *validator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := v.check(req); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (v *validator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, &validatingStream{ServerStream: ss, v: v})
}

type validatingStream struct {
	grpc.ServerStream
	v *validator
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.v.check(m)
}

// logging logs one line per call: method, code, duration and caller; never
// the request, which may hold personal data. Errors are mapped to status
// codes here, so the line shows the code the caller gets.
func loggingUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		err = ToStatus(ctx, logger, info.FullMethod, err)
		logCall(ctx, logger, info.FullMethod, start, err)
		return resp, err
	}
}

func loggingStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := ToStatus(ss.Context(), logger, info.FullMethod, h(srv, ss))
		logCall(ss.Context(), logger, info.FullMethod, start, err)
		return err
	}
}

func logCall(ctx context.Context, logger *slog.Logger, method string, start time.Time, err error) {
	if publicMethod(method) {
		return
	}
	code := status.Code(err)
	level := slog.LevelInfo
	switch code {
	case codes.OK, codes.Canceled:
		level = slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		level = slog.LevelWarn
	}
	logger.Log(ctx, level, "rpc", "method", method, "code", code.String(),
		"duration_ms", float64(time.Since(start).Microseconds())/1000, "caller", Caller(ctx))
}
