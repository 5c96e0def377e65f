// Package grpcapi is capture's gRPC face: it decodes requests, calls the use
// cases and maps domain errors to status codes. Field constraints written in
// the proto are enforced by the platform's interceptor before a handler runs
// (except ImportLeads records, validated here one by one so that a bad record
// does not end the stream).
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/platform"
)

// UseCases is what the face needs from the application.
type UseCases interface {
	Submit(ctx context.Context, sub *capturev1.LeadSubmission, idemKey string, defaultChannel leadv1.Channel) (*capturev1.SubmitLeadResponse, error)
	RecordEngagement(ctx context.Context, sig *leadv1.EngagementSignal) (*capturev1.RecordEngagementResponse, error)
	Get(ctx context.Context, leadID string) (*leadv1.Lead, error)
	GetBatch(ctx context.Context, leadIDs []string) ([]*leadv1.Lead, []string, error)
	Find(ctx context.Context, req *capturev1.FindLeadsRequest) ([]*leadv1.Lead, string, error)
	Erase(ctx context.Context, leadID, reason string) (*leadv1.Lead, error)
}

// Server implements capturev1.CaptureServiceServer.
type Server struct {
	capturev1.UnimplementedCaptureServiceServer
	uc         UseCases
	maxRecords int
	validator  protovalidate.Validator
}

// New returns the gRPC face over uc.
func New(uc UseCases, importMaxRecords int) (*Server, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, err
	}
	return &Server{uc: uc, maxRecords: importMaxRecords, validator: v}, nil
}

// toStatus maps domain errors; anything else goes to the platform as is
// (Redis down → Unavailable, unknown → Internal).
func toStatus(err error) error {
	var verr *domain.ValidationError
	var ierr *domain.IdempotencyConflictError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &verr):
		fvs := make([]platform.FieldViolation, len(verr.Violations))
		for i, v := range verr.Violations {
			fvs[i] = platform.FieldViolation{Field: v.Field, Description: v.Description}
		}
		return platform.InvalidArgument("invalid request: some fields are not valid after normalisation", fvs...)
	case errors.As(err, &ierr):
		return status.Error(codes.FailedPrecondition, ierr.Error())
	case errors.Is(err, domain.ErrNotFound):
		return status.Error(codes.NotFound, "lead not found")
	case errors.Is(err, domain.ErrErased):
		return status.Error(codes.FailedPrecondition, "lead was erased")
	case errors.Is(err, domain.ErrConflict):
		return status.Error(codes.Aborted, "concurrent submissions for the same lead; retry with the same idempotency key")
	}
	return err
}

// SubmitLead implements CaptureService.SubmitLead.
func (s *Server) SubmitLead(ctx context.Context, req *capturev1.SubmitLeadRequest) (*capturev1.SubmitLeadResponse, error) {
	resp, err := s.uc.Submit(ctx, req.GetSubmission(), req.GetIdempotencyKey(), leadv1.Channel_CHANNEL_API)
	return resp, toStatus(err)
}

// ImportLeads implements CaptureService.ImportLeads: one result per record,
// a bad record never stops the rest.
func (s *Server) ImportLeads(stream capturev1.CaptureService_ImportLeadsServer) error {
	ctx := stream.Context()
	resp := &capturev1.ImportLeadsResponse{Summary: &capturev1.ImportSummary{}}
	sum := resp.Summary
	for i := int32(0); ; i++ {
		rec, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(resp)
		}
		if err != nil {
			return err
		}
		if int(i) >= s.maxRecords {
			return status.Errorf(codes.ResourceExhausted, "an import takes at most %d records; split the file", s.maxRecords)
		}
		sum.Received++
		ref := rec.GetRecordRef()
		if len(ref) > 200 {
			ref = strings.ToValidUTF8(ref[:200], "")
		}
		r := &capturev1.ImportRecordResult{Index: i, RecordRef: ref}
		resp.Results = append(resp.Results, r)
		if vs := s.validateRecord(rec); len(vs) > 0 {
			r.Outcome, r.Violations, r.Error = capturev1.ImportOutcome_IMPORT_OUTCOME_REJECTED, vs, "invalid record"
			sum.Rejected++
			continue
		}
		out, err := s.uc.Submit(ctx, rec.GetSubmission(), rec.GetIdempotencyKey(), leadv1.Channel_CHANNEL_IMPORT)
		var verr *domain.ValidationError
		switch {
		case errors.As(err, &verr):
			r.Outcome, r.Error = capturev1.ImportOutcome_IMPORT_OUTCOME_REJECTED, "invalid record"
			for _, v := range verr.Violations {
				r.Violations = append(r.Violations, &capturev1.FieldViolation{Field: v.Field, Description: v.Description})
			}
			sum.Rejected++
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			st, _ := status.FromError(toStatus(err))
			r.Outcome, r.Error = capturev1.ImportOutcome_IMPORT_OUTCOME_FAILED, "not stored: "+st.Code().String()+"; re-send the record"
			if st.Code() == codes.FailedPrecondition {
				r.Outcome, r.Error = capturev1.ImportOutcome_IMPORT_OUTCOME_REJECTED, st.Message()
				sum.Rejected++
				break
			}
			sum.Failed++
		case out.GetOutcome() == capturev1.SubmitOutcome_SUBMIT_OUTCOME_CREATED:
			r.Outcome, r.LeadId = capturev1.ImportOutcome_IMPORT_OUTCOME_CREATED, out.GetLeadId()
			sum.Created++
		default:
			r.Outcome, r.LeadId, r.MatchedOn = capturev1.ImportOutcome_IMPORT_OUTCOME_MERGED, out.GetLeadId(), out.GetMatchedOn()
			sum.Merged++
		}
	}
}

