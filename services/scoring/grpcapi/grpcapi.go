// Package grpcapi is the gRPC face of the scoring service: it decodes
// requests, calls the use cases and maps domain errors to status codes.
// Field constraints are checked before a handler runs (protovalidate in the
// platform's interceptor).
package grpcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/scoring/domain"
	"github.com/leadflow/leadflow/services/scoring/pbconv"
	"github.com/leadflow/leadflow/services/scoring/service"
)

// Server implements scoringv1.ScoringServiceServer.
type Server struct {
	scoringv1.UnimplementedScoringServiceServer
	s   *service.Scoring
	log *slog.Logger
}

// New returns the gRPC face of s; log gets the internal errors of batch items.
func New(s *service.Scoring, log *slog.Logger) *Server { return &Server{s: s, log: log} }

// toStatus maps domain errors; anything else goes to the platform (Redis
// down → Unavailable, unknown → Internal).
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, domain.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, domain.ErrIllegalTransition), errors.Is(err, domain.ErrPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, domain.ErrConflict):
		return status.Error(codes.Aborted, "concurrent update of the lead; retry")
	}
	return err
}

func leadNotFound(err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return status.Error(codes.NotFound, "lead not known to scoring")
	}
	return toStatus(err)
}

const tokenPrefix = "o1:"

func pageToken(next int64) string {
	if next <= 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(tokenPrefix + strconv.FormatInt(next, 10)))
}

func parseToken(tok string) (int64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if v, ok := strings.CutPrefix(string(b), tokenPrefix); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				return n, nil
			}
		}
	}
	return 0, platform.InvalidArgument("bad page token", platform.FieldViolation{Field: "page_token", Description: "not a token from a previous response"})
}

func pageSize(n, def int32) int64 {
	if n <= 0 {
		return int64(def)
	}
	return int64(n)
}

func decodeProfile(r *domain.Record) *leadv1.LeadProfile {
	if len(r.ProfileRaw) == 0 {
		return nil
	}
	p := &leadv1.LeadProfile{}
	if proto.Unmarshal(r.ProfileRaw, p) != nil {
		return nil
	}
	return p
}

func lead(r *domain.Record) *scoringv1.ScoredLead { return pbconv.Lead(r, decodeProfile(r)) }

// UpsertLead implements ScoringService.UpsertLead.
func (a *Server) UpsertLead(ctx context.Context, req *scoringv1.UpsertLeadRequest) (*scoringv1.UpsertLeadResponse, error) {
	res, err := a.s.UpsertLead(ctx, req.GetProfile())
	if err != nil {
		return nil, toStatus(err)
	}
	return &scoringv1.UpsertLeadResponse{
		Score: pbconv.Score(&res.Record.Score), Status: leadv1.ProspectStatus(res.Record.Status),
		MqlHandoffScheduled: res.Handoff, Created: res.Created,
	}, nil
}

// UpsertLeads implements ScoringService.UpsertLeads: each lead as UpsertLead.
func (a *Server) UpsertLeads(ctx context.Context, req *scoringv1.UpsertLeadsRequest) (*scoringv1.UpsertLeadsResponse, error) {
	items := req.GetLeads()
	out := make([]*scoringv1.UpsertLeadsResult, len(items))
	errs := platform.ServeBatch(ctx, a.log, len(items), func(i int) string { return items[i].GetTraceparent() }, func(ctx context.Context, i int) error {
		resp, err := a.UpsertLead(ctx, items[i])
		out[i] = &scoringv1.UpsertLeadsResult{Response: resp}
		return err
	})
	for i, err := range errs {
		out[i].Code, out[i].Message = platform.ItemStatus(err)
	}
	return &scoringv1.UpsertLeadsResponse{Results: out}, nil
}

// RecordEngagement implements ScoringService.RecordEngagement.
func (a *Server) RecordEngagement(ctx context.Context, req *scoringv1.RecordEngagementRequest) (*scoringv1.RecordEngagementResponse, error) {
	res, err := a.s.RecordEngagement(ctx, req.GetSignal())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &scoringv1.RecordEngagementResponse{Duplicate: res.Duplicate, Pending: res.Pending, MqlHandoffScheduled: res.Handoff}
	if res.Record != nil {
		out.Score = pbconv.Score(&res.Record.Score)
	}
	return out, nil
}

