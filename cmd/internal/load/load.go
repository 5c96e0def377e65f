// Package load drives full lead journeys against a running LeadFlow suite
// (capture → scored → routed → assigned or queued, and a share of them on to
// accept, touch, qualify and close the deal won), measures throughput and latency per RPC and end
// to end, checks conservation (every lead answered OK is accounted for, no
// duplicates, no dead letters) and measures two baselines on the same
// machine in the same run: a plain gRPC echo on loopback and raw Redis PING
// round trips. It is the engine of `leadflow load` and `make bench`.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/leadflow/leadflow/cmd/internal/client"
	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	opsv1 "github.com/leadflow/leadflow/gen/go/leadflow/ops/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

// Config says what to drive and for how long. The run is always bounded:
// by Duration, by Count, or by both (whichever comes first).
type Config struct {
	Addrs client.Addrs
	Token string
	// RedisURL, when set, enables the Redis PING baseline and the command
	// count (INFO commandstats before/after).
	RedisURL string
	// Rate is journeys started per second; 0 = as fast as Concurrency allows.
	Rate float64
	// Concurrency is the number of journeys in flight at most.
	Concurrency int
	// Duration bounds the submitting phase; Count bounds the number of
	// journeys. At least one must be set.
	Duration time.Duration
	Count    int
	// Further is the share (0..1) of assigned leads taken on to accept,
	// touch, BANT and QUALIFIED.
	Further float64
	// CloseDeals: the further leads' deals (opened by scoring's hand-off)
	// are then found with pipeline ListDeals lead_id and closed won, and
	// conservation wants one won deal per further lead. leadflow load sets
	// it (--close-deals, default true); a library caller that wants open
	// deals left (leadflow seed's templates) leaves it false.
	CloseDeals bool
	// CallTimeout is the deadline of each call; AssignWait how long a
	// journey waits for its lead to be routed.
	CallTimeout, AssignWait time.Duration
	// InboxGrace is how long a journey waits for its lead's ASSIGNED item
	// on the reps' inbox streams before it polls routing GetAssignment
	// (queued, nurturing and bad-fit leads never reach an inbox).
	InboxGrace time.Duration
	// InboxStreams caps the WatchInbox streams (one per rep; each holds a
	// Redis connection of routing in a blocking read). 0 = 32.
	InboxStreams int
	// InboxView is the view the streams ask for: BASIC (the notification,
	// as a service reacting to assignments reads it; what a journey needs)
	// or FULL (with profile, score and contact, as a rep's UI reads it:
	// routing also reads the leads' records and asks capture for their
	// contacts). Unspecified is routing's default, FULL.
	InboxView routingv1.InboxView
	// PollOnly observes every lead by polling GetAssignment (no inbox
	// streams), as the tool did before: for comparison.
	PollOnly bool
	// Baseline is how long each baseline runs (0 = skip baselines).
	Baseline time.Duration
	// AllowRemote permits non-loopback addresses.
	AllowRemote bool
	// OTLPSink, when set (host:port), serves an in-process OTLP/gRPC trace
	// collector there for the whole run and reports the spans it received.
	OTLPSink string
	// RunID makes the run's leads unique (e-mails, idempotency keys).
	RunID string
	// CPUProfile, when set, receives a CPU profile of this process over
	// the journeys (not the baselines or the read-back): where the load
	// tool's own share of the machine goes.
	CPUProfile io.Writer
}

