// Package grpcapi is routing's gRPC face: it decodes requests (already
// validated by the platform's protovalidate interceptor), calls the Router
// and encodes answers. Errors are status errors from the Router or plain
// errors the platform maps (Redis down → Unavailable, else Internal).
package grpcapi

import (
	"context"
	"encoding/base64"
	"log/slog"
	"strconv"

	"google.golang.org/grpc"

	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/routing/router"
)

// Server implements routingv1.RoutingServiceServer.
type Server struct {
	routingv1.UnimplementedRoutingServiceServer
	r   *router.Router
	log *slog.Logger
}

// New returns the gRPC face of r.
func New(r *router.Router) *Server { return &Server{r: r, log: r.Logger()} }

const defaultPage, maxPage = 50, 500

func pageSize(n int32) int64 {
	if n <= 0 {
		return defaultPage
	}
	return int64(min(n, maxPage))
}

// Page tokens are opaque: base64 of an offset (or of a version for config lists).
func decodeToken(tok string) (int64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		var n int64
		if n, err = strconv.ParseInt(string(b), 10, 64); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, platform.InvalidArgument("bad page_token", platform.FieldViolation{Field: "page_token", Description: "not a token from a previous page"})
}

func encodeToken(n int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(n, 10)))
}

// ApplyConfig implements RoutingService.
func (s *Server) ApplyConfig(ctx context.Context, req *routingv1.ApplyConfigRequest) (*routingv1.ApplyConfigResponse, error) {
	c, err := s.r.ApplyConfig(ctx, req.GetConfig(), req.GetExpectedVersion())
	if err != nil {
		return nil, err
	}
	return &routingv1.ApplyConfigResponse{Config: c}, nil
}

// GetConfig implements RoutingService.
func (s *Server) GetConfig(ctx context.Context, req *routingv1.GetConfigRequest) (*routingv1.GetConfigResponse, error) {
	c, err := s.r.GetConfig(ctx, req.GetVersion())
	if err != nil {
		return nil, err
	}
	return &routingv1.GetConfigResponse{Config: c}, nil
}

// ListConfigVersions implements RoutingService.
func (s *Server) ListConfigVersions(ctx context.Context, req *routingv1.ListConfigVersionsRequest) (*routingv1.ListConfigVersionsResponse, error) {
	before, err := decodeToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	n := pageSize(req.GetPageSize())
	vs, err := s.r.ListConfigVersions(ctx, before, int(n))
	if err != nil {
		return nil, err
	}
	resp := &routingv1.ListConfigVersionsResponse{Versions: vs}
	if int64(len(vs)) == n && vs[len(vs)-1].GetVersion() > 1 {
		resp.NextPageToken = encodeToken(vs[len(vs)-1].GetVersion())
	}
	return resp, nil
}

// SetRepAvailability implements RoutingService.
func (s *Server) SetRepAvailability(ctx context.Context, req *routingv1.SetRepAvailabilityRequest) (*routingv1.SetRepAvailabilityResponse, error) {
	v, rep, n, err := s.r.SetRepAvailability(ctx, req.GetRepId(), req.GetAvailability(), req.GetOutOfOfficeUntil())
	if err != nil {
		return nil, err
	}
	return &routingv1.SetRepAvailabilityResponse{ConfigVersion: v, Rep: rep, AssignedFromQueue: int32(n)}, nil
}

// RouteLead implements RoutingService.
func (s *Server) RouteLead(ctx context.Context, req *routingv1.RouteLeadRequest) (*routingv1.RouteLeadResponse, error) {
	d, existing, err := s.r.RouteLead(ctx, req)
	if err != nil {
		return nil, err
	}
	return &routingv1.RouteLeadResponse{Decision: d, Existing: existing}, nil
}

// RouteLeads implements RoutingService.RouteLeads: each lead as RouteLead.
func (s *Server) RouteLeads(ctx context.Context, req *routingv1.RouteLeadsRequest) (*routingv1.RouteLeadsResponse, error) {
	items := req.GetLeads()
	out := make([]*routingv1.RouteLeadsResult, len(items))
	errs := platform.ServeBatch(ctx, s.log, len(items), func(i int) string { return items[i].GetTraceparent() }, func(ctx context.Context, i int) error {
		resp, err := s.RouteLead(ctx, items[i])
		out[i] = &routingv1.RouteLeadsResult{Response: resp}
		return err
	})
	for i, err := range errs {
		out[i].Code, out[i].Message = platform.ItemStatus(err)
	}
	return &routingv1.RouteLeadsResponse{Results: out}, nil
}

// DryRunRoute implements RoutingService.
func (s *Server) DryRunRoute(ctx context.Context, req *routingv1.DryRunRouteRequest) (*routingv1.DryRunRouteResponse, error) {
	d, err := s.r.DryRunRoute(ctx, req.GetProfile(), req.GetScore())
	if err != nil {
		return nil, err
	}
	return &routingv1.DryRunRouteResponse{Decision: d}, nil
}

