package load

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/leadflow/leadflow/services/platform/redisx"
)

// Sink is an in-process OTLP/gRPC trace collector that counts and discards
// spans: the suite exports its traces to it (batch exporter, as in
// production) so a benchmark runs with tracing fully on and no collector.
//
// It runs on the machine it measures, so it reads the export requests'
// wire format for the few fields it counts instead of decoding whole
// spans: a full decode cost about a third of the load tool's CPU.
type Sink struct {
	srv   *grpc.Server
	spans atomic.Int64
	redis atomic.Int64

	mu      sync.Mutex
	byOwner map[string]int64      // go-redis spans per service.name
	byName  map[string]*spanStats // per "service.name span-name"
	key     []byte                // scratch for byName's keys
}

// spanStats are the spans of one "service.name span-name".
type spanStats struct {
	n         int64
	durations []float32 // ms, for the steps' latency
}

func newSink() *Sink {
	return &Sink{srv: grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{})), byOwner: map[string]int64{}, byName: map[string]*spanStats{}}
}

// redisScopes are the instrumentation scopes of the Redis spans: go-redis's
// tracing hook (one span per command) and platform/redisx's (one per
// pipeline or MULTI), i.e. one per Redis round trip.
var redisScopes = map[string]bool{"github.com/redis/go-redis/extra/redisotel": true, redisx.PipelineScope: true}

// StartSink listens on addr (host:port) and serves the trace collector.
func StartSink(addr string) (*Sink, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := newSink()
	s.serve(lis)
	return s, nil
}

func (s *Sink) serve(lis net.Listener) {
	s.srv.RegisterService(&traceServiceDesc, s)
	go func() { _ = s.srv.Serve(lis) }()
}

// traceServiceDesc serves OTLP's TraceService/Export with the request
// left in wire format (rawMessage), for Sink.count.
var traceServiceDesc = grpc.ServiceDesc{
	ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler: func(srv any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req rawMessage
			if err := dec(&req); err != nil {
				return nil, err
			}
			if err := srv.(*Sink).count(req); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "export request: %v", err)
			}
			// An empty message is an empty ExportTraceServiceResponse.
			return &rawMessage{}, nil
		},
	}},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// rawMessage is a message in wire format.
type rawMessage []byte

// rawCodec hands the sink's handler the request's bytes; it serves only
// rawMessage, which is all the sink's server carries.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*rawMessage)
	if !ok {
		return nil, fmt.Errorf("sink codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*rawMessage)
	if !ok {
		return fmt.Errorf("sink codec: cannot unmarshal into %T", v)
	}
	*m = data.Materialize()
	return nil
}

// OTLP field numbers the sink reads (opentelemetry/proto/trace/v1 and
// common/v1).
const (
	exportResourceSpans = 1 // ExportTraceServiceRequest.resource_spans
	rsResource          = 1 // ResourceSpans.resource
	rsScopeSpans        = 2 // ResourceSpans.scope_spans
	resourceAttributes  = 1 // Resource.attributes
	kvKey, kvValue      = 1, 2
	anyStringValue      = 1 // AnyValue.string_value
	ssScope, ssSpans    = 1, 2
	scopeName           = 1 // InstrumentationScope.name
	spanName            = 5
	spanStart, spanEnd  = 7, 8 // fixed64 unix nanoseconds
)

// count counts an ExportTraceServiceRequest's spans from its wire format.
func (s *Sink) count(req []byte) error {
	var n, r int64
	s.mu.Lock()
	defer s.mu.Unlock()
	err := eachOf(req, exportResourceSpans, func(rs []byte) error {
		service, err := serviceName(rs)
		if err != nil {
			return err
		}
		return eachOf(rs, rsScopeSpans, func(ss []byte) error {
			var spans int64
			err := eachOf(ss, ssSpans, func(span []byte) error {
				spans++
				return s.countSpan(service, span)
			})
			n += spans
			if redisScopes[string(fieldBytes(fieldBytes(ss, ssScope), scopeName))] && spans > 0 {
				r += spans
				s.byOwner[string(service)] += spans
			}
			return err
		})
	})
	s.spans.Add(n)
	s.redis.Add(r)
	return err
}

// serviceName is the service.name attribute of a ResourceSpans' resource,
// or "?".
func serviceName(rs []byte) ([]byte, error) {
	service := []byte("?")
	err := eachOf(rs, rsResource, func(res []byte) error {
		return eachOf(res, resourceAttributes, func(kv []byte) error {
			if string(fieldBytes(kv, kvKey)) == "service.name" {
				service = fieldBytes(fieldBytes(kv, kvValue), anyStringValue)
			}
			return nil
		})
	})
	return service, err
}

// countSpan adds one span of service to byName; s.mu is held.
func (s *Sink) countSpan(service, span []byte) error {
	var name []byte
	var start, end uint64
	if err := eachField(span, func(num protowire.Number, b []byte, u uint64) error {
		switch num {
		case spanName:
			name = b
		case spanStart:
			start = u
		case spanEnd:
			end = u
		}
		return nil
	}); err != nil {
		return err
	}
	s.key = append(append(append(s.key[:0], service...), ' '), name...)
	st := s.byName[string(s.key)] // no allocation for the lookup
	if st == nil {
		st = &spanStats{}
		s.byName[string(s.key)] = st
	}
	st.n++
	if end >= start {
		st.durations = append(st.durations, float32(end-start)/1e6)
	}
	return nil
}

// eachField calls f with each field of the message b: a length-delimited
// field's bytes, or a varint or fixed field's value.
func eachField(b []byte, f func(num protowire.Number, v []byte, u uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var u uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			u, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var u32 uint32
			u32, n = protowire.ConsumeFixed32(b)
			u = uint64(u32)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, v, u); err != nil {
			return err
		}
	}
	return nil
}