// Report is a run's figures.
type Report struct {
	Started, Accepted, Failed int64 // SubmitLead calls started, answered OK, failed
	Elapsed                   time.Duration
	Throughput                float64 // leads answered OK and routed per second
	SubmitRate                float64 // leads answered OK per second
	RPC                       map[string]*Hist
	EndToEnd                  *Hist // SubmitLead start → assignment observed
	// How journeys learned where their lead went: an ASSIGNED item on a
	// rep's inbox stream, or polling GetAssignment after the grace.
	ByInbox, ByPoll int64
	// GetAssignment calls made by journeys (every answer, NotFound too).
	Polls int64
	// Inbox streams opened (-1 = none: PollOnly or GetConfig failed), reps
	// in the configuration, stream reconnects and items received.
	InboxStreams, InboxReps     int
	InboxView                   routingv1.InboxView
	InboxReconnects, InboxItems int64
	InboxLag                    *Hist // ASSIGNED item written → received

	Errors map[string]int64
	// Conservation.
	Assigned, Queued, Nurturing, BadFit, Other, Unaccounted int64
	Duplicates                                              int64
	DeadLetters                                             int64
	DeadLetterNote                                          string
	Further                                                 int64
	// Deals of the further leads that CloseWon answered OK for and that
	// read back WON at the end; with CloseDeals conservation wants one per
	// further lead.
	Closed     int64
	CloseDeals bool
	// EventsBehind is how many events the event stream's consumers
	// (reporting) had not applied when the last journey ended; CatchUp how
	// long after it the suite was idle (Settle: those events applied, no
	// hand-off due), or how long the tool waited when CaughtUp is false.
	// Sustained is the journeys routed over the run and the catch-up
	// together: the rate at which the suite finished all the work they
	// caused. Zero without --redis (not measured).
	EventsBehind int64
	CatchUp      time.Duration
	CaughtUp     bool
	Sustained    float64
	// Rate is the run's --rate (0 = as fast as possible).
	Rate float64
	// FurtherShare is the run's --further: its leads' later steps share the
	// machine with the capture→assigned journeys the targets count.
	FurtherShare float64
	// Baselines.
	EchoRate, EchoP50, EchoP99    float64 // calls/s, ms
	RedisRate, RedisP50, RedisP99 float64
	// Redis commands per lead answered OK, from INFO commandstats.
	CommandsPerLead float64
	// RoundTripsPerLead is Redis's reads of client requests per lead
	// answered OK (INFO stats total_reads_processed): round trips of every
	// client, in traces or not (0 = not read).
	RoundTripsPerLead float64
	TopCommands       []string
	// TopCommandTime is Redis's time per lead (µs, INFO commandstats usec)
	// of the commands that took most; a script's includes its commands.
	TopCommandTime []string
	// Spans received by the OTLP sink (-1 = no sink), and of those the
	// go-redis spans: one per Redis round trip.
	Spans, RedisSpans int64
	// RedisByService is the go-redis spans per lead of each service.
	RedisByService []string
	// SpansByName is the spans per lead of the most frequent
	// "service span-name" pairs.
	SpansByName []string
	// SlowestSteps is the p50/p99 (ms) of the slowest spans most leads have.
	SlowestSteps []string
	// CPU per lead answered OK (zero Total when it could not be read).
	CPU CPUPerLead
}

// CheckAddrs refuses non-loopback addresses unless allowRemote.
func CheckAddrs(addrs []string, allowRemote bool) error {
	if allowRemote {
		return nil
	}
	for _, a := range addrs {
		if a == "" {
			continue
		}
		host := a
		if u, ok := strings.CutPrefix(a, "redis://"); ok {
			host = u
			if i := strings.LastIndex(host, "@"); i >= 0 {
				host = host[i+1:]
			}
			if i := strings.Index(host, "/"); i >= 0 {
				host = host[:i]
			}
		}
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			h = host
		}
		if h == "localhost" {
			continue
		}
		ip := net.ParseIP(h)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%q is not a loopback address: load sends traffic only to loopback unless --allow-remote", a)
		}
	}
	return nil
}

// Hist records latencies (kept in full: runs are bounded).
type Hist struct {
	mu sync.Mutex
	d  []time.Duration
}

func (h *Hist) Add(d time.Duration) {
	h.mu.Lock()
	h.d = append(h.d, d)
	h.mu.Unlock()
}

// N is the number of samples.
func (h *Hist) N() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.d)
}

// Quantile q (0..1) in milliseconds.
func (h *Hist) Quantile(q float64) float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.d) == 0 {
		return math.NaN()
	}
	sort.Slice(h.d, func(i, j int) bool { return h.d[i] < h.d[j] })
	i := int(math.Ceil(q*float64(len(h.d)))) - 1
	if i < 0 {
		i = 0
	}
	return float64(h.d[i]) / float64(time.Millisecond)
}

type runner struct {
	cfg   Config
	c     *client.Clients
	rep   *Report
	inbox *inboxWatch // nil: every lead is polled

	byInbox, byPoll, polls atomic.Int64

	mu   sync.Mutex
	ids  map[string]int // lead id → submissions that returned it
	errs map[string]int64
	won  []string // deals CloseWon answered OK for
}

func (r *runner) hist(name string) *Hist {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.rep.RPC[name]
	if !ok {
		h = &Hist{}
		r.rep.RPC[name] = h
	}
	return h
}

func (r *runner) fail(name string, err error) {
	r.mu.Lock()
	r.errs[name+" "+status.Code(err).String()]++
	r.mu.Unlock()
}