// ReleaseLead implements RoutingService.
func (s *Server) ReleaseLead(ctx context.Context, req *routingv1.ReleaseLeadRequest) (*routingv1.ReleaseLeadResponse, error) {
	ok, rep, err := s.r.ReleaseLead(ctx, req.GetLeadId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &routingv1.ReleaseLeadResponse{Released: ok, RepId: rep}, nil
}

// GetDecision implements RoutingService.
func (s *Server) GetDecision(ctx context.Context, req *routingv1.GetDecisionRequest) (*routingv1.GetDecisionResponse, error) {
	d, err := s.r.Decision(ctx, req.GetDecisionId())
	if err != nil {
		return nil, err
	}
	return &routingv1.GetDecisionResponse{Decision: d}, nil
}

// ListDecisions implements RoutingService.
func (s *Server) ListDecisions(ctx context.Context, req *routingv1.ListDecisionsRequest) (*routingv1.ListDecisionsResponse, error) {
	off, err := decodeToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	n := pageSize(req.GetPageSize())
	ds, more, err := s.r.Decisions(ctx, req.GetLeadId(), off, n)
	if err != nil {
		return nil, err
	}
	resp := &routingv1.ListDecisionsResponse{Decisions: ds}
	if more {
		resp.NextPageToken = encodeToken(off + n)
	}
	return resp, nil
}

// WatchInbox implements RoutingService.
func (s *Server) WatchInbox(req *routingv1.WatchInboxRequest, stream grpc.ServerStreamingServer[routingv1.WatchInboxResponse]) error {
	return s.r.WatchInbox(stream.Context(), req.GetRepId(), req.GetAfterCursor(), req.GetView(), func(it *routingv1.InboxItem) error {
		return stream.Send(&routingv1.WatchInboxResponse{Item: it})
	})
}

// ListAssignments implements RoutingService.
func (s *Server) ListAssignments(ctx context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	off, err := decodeToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	n := pageSize(req.GetPageSize())
	as, more, err := s.r.ListAssignments(ctx, req.GetRepId(), off, n)
	if err != nil {
		return nil, err
	}
	resp := &routingv1.ListAssignmentsResponse{Assignments: as}
	if more {
		resp.NextPageToken = encodeToken(off + n)
	}
	return resp, nil
}

// GetAssignment implements RoutingService.
func (s *Server) GetAssignment(ctx context.Context, req *routingv1.GetAssignmentRequest) (*routingv1.GetAssignmentResponse, error) {
	a, err := s.r.GetAssignment(ctx, req.GetLeadId())
	if err != nil {
		return nil, err
	}
	return &routingv1.GetAssignmentResponse{Assignment: a}, nil
}

// AcceptLead implements RoutingService.
func (s *Server) AcceptLead(ctx context.Context, req *routingv1.AcceptLeadRequest) (*routingv1.AcceptLeadResponse, error) {
	a, err := s.r.AcceptLead(ctx, req.GetLeadId(), req.GetRepId())
	if err != nil {
		return nil, err
	}
	return &routingv1.AcceptLeadResponse{Assignment: a}, nil
}

// RejectLead implements RoutingService.
func (s *Server) RejectLead(ctx context.Context, req *routingv1.RejectLeadRequest) (*routingv1.RejectLeadResponse, error) {
	d, err := s.r.RejectLead(ctx, req.GetLeadId(), req.GetRepId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &routingv1.RejectLeadResponse{Decision: d}, nil
}

// RecordTouch implements RoutingService.
func (s *Server) RecordTouch(ctx context.Context, req *routingv1.RecordTouchRequest) (*routingv1.RecordTouchResponse, error) {
	a, first, within, dup, err := s.r.RecordTouch(ctx, req.GetLeadId(), req.GetRepId(), req.GetType(), req.GetTouchId())
	if err != nil {
		return nil, err
	}
	return &routingv1.RecordTouchResponse{Assignment: a, FirstTouch: first, WithinSla: within, Duplicate: dup}, nil
}

// GiveBack implements RoutingService.
func (s *Server) GiveBack(ctx context.Context, req *routingv1.GiveBackRequest) (*routingv1.GiveBackResponse, error) {
	a, err := s.r.GiveBack(ctx, req.GetLeadId(), req.GetRepId(), req.GetOutcome(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &routingv1.GiveBackResponse{Assignment: a}, nil
}

// Reassign implements RoutingService.
func (s *Server) Reassign(ctx context.Context, req *routingv1.ReassignRequest) (*routingv1.ReassignResponse, error) {
	d, err := s.r.Reassign(ctx, req.GetLeadId(), req.GetToRepId(), req.GetReason(), req.GetForce())
	if err != nil {
		return nil, err
	}
	return &routingv1.ReassignResponse{Decision: d}, nil
}

// GetQueue implements RoutingService.
func (s *Server) GetQueue(ctx context.Context, req *routingv1.GetQueueRequest) (*routingv1.GetQueueResponse, error) {
	off, err := decodeToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	n := pageSize(req.GetPageSize())
	es, nq, np, more, err := s.r.GetQueue(ctx, req.GetTeamId(), off, n)
	if err != nil {
		return nil, err
	}
	resp := &routingv1.GetQueueResponse{Entries: es, Queued: nq, Parked: np}
	if more {
		resp.NextPageToken = encodeToken(off + int64(len(es)))
	}
	return resp, nil
}