// eachOf calls f with each length-delimited field num of the message b.
func eachOf(b []byte, num protowire.Number, f func(v []byte) error) error {
	return eachField(b, func(n protowire.Number, v []byte, _ uint64) error {
		if n != num {
			return nil
		}
		return f(v)
	})
}

// fieldBytes is the last length-delimited field num of the message b, or
// nil (malformed input reads as absent; eachField reports it).
func fieldBytes(b []byte, num protowire.Number) []byte {
	var out []byte
	_ = eachOf(b, num, func(v []byte) error {
		out = v
		return nil
	})
	return out
}

// Spans is the number of spans received.
func (s *Sink) Spans() int64 { return s.spans.Load() }

// RedisSpans is the number of go-redis spans received: the suite's Redis
// round trips (commands and pipelines; blocking reads and PINGs have no
// span, see platform/redisx).
func (s *Sink) RedisSpans() int64 { return s.redis.Load() }

// RedisSpansByService is RedisSpans per service (the resource's
// service.name), as "service per-lead" strings, largest first.
func (s *Sink) RedisSpansByService(leads int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return perLead(s.byOwner, leads, len(s.byOwner))
}

// SpansByName is the spans per lead of the top most frequent
// "service span-name" pairs, largest first: where a lead's spans (and
// round trips, named by command) come from.
func (s *Sink) SpansByName(leads int64, top int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := make(map[string]int64, len(s.byName))
	for k, st := range s.byName {
		counts[k] = st.n
	}
	return perLead(counts, leads, top)
}

// perLead formats the top counts of m as "key per-lead" strings, largest first.
func perLead(m map[string]int64, leads int64, top int) []string {
	return topPerLead(m, leads, top, "%s %.2f")
}

// topPerLead formats the top values of m, each divided by leads, with
// format (key, per-lead value), largest first.
func topPerLead(m map[string]int64, leads int64, top int, format string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	out := make([]string, 0, min(top, len(keys)))
	for _, k := range keys[:min(top, len(keys))] {
		out = append(out, fmt.Sprintf(format, k, float64(m[k])/float64(max(leads, 1))))
	}
	return out
}

// SlowestSteps is the latency (p50 / p99, ms) of the top slowest spans by
// p50 among the "service span-name" pairs at least half the leads have:
// where a lead's journey waits.
func (s *Sink) SlowestSteps(leads int64, top int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	type step struct {
		name     string
		p50, p99 float32
	}
	var steps []step
	for k, st := range s.byName {
		ds := st.durations
		if int64(len(ds))*2 < leads || len(ds) == 0 {
			continue
		}
		sorted := slices.Clone(ds)
		slices.Sort(sorted)
		steps = append(steps, step{k, sorted[len(sorted)/2], sorted[min(len(sorted)-1, len(sorted)*99/100)]})
	}
	sort.Slice(steps, func(i, j int) bool {
		return steps[i].p50 > steps[j].p50 || steps[i].p50 == steps[j].p50 && steps[i].name < steps[j].name
	})
	out := make([]string, 0, min(top, len(steps)))
	for _, st := range steps[:min(top, len(steps))] {
		out = append(out, fmt.Sprintf("%s %.1f/%.1f", st.name, st.p50, st.p99))
	}
	return out
}

// Stop stops the collector.
func (s *Sink) Stop() { s.srv.Stop() }