// validateRecord applies the proto constraints of one import record (which
// the interceptor skips, see ImportLeadsRequest).
func (s *Server) validateRecord(rec *capturev1.ImportLeadsRequest) []*capturev1.FieldViolation {
	var out []*capturev1.FieldViolation
	if rec.GetSubmission() == nil {
		return []*capturev1.FieldViolation{{Field: "submission", Description: "value is required"}}
	}
	if err := s.validator.Validate(rec.GetSubmission()); err != nil {
		var verr *protovalidate.ValidationError
		if !errors.As(err, &verr) {
			return []*capturev1.FieldViolation{{Field: "submission", Description: "could not be validated"}}
		}
		for _, v := range verr.Violations {
			out = append(out, &capturev1.FieldViolation{Field: "submission." + protovalidate.FieldPathString(v.Proto.GetField()), Description: v.Proto.GetMessage()})
		}
	}
	sub := &capturev1.SubmitLeadRequest{IdempotencyKey: rec.GetIdempotencyKey()}
	if err := s.validator.Validate(sub); err != nil {
		var verr *protovalidate.ValidationError
		if errors.As(err, &verr) {
			for _, v := range verr.Violations {
				if f := protovalidate.FieldPathString(v.Proto.GetField()); f == "idempotency_key" {
					out = append(out, &capturev1.FieldViolation{Field: f, Description: v.Proto.GetMessage()})
				}
			}
		}
	}
	return out
}

// RecordEngagement implements CaptureService.RecordEngagement.
func (s *Server) RecordEngagement(ctx context.Context, req *capturev1.RecordEngagementRequest) (*capturev1.RecordEngagementResponse, error) {
	resp, err := s.uc.RecordEngagement(ctx, req.GetSignal())
	return resp, toStatus(err)
}

// GetLead implements CaptureService.GetLead.
func (s *Server) GetLead(ctx context.Context, req *capturev1.GetLeadRequest) (*capturev1.GetLeadResponse, error) {
	l, err := s.uc.Get(ctx, req.GetLeadId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &capturev1.GetLeadResponse{Lead: l}, nil
}

// BatchGetLeads implements CaptureService.BatchGetLeads (the interceptor
// has checked the ids: 1–100, each like GetLead's, no repeats).
func (s *Server) BatchGetLeads(ctx context.Context, req *capturev1.BatchGetLeadsRequest) (*capturev1.BatchGetLeadsResponse, error) {
	keep, err := leadFields(req.GetReadMask())
	if err != nil {
		return nil, err
	}
	leads, missing, err := s.uc.GetBatch(ctx, req.GetLeadIds())
	if err != nil {
		return nil, toStatus(err)
	}
	if keep != nil {
		for i, l := range leads {
			leads[i] = trimLead(l, keep)
		}
	}
	return &capturev1.BatchGetLeadsResponse{Leads: leads, NotFoundLeadIds: missing}, nil
}

// leadFields checks a read mask (names of Lead's fields) and returns the
// fields it keeps, with id and erased; nil when the mask is empty.
func leadFields(m *fieldmaskpb.FieldMask) ([]protoreflect.FieldDescriptor, error) {
	if len(m.GetPaths()) == 0 {
		return nil, nil
	}
	fields := (&leadv1.Lead{}).ProtoReflect().Descriptor().Fields()
	keep := []protoreflect.FieldDescriptor{fields.ByName("id"), fields.ByName("erased")}
	var bad []platform.FieldViolation
	for i, p := range m.GetPaths() {
		fd := fields.ByName(protoreflect.Name(p))
		if fd == nil {
			bad = append(bad, platform.FieldViolation{Field: fmt.Sprintf("read_mask.paths[%d]", i), Description: "not a field of Lead (nested paths are not supported)"})
			continue
		}
		keep = append(keep, fd)
	}
	if len(bad) > 0 {
		return nil, platform.InvalidArgument("invalid read_mask", bad...)
	}
	return keep, nil
}

// trimLead is l with only the fields keep names.
func trimLead(l *leadv1.Lead, keep []protoreflect.FieldDescriptor) *leadv1.Lead {
	out := &leadv1.Lead{}
	src, dst := l.ProtoReflect(), out.ProtoReflect()
	for _, fd := range keep {
		if src.Has(fd) {
			dst.Set(fd, src.Get(fd))
		}
	}
	return out
}

// FindLeads implements CaptureService.FindLeads.
func (s *Server) FindLeads(ctx context.Context, req *capturev1.FindLeadsRequest) (*capturev1.FindLeadsResponse, error) {
	leads, next, err := s.uc.Find(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &capturev1.FindLeadsResponse{Leads: leads, NextPageToken: next}, nil
}

// EraseLead implements CaptureService.EraseLead.
func (s *Server) EraseLead(ctx context.Context, req *capturev1.EraseLeadRequest) (*capturev1.EraseLeadResponse, error) {
	l, err := s.uc.Erase(ctx, req.GetLeadId(), req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	return &capturev1.EraseLeadResponse{Lead: l, ErasedAt: l.GetErasedAt()}, nil
}