// timed runs one call with the call deadline and records its latency.
func timed[Req, Resp any](ctx context.Context, r *runner, name string, fn func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	t0 := time.Now()
	resp, err := fn(cctx, req)
	if err != nil {
		r.fail(name, err)
		return resp, err
	}
	r.hist(name).Add(time.Since(t0))
	return resp, nil
}

// Submission is the i-th lead of a run: a good fit (the default scoring
// model makes it an MQL on fit alone), unique e-mail per run.
func Submission(runID string, i int) *capturev1.LeadSubmission {
	dom := fmt.Sprintf("co%d-%s.loadtest.example", i%997, runID)
	return &capturev1.LeadSubmission{
		Contact: &leadv1.Contact{FirstName: "Load", LastName: "Test" + strconv.Itoa(i), Email: fmt.Sprintf("lead%d@%s", i, dom), JobTitle: "VP Engineering"},
		Company: &capturev1.Company{Name: "Load Co " + strconv.Itoa(i%997), Website: "https://www." + dom, Industry: "software",
			EmployeeCount: 250, Country: "US", Region: "US-CA", AnnualRevenue: &leadv1.Money{AmountMinor: 40_000_000_00, CurrencyCode: "USD"}},
		ProductInterests: []string{"analytics"},
		Touch:            &leadv1.Touch{Channel: leadv1.Channel_CHANNEL_WEB_FORM, Source: "google", Medium: "cpc", Campaign: "load"},
		Consent:          &leadv1.Consent{MarketingOptIn: true, GivenAt: timestamppb.New(consentAt), WordingVersion: "privacy-2026-03"},
	}
}

// RunTargets runs cfg twice, as the targets are defined: at the maximum
// rate (cfg.Rate must be 0), then paced at half the journeys/s that run
// reached, so that SubmitLead's p99 is judged at half the maximum measured
// in the same machine state. PrintTargets judges the pair.
func RunTargets(ctx context.Context, cfg Config, logw io.Writer) (maximum, half *Report, err error) {
	if cfg.Rate != 0 {
		return nil, nil, errors.New("load: the targets run first at the maximum rate: leave --rate out")
	}
	if maximum, err = Run(ctx, cfg, logw); err != nil {
		return nil, nil, err
	}
	if maximum.Judged() <= 0 {
		return maximum, nil, errors.New("load: no journey was routed at the maximum rate, so there is no half of it to run at")
	}
	cfg.Rate = maximum.Judged() / 2
	// New leads (a run's id is in its e-mails and idempotency keys), and
	// the tool's profile, if asked for, is of the first run only.
	if cfg.RunID != "" {
		cfg.RunID += "h"
	}
	cfg.CPUProfile = nil
	fmt.Fprintf(logw, "targets: the second run is paced at half the maximum, --rate %.0f\n", cfg.Rate)
	if half, err = Run(ctx, cfg, logw); err != nil {
		return maximum, nil, err
	}
	return maximum, half, nil
}

