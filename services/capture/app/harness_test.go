package app_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/capture/app"
	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

// fakeScoring is a ScoringService on a loopback listener: it records what
// capture delivers and can be "down" (Unavailable).
type fakeScoring struct {
	scoringv1.UnimplementedScoringServiceServer
	mu       sync.Mutex
	down     bool
	upserts  map[string]int                      // deliveries per lead
	profiles map[string]*leadv1.LeadProfile      // latest per lead
	signals  map[string]*leadv1.EngagementSignal // by signal id
	traces   map[string]map[string]bool          // lead id → trace ids the calls came in
	batches  []int                               // sizes of the UpsertLeads calls
	noBatch  bool                                // UpsertLeads is Unimplemented (an older scoring)
	failures int
}

func newFakeScoring() *fakeScoring {
	return &fakeScoring{upserts: map[string]int{}, profiles: map[string]*leadv1.LeadProfile{}, signals: map[string]*leadv1.EngagementSignal{}, traces: map[string]map[string]bool{}}
}

func (f *fakeScoring) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *fakeScoring) noteTrace(leadID string, traceparents []string) {
	for _, tp := range traceparents {
		if f.traces[leadID] == nil {
			f.traces[leadID] = map[string]bool{}
		}
		f.traces[leadID][leadtrace.TraceID(tp)] = true
	}
}

func (f *fakeScoring) UpsertLead(ctx context.Context, req *scoringv1.UpsertLeadRequest) (*scoringv1.UpsertLeadResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		f.failures++
		return nil, status.Error(codes.Unavailable, "scoring is down")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	f.upsert(req, md.Get("traceparent"))
	return &scoringv1.UpsertLeadResponse{}, nil
}

// UpsertLeads is what capture's hand-off worker calls: each item's spans
// belong to the trace of its own traceparent.
func (f *fakeScoring) UpsertLeads(ctx context.Context, req *scoringv1.UpsertLeadsRequest) (*scoringv1.UpsertLeadsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noBatch {
		return nil, status.Error(codes.Unimplemented, "unknown method UpsertLeads")
	}
	if f.down {
		f.failures++
		return nil, status.Error(codes.Unavailable, "scoring is down")
	}
	f.batches = append(f.batches, len(req.GetLeads()))
	out := &scoringv1.UpsertLeadsResponse{}
	for _, item := range req.GetLeads() {
		f.upsert(item, []string{item.GetTraceparent()})
		out.Results = append(out.Results, &scoringv1.UpsertLeadsResult{Response: &scoringv1.UpsertLeadResponse{}})
	}
	return out, nil
}

func (f *fakeScoring) upsert(req *scoringv1.UpsertLeadRequest, traceparents []string) {
	id := req.GetProfile().GetLeadId()
	f.upserts[id]++
	f.profiles[id] = proto.Clone(req.GetProfile()).(*leadv1.LeadProfile)
	f.noteTrace(id, traceparents)
}

func (f *fakeScoring) RecordEngagement(ctx context.Context, req *scoringv1.RecordEngagementRequest) (*scoringv1.RecordEngagementResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		f.failures++
		return nil, status.Error(codes.Unavailable, "scoring is down")
	}
	f.signals[req.GetSignal().GetId()] = proto.Clone(req.GetSignal()).(*leadv1.EngagementSignal)
	md, _ := metadata.FromIncomingContext(ctx)
	f.noteTrace(req.GetSignal().GetLeadId(), md.Get("traceparent"))
	return &scoringv1.RecordEngagementResponse{}, nil
}

func serveFakeScoring(t testing.TB) (*fakeScoring, string) {
	t.Helper()
	f := newFakeScoring()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	scoringv1.RegisterScoringServiceServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return f, lis.Addr().String()
}

// env is one capture replica on a real Redis with a fake scoring.
type env struct {
	redis   *platformtest.Redis
	rt      *platform.Runtime
	app     *app.App
	client  capturev1.CaptureServiceClient
	addr    string // the gRPC address (newEnv only)
	scoring *fakeScoring
	spans   *tracetest.InMemoryExporter
	logs    *platformtest.LogBuffer
	clock   *platformtest.Clock
}

type envOpt struct {
	redis   *platformtest.Redis
	scoring *fakeScoring
	addr    string
	clock   *platformtest.Clock
	cfg     func(*app.Config)
	metrics *sdkmetric.ManualReader
	base    func(*platform.Base)
}

func newEnv(t testing.TB, o envOpt) *env {
	t.Helper()
	e := &env{redis: o.redis, scoring: o.scoring, spans: platformtest.Spans(), logs: &platformtest.LogBuffer{}, clock: o.clock}
	if e.redis == nil {
		e.redis = platformtest.StartRedis(t)
	}
	addr := o.addr
	if e.scoring == nil {
		e.scoring, addr = serveFakeScoring(t)
	}
	if e.clock == nil {
		e.clock = platformtest.NewClock(time.Now().UTC().Truncate(time.Millisecond))
	}
	base := platformtest.Base("capture", e.redis.URL())
	base.Peers.Scoring = addr
	base.LogLevel = "debug"
	if o.base != nil {
		o.base(&base)
	}
	ropts := []platform.Option{platform.WithSpanExporter(e.spans), platform.WithLogOutput(e.logs)}
	if o.metrics != nil {
		ropts = append(ropts, platform.WithMetricReader(o.metrics))
	}
	e.rt = platformtest.RuntimeWith(t, base, ropts...)
	cfg := app.DefaultConfig()
	cfg.HandoffWorkers = 0 // tests drive the queue with ProcessDue
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	a, err := app.Build(context.Background(), e.rt, cfg, app.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	e.app = a
	e.addr = platformtest.ServeAt(t, e.rt, a.Service)
	e.client = capturev1.NewCaptureServiceClient(platformtest.Dial(t, e.addr, base.ClientToken))
	return e
}

// deliverAll runs the hand-off queue until nothing is due now.
func (e *env) deliverAll(t testing.TB) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		n, err := e.app.Queue.ProcessDueBatch(context.Background(), e.app.Capture.DeliverBatch)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("queue never drained")
}

func submission(email, phone string) *capturev1.LeadSubmission {
	return &capturev1.LeadSubmission{
		Contact: &leadv1.Contact{FirstName: "Annika", LastName: "Lindqvist", Email: email, Phone: phone, JobTitle: "Head of Data"},
		Company: &capturev1.Company{Name: "Acme", Industry: "software", Country: "Sweden", EmployeeCount: 120},
		Touch:   &leadv1.Touch{Channel: leadv1.Channel_CHANNEL_WEB_FORM, Source: "google", Medium: "cpc", Campaign: "q4-search"},
		Consent: &leadv1.Consent{MarketingOptIn: true, GivenAt: timestamppb.New(consentTime), WordingVersion: "privacy-2026-03"},
	}
}

// consentTime is fixed so that equal submissions are equal payloads.
var consentTime = time.Now().Add(-time.Hour).Truncate(time.Second)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// metricSum is the sum of an Int64 counter's points whose attributes include
// attr=value ("" matches every point).
func metricSum(t testing.TB, r *sdkmetric.ManualReader, name, attr, value string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if v, ok := p.Attributes.Value(attribute.Key(attr)); attr == "" || ok && v.AsString() == value {
						n += p.Value
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					n += p.Value
				}
			}
		}
	}
	return n
}
