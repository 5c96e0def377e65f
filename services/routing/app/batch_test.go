package app_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

func hasViolation(err error, field string) bool {
	for _, v := range platform.FieldViolations(err) {
		if v.Field == field {
			return true
		}
	}
	return false
}

// RouteLeads routes each lead as RouteLead would, answers each in order
// (a lead already routed gets its existing decision), puts each lead's span
// under the item's traceparent, and refuses a malformed item for the whole
// call, changing nothing.
func TestRouteLeadsAnswersEachLeadAsRouteLead(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: config()}); err != nil {
		t.Fatal(err)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	item := func(id string) *routingv1.RouteLeadRequest {
		return &routingv1.RouteLeadRequest{Profile: &leadv1.LeadProfile{LeadId: id}, Score: &leadv1.Score{Total: 70, Heat: leadv1.Heat_HEAT_HOT},
			RequestId: id + ":mql:1", Traceparent: tp}
	}
	first, err := h.client.RouteLead(ctx, item("rl-0"))
	if err != nil {
		t.Fatal(err)
	}

	// A malformed item fails the call and routes none of the others.
	bad := item("rl-bad")
	bad.RequestId = string(make([]byte, 200))
	_, err = h.client.RouteLeads(ctx, &routingv1.RouteLeadsRequest{Leads: []*routingv1.RouteLeadRequest{item("rl-1"), bad}})
	if status.Code(err) != codes.InvalidArgument || !hasViolation(err, "leads[1].request_id") {
		t.Fatalf("malformed item: %v, want InvalidArgument naming leads[1].request_id", err)
	}
	if a, err := h.client.GetAssignment(ctx, &routingv1.GetAssignmentRequest{LeadId: "rl-1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("rl-1 was routed by a refused call: %v %v", a, err)
	}

	var leads []*routingv1.RouteLeadRequest
	leads = append(leads, item("rl-0"))
	for i := 1; i <= 5; i++ {
		leads = append(leads, item(fmt.Sprintf("rl-%d", i)))
	}
	resp, err := h.client.RouteLeads(ctx, &routingv1.RouteLeadsRequest{Leads: leads})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != len(leads) {
		t.Fatalf("%d results for %d leads", len(resp.GetResults()), len(leads))
	}
	for i, r := range resp.GetResults() {
		if r.GetCode() != 0 {
			t.Fatalf("lead %d: code %d %s", i, r.GetCode(), r.GetMessage())
		}
		d := r.GetResponse().GetDecision()
		if d.GetLeadId() != leads[i].GetProfile().GetLeadId() || d.GetRepId() != "anna" {
			t.Fatalf("result %d is not its lead's decision: %v", i, d)
		}
	}
	if r := resp.GetResults()[0].GetResponse(); !r.GetExisting() || r.GetDecision().GetId() != first.GetDecision().GetId() {
		t.Fatalf("an already routed lead should get its existing decision: %v", r)
	}
	for i := 1; i <= 5; i++ {
		if _, err := h.client.GetAssignment(ctx, &routingv1.GetAssignmentRequest{LeadId: fmt.Sprintf("rl-%d", i)}); err != nil {
			t.Fatalf("rl-%d not assigned: %v", i, err)
		}
	}
	parent := leadtrace.SpanContext(tp)
	n := 0
	for _, s := range h.spans.GetSpans() {
		if s.Name == "routing.route" && s.SpanContext.TraceID() == parent.TraceID() && s.Parent.SpanID() == parent.SpanID() {
			n++
		}
	}
	if n < 5 {
		t.Fatalf("%d routing.route spans under the items' traceparent, want one per routed lead", n)
	}
}