// Run drives the load and returns the report. Progress lines go to logw.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Report, error) {
	if cfg.Duration <= 0 && cfg.Count <= 0 {
		return nil, errors.New("load: set a duration or a count (the run must be bounded)")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.AssignWait <= 0 {
		cfg.AssignWait = 30 * time.Second
	}
	if cfg.InboxGrace <= 0 {
		cfg.InboxGrace = 2 * time.Second
	}
	if cfg.InboxStreams <= 0 {
		cfg.InboxStreams = 32
	}
	if cfg.RunID == "" {
		cfg.RunID = strconv.FormatInt(time.Now().UnixNano()%1e10, 36)
	}
	if err := CheckAddrs([]string{cfg.Addrs.Capture, cfg.Addrs.Scoring, cfg.Addrs.Routing, cfg.Addrs.Pipeline, cfg.Addrs.Reporting, cfg.RedisURL}, cfg.AllowRemote); err != nil {
		return nil, err
	}
	c, err := client.Dial(cfg.Addrs, cfg.Token)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rep := &Report{RPC: map[string]*Hist{}, EndToEnd: &Hist{}, Errors: map[string]int64{}, Spans: -1, RedisSpans: -1, InboxStreams: -1, Rate: cfg.Rate, FurtherShare: cfg.Further}
	var sink *Sink
	if cfg.OTLPSink != "" {
		if sink, err = StartSink(cfg.OTLPSink); err != nil {
			return nil, fmt.Errorf("otlp sink: %w", err)
		}
		defer sink.Stop()
	}
	r := &runner{cfg: cfg, c: c, rep: rep, ids: map[string]int{}, errs: map[string]int64{}}

	var rdb *redis.Client
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
		opt.PoolSize = cfg.Concurrency
		rdb = redis.NewClient(opt)
		defer rdb.Close()
	}

	// Baselines first (the suite is idle, as in the measured phase's start).
	if cfg.Baseline > 0 {
		fmt.Fprintf(logw, "baseline: gRPC health echo on loopback, %d concurrent, %s\n", cfg.Concurrency, cfg.Baseline)
		if rep.EchoRate, rep.EchoP50, rep.EchoP99, err = EchoBaseline(ctx, cfg.Concurrency, cfg.Baseline); err != nil {
			return nil, fmt.Errorf("echo baseline: %w", err)
		}
		if rdb != nil {
			fmt.Fprintf(logw, "baseline: Redis PING, %d concurrent, %s\n", cfg.Concurrency, cfg.Baseline)
			rep.RedisRate, rep.RedisP50, rep.RedisP99 = RedisBaseline(ctx, rdb, cfg.Concurrency, cfg.Baseline)
		}
	}

	var before map[string]redisx.CommandStat
	var cpuBefore CPU
	cpuOK := false
	var readsBefore int64
	var readsErr error
	if rdb != nil {
		before, _ = redisx.CommandStats(ctx, rdb)
		cpuBefore, cpuOK = ReadCPU(ctx, rdb)
		readsBefore, readsErr = redisx.ReadsProcessed(ctx, rdb)
	}

	// The inbox streams open after the baselines and before the first
	// submission (their cursor is "now").
	if !cfg.PollOnly {
		w, err := startInbox(ctx, c.Routing, cfg.InboxStreams, cfg.InboxView, cfg.CallTimeout, logw)
		if err != nil {
			fmt.Fprintf(logw, "inbox: %v: every lead is observed by polling GetAssignment\n", err)
		} else {
			r.inbox = w
			defer w.stop()
			rep.InboxStreams, rep.InboxReps, rep.InboxView = w.streams, w.reps, w.view
		}
	}

	fmt.Fprintf(logw, "load: run %s, rate %s, %d concurrent, duration %s, count %d\n", cfg.RunID, rateText(cfg.Rate), cfg.Concurrency, cfg.Duration, cfg.Count)
	runCtx := ctx
	var cancel context.CancelFunc = func() {}
	if cfg.Duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
	}
	defer cancel()

	type lead struct {
		id    string
		i     int
		state routingv1.AssignmentState
	}
	var (
		leadsMu sync.Mutex
		leads   []lead
		started atomic.Int64
		routed  atomic.Int64
		wg      sync.WaitGroup
		sem     = make(chan struct{}, cfg.Concurrency)
	)
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
	}
	t0 := time.Now()
	var pace *pacer
	if cfg.Rate > 0 {
		pace = &pacer{start: t0, rate: cfg.Rate, now: time.Now, sleep: sleepCtx}
	}