// SetStatus implements ScoringService.SetStatus.
func (a *Server) SetStatus(ctx context.Context, req *scoringv1.SetStatusRequest) (*scoringv1.SetStatusResponse, error) {
	rec, changed, err := a.s.SetStatus(ctx, domain.StatusChange{
		To: domain.Status(req.GetStatus()), Reason: req.GetReason(), Owner: req.GetOwnerRepId(), RequestID: req.GetRequestId(),
	}, req.GetLeadId())
	if err != nil {
		return nil, leadNotFound(err)
	}
	return &scoringv1.SetStatusResponse{Lead: lead(rec), Changed: changed}, nil
}

// GetLead implements ScoringService.GetLead.
func (a *Server) GetLead(ctx context.Context, req *scoringv1.GetLeadRequest) (*scoringv1.GetLeadResponse, error) {
	rec, err := a.s.GetLead(ctx, req.GetLeadId())
	if err != nil {
		return nil, leadNotFound(err)
	}
	return &scoringv1.GetLeadResponse{Lead: lead(rec)}, nil
}

// ListLeads implements ScoringService.ListLeads.
func (a *Server) ListLeads(ctx context.Context, req *scoringv1.ListLeadsRequest) (*scoringv1.ListLeadsResponse, error) {
	off, err := parseToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	recs, next, err := a.s.Store().ListLeads(ctx, domain.ListQuery{
		Status: domain.Status(req.GetStatus()), Owner: req.GetOwnerRepId(),
		Grade: domain.Grade(req.GetGrade()), Heat: domain.Heat(req.GetHeat()),
		Offset: off, Limit: pageSize(req.GetPageSize(), 50),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &scoringv1.ListLeadsResponse{NextPageToken: pageToken(next)}
	for _, r := range recs {
		out.Leads = append(out.Leads, lead(r))
	}
	return out, nil
}

// ScoreLead implements ScoringService.ScoreLead.
func (a *Server) ScoreLead(ctx context.Context, req *scoringv1.ScoreLeadRequest) (*scoringv1.ScoreLeadResponse, error) {
	asOf := req.GetAsOf().AsTime()
	if req.GetAsOf() == nil {
		asOf = a.s.Now()
	}
	rec, handoff, err := a.s.ScoreLead(ctx, req.GetLeadId(), asOf)
	if err != nil {
		return nil, leadNotFound(err)
	}
	return &scoringv1.ScoreLeadResponse{Score: pbconv.Score(&rec.Score), MqlHandoffScheduled: handoff}, nil
}

// GetScore implements ScoringService.GetScore.
func (a *Server) GetScore(ctx context.Context, req *scoringv1.GetScoreRequest) (*scoringv1.GetScoreResponse, error) {
	rec, err := a.s.GetLead(ctx, req.GetLeadId())
	if err != nil {
		return nil, leadNotFound(err)
	}
	return &scoringv1.GetScoreResponse{Score: pbconv.Score(&rec.Score), Status: leadv1.ProspectStatus(rec.Status)}, nil
}

// DryRunScore implements ScoringService.DryRunScore.
func (a *Server) DryRunScore(ctx context.Context, req *scoringv1.DryRunScoreRequest) (*scoringv1.DryRunScoreResponse, error) {
	var asOf time.Time
	if req.GetAsOf() != nil {
		asOf = req.GetAsOf().AsTime()
	}
	sc, err := a.s.DryRunScore(ctx, req.GetProfile(), req.GetSignals(), req.GetModelVersion(), asOf)
	if err != nil {
		return nil, toStatus(err)
	}
	return &scoringv1.DryRunScoreResponse{Score: pbconv.Score(&sc)}, nil
}

// ListScoreHistory implements ScoringService.ListScoreHistory.
func (a *Server) ListScoreHistory(ctx context.Context, req *scoringv1.ListScoreHistoryRequest) (*scoringv1.ListScoreHistoryResponse, error) {
	off, err := parseToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	if _, err := a.s.GetLead(ctx, req.GetLeadId()); err != nil {
		return nil, leadNotFound(err)
	}
	size := pageSize(req.GetPageSize(), 50)
	hs, more, err := a.s.Store().ScoreHistory(ctx, req.GetLeadId(), off, size)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &scoringv1.ListScoreHistoryResponse{}
	for _, h := range hs {
		out.Entries = append(out.Entries, &scoringv1.ScoreHistoryEntry{Score: pbconv.Score(&h.Score), Cause: h.Cause, SignalId: h.SignalID})
	}
	if more {
		out.NextPageToken = pageToken(off + size)
	}
	return out, nil
}

// UpdateBant implements ScoringService.UpdateBant.
func (a *Server) UpdateBant(ctx context.Context, req *scoringv1.UpdateBantRequest) (*scoringv1.UpdateBantResponse, error) {
	b, err := a.s.UpdateBant(ctx, req.GetLeadId(), pbconv.BantFrom(req.GetBant()))
	if err != nil {
		return nil, leadNotFound(err)
	}
	return &scoringv1.UpdateBantResponse{Bant: pbconv.Bant(&b)}, nil
}

// GetStatusHistory implements ScoringService.GetStatusHistory.
func (a *Server) GetStatusHistory(ctx context.Context, req *scoringv1.GetStatusHistoryRequest) (*scoringv1.GetStatusHistoryResponse, error) {
	off, err := parseToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	rec, err := a.s.GetLead(ctx, req.GetLeadId())
	if err != nil {
		return nil, leadNotFound(err)
	}
	size := pageSize(req.GetPageSize(), 50)
	out := &scoringv1.GetStatusHistoryResponse{}
	for i := off; i < int64(len(rec.Transitions)) && i < off+size; i++ {
		out.Transitions = append(out.Transitions, pbconv.Transition(&rec.Transitions[i]))
	}
	if off+size < int64(len(rec.Transitions)) {
		out.NextPageToken = pageToken(off + size)
	}
	return out, nil
}

// CreateModel implements ScoringService.CreateModel.
func (a *Server) CreateModel(ctx context.Context, req *scoringv1.CreateModelRequest) (*scoringv1.CreateModelResponse, error) {
	m, err := a.s.CreateModel(ctx, pbconv.ModelFrom(req.GetModel()), req.GetActivate())
	if err != nil {
		return nil, toStatus(err)
	}
	return &scoringv1.CreateModelResponse{Model: pbconv.Model(&m)}, nil
}

// ListModels implements ScoringService.ListModels.
func (a *Server) ListModels(ctx context.Context, req *scoringv1.ListModelsRequest) (*scoringv1.ListModelsResponse, error) {
	off, err := parseToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pageSize(req.GetPageSize(), 20)
	ms, more, err := a.s.Store().ListModels(ctx, off, size)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &scoringv1.ListModelsResponse{}
	for i := range ms {
		out.Models = append(out.Models, pbconv.Model(&ms[i]))
	}
	if more {
		out.NextPageToken = pageToken(off + size)
	}
	return out, nil
}

// GetModel implements ScoringService.GetModel.
func (a *Server) GetModel(ctx context.Context, req *scoringv1.GetModelRequest) (*scoringv1.GetModelResponse, error) {
	m, err := a.s.Store().GetModel(ctx, req.GetVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return &scoringv1.GetModelResponse{Model: pbconv.Model(&m)}, nil
}

// ActivateModel implements ScoringService.ActivateModel.
func (a *Server) ActivateModel(ctx context.Context, req *scoringv1.ActivateModelRequest) (*scoringv1.ActivateModelResponse, error) {
	m, err := a.s.Store().ActivateModel(ctx, req.GetVersion(), a.s.Now())
	if err != nil {
		return nil, toStatus(err)
	}
	return &scoringv1.ActivateModelResponse{Model: pbconv.Model(&m)}, nil
}
