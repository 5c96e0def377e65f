package router_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/durationpb"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform/platformtest"
	"github.com/leadflow/leadflow/services/routing/router"
)

// rtt counts Redis round trips: every command or pipeline sent.
type rtt struct{ n atomic.Int64 }

func (h *rtt) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *rtt) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *rtt) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkRouteLead measures routing decisions per second against a real
// Redis (one decision = RouteLead of a new lead: target, rep choice and
// capacity in one script, decision record and events in one pipeline, SLA
// timers) and Redis round trips per decision. Modes: assign (no SLA policy),
// assign+sla (first-touch and touches timers), queue (every rep full).
func BenchmarkRouteLead(b *testing.B) {
	for _, mode := range []string{"assign", "assign+sla", "queue"} {
		b.Run(mode, func(b *testing.B) {
			red := platformtest.StartRedis(b)
			rt := platformtest.Runtime(b, "routing", red.URL())
			h := &rtt{}
			rt.Redis.AddHook(h)
			c := newClock()
			r := router.New(router.Deps{Redis: rt.Redis, Tracer: rt.Tracer(), Meter: rt.Meter(), Logger: rt.Logger, Events: rt.Events},
				router.Options{Now: c.Now})
			capacity := int32(1 << 30)
			if mode == "queue" {
				capacity = 1
			}
			team := &routingv1.Team{Id: "t"}
			for i := range 10 {
				team.Reps = append(team.Reps, rep(fmt.Sprintf("rep-%d", i), int32(1+i%3), capacity))
			}
			cfg := baseConfig()
			cfg.Teams = append(cfg.Teams, team)
			cfg.DefaultTeamId = "t"
			if mode == "assign+sla" {
				cfg.SlaPolicies = append(cfg.SlaPolicies, &routingv1.SlaPolicy{Id: "t", TeamId: "t", FirstTouchWithin: durationpb.New(time.Hour),
					TouchesRequired: 3, TouchesWithin: durationpb.New(48 * time.Hour)})
			}
			if _, err := r.ApplyConfig(context.Background(), cfg, 0); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// warm up (script load)
			for i := range 20 {
				p := &leadv1.LeadProfile{LeadId: fmt.Sprintf("warm-%d", i)}
				if _, _, err := r.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: p, Score: &leadv1.Score{Total: 50}}); err != nil {
					b.Fatal(err)
				}
			}
			var seq atomic.Int64
			h.n.Store(0)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p := &leadv1.LeadProfile{LeadId: fmt.Sprintf("bench-%d", seq.Add(1)), Organisation: &leadv1.Organisation{CountryCode: "FR"}}
					if _, _, err := r.RouteLead(ctx, &routingv1.RouteLeadRequest{Profile: p, Score: &leadv1.Score{Total: 50, Heat: leadv1.Heat_HEAT_WARM}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(h.n.Load())/float64(b.N), "redis-rtt/op")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}