loop:
	for i := 0; cfg.Count <= 0 || i < cfg.Count; i++ {
		if pace != nil && !pace.wait(runCtx, i) {
			break loop
		}
		select {
		case <-runCtx.Done():
			break loop
		case sem <- struct{}{}:
		}
		started.Add(1)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			// The journey itself runs on ctx (not runCtx): a journey started
			// before the end is finished, bounded by its own deadlines.
			js := time.Now()
			resp, err := timed(ctx, r, "capture.SubmitLead", c.Capture.SubmitLead, &capturev1.SubmitLeadRequest{
				IdempotencyKey: "load-" + cfg.RunID + "-" + strconv.Itoa(i), Submission: Submission(cfg.RunID, i),
			})
			if err != nil {
				return
			}
			r.mu.Lock()
			r.ids[resp.GetLeadId()]++
			r.mu.Unlock()
			l := lead{id: resp.GetLeadId(), i: i}
			st, rep2, seen := r.waitRouted(ctx, l.id)
			l.state = st
			if st != routingv1.AssignmentState_ASSIGNMENT_STATE_UNSPECIFIED {
				rep.EndToEnd.Add(seen.Sub(js))
				routed.Add(1)
			}
			if st == routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED && cfg.Further > 0 && float64(i%100) < cfg.Further*100 {
				if r.further(ctx, l.id, rep2) {
					atomic.AddInt64(&rep.Further, 1)
					if cfg.CloseDeals {
						if deal := r.closeDeal(ctx, l.id); deal != "" {
							r.mu.Lock()
							r.won = append(r.won, deal)
							r.mu.Unlock()
						}
					}
				}
			}
			leadsMu.Lock()
			leads = append(leads, l)
			leadsMu.Unlock()
		}(i)
	}
	submitEnd := time.Since(t0)
	wg.Wait()
	rep.Elapsed = time.Since(t0)
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if r.inbox != nil {
		r.inbox.stop()
		rep.InboxReconnects, rep.InboxItems, rep.InboxLag = r.inbox.reconnects.Load(), r.inbox.items.Load(), &r.inbox.lag
	}
	rep.ByInbox, rep.ByPoll, rep.Polls = r.byInbox.Load(), r.byPoll.Load(), r.polls.Load()
	rep.Started = started.Load()
	rep.Accepted = int64(len(r.ids))
	for _, n := range r.ids {
		if n > 1 {
			rep.Duplicates += int64(n - 1)
		}
	}
	// Accepted counts distinct ids; the OK answers are the SubmitLead samples.
	ok := int64(r.hist("capture.SubmitLead").N())
	rep.Accepted = ok
	rep.Failed = rep.Started - ok
	rep.SubmitRate = float64(ok) / submitEnd.Seconds()
	rep.Throughput = float64(routed.Load()) / rep.Elapsed.Seconds()

	// The event consumers may lag behind the journeys at the maximum rate:
	// their catch-up is work the journeys caused, so the sustained rate,
	// the CPU per lead and the spans count it.
	if rdb != nil {
		rep.EventsBehind, _ = EventsBehind(ctx, rdb)
		t := time.Now()
		_, err := Settle(ctx, rdb, catchUpMax)
		rep.CatchUp, rep.CaughtUp = time.Since(t), err == nil
		if err != nil {
			fmt.Fprintf(logw, "catch-up: %v\n", err)
		}
		rep.Sustained = float64(routed.Load()) / (rep.Elapsed + rep.CatchUp).Seconds()
	}

	// Counted before the read-back below adds its own calls. Spans still in
	// the services' batch exporters (a few seconds' worth) are missed.
	if sink != nil {
		rep.Spans, rep.RedisSpans = sink.Spans(), sink.RedisSpans()
		rep.RedisByService = sink.RedisSpansByService(ok)
		rep.SpansByName = sink.SpansByName(ok, 12)
		rep.SlowestSteps = sink.SlowestSteps(ok, 10)
	}
	var after map[string]redisx.CommandStat
	var afterErr error
	if rdb != nil {
		after, afterErr = redisx.CommandStats(ctx, rdb)
		if cpuAfter, read := ReadCPU(ctx, rdb); read && cpuOK && ok > 0 {
			rep.CPU = cpuPerLead(cpuBefore, cpuAfter, ok, rep.EchoRate)
		}
		if reads, err := redisx.ReadsProcessed(ctx, rdb); err == nil && readsErr == nil && ok > 0 {
			rep.RoundTripsPerLead = float64(reads-readsBefore) / float64(ok)
		}
	}

	// Conservation: every lead answered OK must be assigned, queued,
	// nurturing or bad fit, read back from routing and scoring.
	fmt.Fprintf(logw, "conservation: reading back %d leads\n", len(r.ids))
	ids := make([]string, 0, len(r.ids))
	for id := range r.ids {
		ids = append(ids, id)
	}
	r.account(ctx, ids)
	rep.CloseDeals = cfg.CloseDeals
	if cfg.CloseDeals && cfg.Further > 0 {
		fmt.Fprintf(logw, "conservation: reading back %d won deals\n", len(r.won))
		r.readBackWon(ctx)
	}

	if rdb != nil {
		if afterErr == nil && ok > 0 {
			calls, usec := map[string]int64{}, map[string]int64{}
			var total int64
			for k, v := range after {
				if k == "ping" || k == "info" || v.Calls <= before[k].Calls {
					continue
				}
				calls[k], usec[k] = v.Calls-before[k].Calls, v.Usec-before[k].Usec
				total += calls[k]
			}
			rep.TopCommands = topPerLead(calls, ok, 8, "%s %.1f")
			rep.TopCommandTime = topPerLead(usec, ok, 8, "%s %.0f")
			rep.CommandsPerLead = float64(total) / float64(ok)
		}
	}
	rep.DeadLetters, rep.DeadLetterNote = DeadLettersAPI(ctx, c)
	r.mu.Lock()
	for k, v := range r.errs {
		rep.Errors[k] = v
	}
	r.mu.Unlock()
	return rep, nil
}

// catchUpMax bounds the wait for the suite to be idle after the journeys.
const catchUpMax = time.Minute

// Judged is the journeys/s the throughput target is judged on: the
// sustained rate when the catch-up was measured, else the run's own.
func (r *Report) Judged() float64 {
	if r.Sustained > 0 {
		return r.Sustained
	}
	return r.Throughput
}

// pacer starts journeys at a fixed rate by schedule: journey i is due at
// start + i/rate, so a late wake-up (timer overshoot, a busy machine) is
// made up by the next starts at once instead of lowering the rate, as a
// ticker dropping its ticks did (--rate 1000 gave 813 journeys/s here).
type pacer struct {
	start time.Time
	rate  float64 // journeys per second
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) bool
}

// wait returns when journey i is due: true, or false when ctx ended first.
func (p *pacer) wait(ctx context.Context, i int) bool {
	due := p.start.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))
	if d := due.Sub(p.now()); d > 0 {
		return p.sleep(ctx, d)
	}
	return ctx.Err() == nil
}

// sleepCtx sleeps for d: true, or false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func rateText(r float64) string {
	if r <= 0 {
		return "max"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// waitRouted learns where the lead went, and when: from its ASSIGNED item
// on the inbox streams when one comes within InboxGrace, else by polling
// routing GetAssignment until the lead is assigned or queued, or AssignWait
// passes (nurturing and bad-fit leads are never routed). An inbox item that
// comes while polling still counts. seen is when it was observed.
func (r *runner) waitRouted(ctx context.Context, id string) (st routingv1.AssignmentState, repID string, seen time.Time) {
	deadline := time.Now().Add(r.cfg.AssignWait)
	var note <-chan inboxNote
	if r.inbox != nil {
		ch, done := r.inbox.expect(id)
		defer done()
		note = ch
		grace := time.NewTimer(min(r.cfg.InboxGrace, r.cfg.AssignWait))
		select {
		case n := <-ch:
			grace.Stop()
			r.byInbox.Add(1)
			return routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED, n.rep, n.at
		case <-grace.C:
		case <-ctx.Done():
			grace.Stop()
			return routingv1.AssignmentState_ASSIGNMENT_STATE_UNSPECIFIED, "", time.Now()
		}
	}
	// The poll is itself load: start at 20 ms, back off to 200 ms (the
	// end-to-end figure is accurate to about one poll interval).
	wait := 20 * time.Millisecond
	for time.Now().Before(deadline) && ctx.Err() == nil {
		r.polls.Add(1)
		a, err := timed(ctx, r, "routing.GetAssignment", r.c.Routing.GetAssignment, &routingv1.GetAssignmentRequest{LeadId: id})
		if err == nil {
			switch st := a.GetAssignment().GetState(); st {
			case routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED, routingv1.AssignmentState_ASSIGNMENT_STATE_QUEUED, routingv1.AssignmentState_ASSIGNMENT_STATE_ACCEPTED:
				r.byPoll.Add(1)
				return st, a.GetAssignment().GetRepId(), time.Now()
			}
		}
		t := time.NewTimer(wait)
		select {
		case n := <-note: // nil without streams: never ready
			t.Stop()
			r.byInbox.Add(1)
			return routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED, n.rep, n.at
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if wait < 200*time.Millisecond {
			wait = min(2*wait, 200*time.Millisecond)
		}
	}
	return routingv1.AssignmentState_ASSIGNMENT_STATE_UNSPECIFIED, "", time.Now()
}

// further takes an assigned lead on: accept, touch, BANT, QUALIFIED (then
// closeDeal closes its deal).
func (r *runner) further(ctx context.Context, id, repID string) bool {
	if _, err := timed(ctx, r, "routing.AcceptLead", r.c.Routing.AcceptLead, &routingv1.AcceptLeadRequest{LeadId: id, RepId: repID}); err != nil {
		return false
	}
	if _, err := timed(ctx, r, "routing.RecordTouch", r.c.Routing.RecordTouch, &routingv1.RecordTouchRequest{LeadId: id, RepId: repID, Type: routingv1.TouchType_TOUCH_TYPE_CALL, TouchId: "load-touch-" + id}); err != nil {
		return false
	}
	if _, err := timed(ctx, r, "scoring.UpdateBant", r.c.Scoring.UpdateBant, &scoringv1.UpdateBantRequest{LeadId: id, Bant: &scoringv1.Bant{
		Budget: &leadv1.Money{AmountMinor: 60_000_00, CurrencyCode: "USD"}, BudgetConfirmed: true,
		AuthorityRole: scoringv1.AuthorityRole_AUTHORITY_ROLE_DECISION_MAKER, NeedDescription: "load test", NeedConfirmed: true,
		Timeline: timestamppb.New(time.Now().AddDate(0, 1, 0)),
	}}); err != nil {
		return false
	}
	// SetStatus QUALIFIED may race routing's WORKING hand-off (FailedPrecondition
	// until the lead is WORKING): retry a few times.
	for attempt := 0; attempt < 20; attempt++ {
		_, err := timed(ctx, r, "scoring.SetStatus", r.c.Scoring.SetStatus, &scoringv1.SetStatusRequest{
			LeadId: id, Status: leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, Reason: "load", RequestId: "load-q-" + id,
		})
		if err == nil {
			return true
		}
		if status.Code(err) != codes.FailedPrecondition {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// closeDeal waits (bounded by AssignWait, polling pipeline ListDeals by lead
// with backoff from 50 ms to 500 ms) for the deal scoring's hand-off opens
// once the lead is QUALIFIED, and closes it won. It returns the deal id, or
// "" when there was none in time or the close failed.
func (r *runner) closeDeal(ctx context.Context, lead string) string {
	deadline := time.Now().Add(r.cfg.AssignWait)
	wait := 50 * time.Millisecond
	var deal string
	for {
		l, err := timed(ctx, r, "pipeline.ListDeals", r.c.Pipeline.ListDeals, &pipelinev1.ListDealsRequest{LeadId: lead})
		if err == nil && len(l.GetDeals()) > 0 {
			deal = l.GetDeals()[0].GetId()
			break
		}
		if !time.Now().Add(wait).Before(deadline) {
			r.fail("pipeline.ListDeals (no deal in time)", status.Error(codes.DeadlineExceeded, ""))
			return ""
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
	// The same amount and close date on a retry: CloseWon is idempotent.
	req := &pipelinev1.CloseWonRequest{DealId: deal, Amount: &leadv1.Money{AmountMinor: 60_000_00, CurrencyCode: "USD"}, ClosedAt: timestamppb.Now()}
	for attempt := 0; attempt < 3; attempt++ {
		_, err := timed(ctx, r, "pipeline.CloseWon", r.c.Pipeline.CloseWon, req)
		switch status.Code(err) {
		case codes.OK:
			return deal
		case codes.Aborted, codes.Unavailable, codes.DeadlineExceeded:
			continue
		}
		return ""
	}
	return ""
}

// readBackWon reads every deal closed won back from pipeline.
func (r *runner) readBackWon(ctx context.Context) {
	var won atomic.Int64
	r.forEach(ctx, r.won, func(cctx context.Context, id string) {
		d, err := r.c.Pipeline.GetDeal(cctx, &pipelinev1.GetDealRequest{DealId: id})
		if err == nil && d.GetDeal().GetStatus() == pipelinev1.DealStatus_DEAL_STATUS_WON {
			won.Add(1)
		}
	})
	r.rep.Closed = won.Load()
}

// forEach calls fn for every id, Concurrency at a time, each with the call
// timeout, and returns when all are done.
func (r *runner) forEach(ctx context.Context, ids []string, fn func(ctx context.Context, id string)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.cfg.Concurrency)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
			defer cancel()
			fn(cctx, id)
		}()
	}
	wg.Wait()
}

// account reads every lead back and sorts it into the conservation classes.
func (r *runner) account(ctx context.Context, ids []string) {
	var assigned, queued, nurturing, badFit, other, unacc atomic.Int64
	r.forEach(ctx, ids, func(cctx context.Context, id string) {
		a, err := r.c.Routing.GetAssignment(cctx, &routingv1.GetAssignmentRequest{LeadId: id})
		if err == nil {
			switch a.GetAssignment().GetState() {
			case routingv1.AssignmentState_ASSIGNMENT_STATE_ASSIGNED, routingv1.AssignmentState_ASSIGNMENT_STATE_ACCEPTED:
				assigned.Add(1)
				return
			case routingv1.AssignmentState_ASSIGNMENT_STATE_QUEUED:
				queued.Add(1)
				return
			}
		}
		l, err := r.c.Scoring.GetLead(cctx, &scoringv1.GetLeadRequest{LeadId: id})
		if err != nil {
			unacc.Add(1)
			return
		}
		switch l.GetLead().GetStatus() {
		case leadv1.ProspectStatus_PROSPECT_STATUS_NURTURING:
			nurturing.Add(1)
		case leadv1.ProspectStatus_PROSPECT_STATUS_BAD_FIT:
			badFit.Add(1)
		case leadv1.ProspectStatus_PROSPECT_STATUS_QUALIFIED, leadv1.ProspectStatus_PROSPECT_STATUS_WORKING:
			// Taken further (deal opened, assignment closed): assigned.
			assigned.Add(1)
		default:
			unacc.Add(1)
		}
	})
	r.rep.Assigned, r.rep.Queued, r.rep.Nurturing, r.rep.BadFit, r.rep.Other, r.rep.Unaccounted =
		assigned.Load(), queued.Load(), nurturing.Load(), badFit.Load(), other.Load(), unacc.Load()
}

// EchoBaseline serves grpc.health.v1 on a loopback port in this process and
// calls Check with the given concurrency for d: the rate (calls/s) and p50,
// p99 (ms) of the plainest gRPC round trip on this machine.
func EchoBaseline(ctx context.Context, conc int, d time.Duration) (rate, p50, p99 float64, err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, 0, err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	return hammer(ctx, conc, d, func(ctx context.Context) error {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	})
}

// RedisBaseline sends PING with the given concurrency for d.
func RedisBaseline(ctx context.Context, rdb *redis.Client, conc int, d time.Duration) (rate, p50, p99 float64) {
	rate, p50, p99, _ = hammer(ctx, conc, d, func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	return
}

func hammer(ctx context.Context, conc int, d time.Duration, call func(context.Context) error) (rate, p50, p99 float64, err error) {
	h := &Hist{}
	var n atomic.Int64
	var firstErr atomic.Value
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				s := time.Now()
				if err := call(ctx); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				h.Add(time.Since(s))
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return 0, 0, 0, e
	}
	return float64(n.Load()) / time.Since(t0).Seconds(), h.Quantile(0.5), h.Quantile(0.99), nil
}

// DeadLettersAPI counts what the suite gave up on, through its APIs: the
// dead jobs of every queue (JobsService ListQueues of capture, scoring,
// routing and pipeline) and the events reporting's consumer dead-lettered
// (ReportingService ListDeadLetters). -1 when a service cannot be asked.
func DeadLettersAPI(ctx context.Context, c *client.Clients) (int64, string) {
	var total int64
	var parts []string
	for _, svc := range client.JobServices {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.Jobs[svc].ListQueues(cctx, &opsv1.ListQueuesRequest{})
		cancel()
		if err != nil {
			return -1, fmt.Sprintf("not checked: %s ListQueues: %v", svc, err)
		}
		for _, q := range resp.GetQueues() {
			total += q.GetDead()
			if q.GetDead() > 0 {
				parts = append(parts, fmt.Sprintf("%s/%s=%d", svc, q.GetName(), q.GetDead()))
			}
		}
	}
	var events int64
	token := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.Reporting.ListDeadLetters(cctx, &reportingv1.ListDeadLettersRequest{PageSize: 500, PageToken: token})
		cancel()
		if err != nil {
			return -1, fmt.Sprintf("not checked: reporting ListDeadLetters: %v", err)
		}
		events += int64(len(resp.GetDeadLetters()))
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if events > 0 {
		parts = append(parts, fmt.Sprintf("reporting events=%d", events))
	}
	note := "read through the APIs: JobsService ListQueues of capture, scoring, routing and pipeline, and reporting ListDeadLetters"
	if len(parts) > 0 {
		note += ": " + strings.Join(parts, ", ")
	}
	return total + events, note
}

// DeadLetters counts the jobs in every platform/jobs dead-letter key
// (lf:{jobs:<queue>}:dead), read directly from Redis (the fault tests, which
// check Redis itself).
func DeadLetters(ctx context.Context, rdb *redis.Client) (int64, string) {
	var total int64
	var parts []string
	iter := rdb.Scan(ctx, 0, "lf:{jobs:*}:dead", 200).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		n, _ := rdb.ZCard(ctx, k).Result() // platform/jobs keeps its dead letters in a sorted set
		total += n
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	if err := iter.Err(); err != nil {
		return -1, "not checked: " + err.Error()
	}
	note := "read from Redis keys lf:{jobs:*}:dead"
	if len(parts) > 0 {
		note += ": " + strings.Join(parts, " ")
	}
	return total, note
}

// consentAt is the consent time of every load submission: fixed, so the same
// (run, i) is the same submission (a retry with its idempotency key matches).
var consentAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
