package load

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"
)

// Print writes the report as a table, every figure also as a ratio to the
// baselines measured in the same run.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	ratio := func(a, b float64) string {
		if b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
			return "-"
		}
		return fmt.Sprintf("%.3g", a/b)
	}
	fmt.Fprintf(w, "\nBaselines (same run, same concurrency)\n")
	fmt.Fprintf(tw, "\tcalls/s\tp50 ms\tp99 ms\t\n")
	fmt.Fprintf(tw, "gRPC echo (health.Check, loopback)\t%.0f\t%.3f\t%.3f\t\n", r.EchoRate, r.EchoP50, r.EchoP99)
	fmt.Fprintf(tw, "Redis PING\t%.0f\t%.3f\t%.3f\t\n", r.RedisRate, r.RedisP50, r.RedisP99)
	_ = tw.Flush()

	fmt.Fprintf(w, "\nJourneys: %d started, %d answered OK, %d failed, %.1fs\n", r.Started, r.Accepted, r.Failed, r.Elapsed.Seconds())
	fmt.Fprintf(tw, "\tper s\t÷ echo rate\techo ÷ x\t\n")
	fmt.Fprintf(tw, "SubmitLead answered OK\t%.1f\t%s\t%s\t\n", r.SubmitRate, ratio(r.SubmitRate, r.EchoRate), ratio(r.EchoRate, r.SubmitRate))
	fmt.Fprintf(tw, "capture→assigned/queued (end to end)\t%.1f\t%s\t%s\t\n", r.Throughput, ratio(r.Throughput, r.EchoRate), ratio(r.EchoRate, r.Throughput))
	if r.Sustained > 0 {
		fmt.Fprintf(tw, "capture→assigned/queued, sustained (run + catch-up)\t%.1f\t%s\t%s\t\n", r.Sustained, ratio(r.Sustained, r.EchoRate), ratio(r.EchoRate, r.Sustained))
	}
	_ = tw.Flush()
	r.printCatchUp(w)
	switch {
	case r.InboxStreams >= 0:
		fmt.Fprintf(w, "Observed: %d through the reps' inbox streams (routing WatchInbox view %s, %d streams for %d reps, %d items, %d reconnects), %d by polling GetAssignment after the grace (%d GetAssignment calls)\n",
			r.ByInbox, InboxViewName(r.InboxView), r.InboxStreams, r.InboxReps, r.InboxItems, r.InboxReconnects, r.ByPoll, r.Polls)
	default:
		fmt.Fprintf(w, "Observed: %d by polling GetAssignment (no inbox streams; %d GetAssignment calls)\n", r.ByPoll, r.Polls)
	}

	fmt.Fprintf(w, "\nLatency (ms; ratio = p50 / echo p50, p99 / echo p99)\n")
	fmt.Fprintf(tw, "\tn\tp50\tp90\tp99\tp50 ratio\tp99 ratio\t\n")
	names := make([]string, 0, len(r.RPC))
	for n := range r.RPC {
		names = append(names, n)
	}
	sort.Strings(names)
	row := func(name string, h *Hist) {
		p50, p90, p99 := h.Quantile(0.5), h.Quantile(0.9), h.Quantile(0.99)
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", name, h.N(), p50, p90, p99, ratio(p50, r.EchoP50), ratio(p99, r.EchoP99))
	}
	for _, n := range names {
		row(n, r.RPC[n])
	}
	row("end to end capture→assignment", r.EndToEnd)
	if r.InboxLag != nil && r.InboxLag.N() > 0 {
		row("inbox item written→received", r.InboxLag)
	}
	_ = tw.Flush()

	fmt.Fprintf(w, "\nConservation\n")
	acc := r.Assigned + r.Queued + r.Nurturing + r.BadFit
	fmt.Fprintf(tw, "leads answered OK\t%d\t\n", r.Accepted)
	fmt.Fprintf(tw, "accounted for (assigned %d + queued %d + nurturing %d + bad fit %d)\t%d\t\n", r.Assigned, r.Queued, r.Nurturing, r.BadFit, acc)
	fmt.Fprintf(tw, "unaccounted\t%d\t\n", r.Unaccounted)
	fmt.Fprintf(tw, "duplicates\t%d\t\n", r.Duplicates)
	fmt.Fprintf(tw, "dead letters\t%d\t\n", r.DeadLetters)
	fmt.Fprintf(tw, "taken further (accept, touch, BANT, QUALIFIED)\t%d\t\n", r.Further)
	if r.CloseDeals {
		fmt.Fprintf(tw, "deals closed (CloseWon, read back WON; = taken further)\t%d\t\n", r.Closed)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "dead letters: %s\n", r.DeadLetterNote)
	if r.CommandsPerLead > 0 {
		fmt.Fprintf(w, "Redis commands per lead answered OK (INFO commandstats delta, all services, incl. pollers and commands inside scripts): %.1f\n  top: %v\n", r.CommandsPerLead, r.TopCommands)
		if r.RoundTripsPerLead > 0 {
			fmt.Fprintf(w, "  Redis round trips per lead (INFO stats total_reads_processed delta: a command or a pipeline from any client, incl. blocking reads, PINGs and this tool's few): %.1f\n", r.RoundTripsPerLead)
		}
		if len(r.TopCommandTime) > 0 {
			fmt.Fprintf(w, "  Redis time per lead, µs (INFO commandstats usec; a script's time includes its commands'): %v\n", r.TopCommandTime)
		}
	}
	if r.Spans >= 0 && r.Accepted > 0 {
		// The batch exporter may still hold the last second's spans when
		// the run ends: these per-lead figures are slightly low, not high.
		fmt.Fprintf(w, "spans received by the in-process OTLP sink: %d (%.1f per lead); Redis round trips inside traces (go-redis spans: a command or a pipeline made for a lead or a request, without blocking reads and PINGs; a batch shared by many leads has none): %.1f per lead\n",
			r.Spans, float64(r.Spans)/float64(r.Accepted), float64(r.RedisSpans)/float64(r.Accepted))
		if len(r.RedisByService) > 0 {
			fmt.Fprintf(w, "  Redis round trips inside traces per lead by service: %v\n", r.RedisByService)
		}
		if len(r.SpansByName) > 0 {
			fmt.Fprintf(w, "  spans per lead, most frequent (service, span name): %v\n", r.SpansByName)
		}
		if len(r.SlowestSteps) > 0 {
			fmt.Fprintf(w, "  slowest steps most leads take (service, span name, p50/p99 ms): %v\n", r.SlowestSteps)
		}
	}
	if c := r.CPU; c.Total > 0 {
		ms := func(d time.Duration) string {
			return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
		}
		fmt.Fprintf(w, "CPU per lead answered OK (ms; the machine's busy time from /proc/stat, %d cores; Redis from INFO cpu; the load tool from getrusage): total %s = Redis %s + load tool %s + the rest (the suite) %s\n",
			c.Cores, ms(c.Total), ms(c.Redis), ms(c.Load), ms(c.Rest))
		if c.Busy > 0 {
			fmt.Fprintf(w, "  cores busy on average: %.2f of %d\n", c.Busy, c.Cores)
		}
		if c.Budget > 0 {
			fmt.Fprintf(w, "  at 1/30 of this run's echo rate a lead may cost %s ms of CPU, all processes together\n", ms(c.Budget))
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "non-OK answers (NotFound of GetAssignment = polls before the lead is routed; FailedPrecondition of SetStatus = before WORKING, retried): %v\n", r.Errors)
	}
	r.printTargets(w)
	if r.OK() {
		fmt.Fprintln(w, "conservation: OK")
	} else {
		fmt.Fprintln(w, "conservation: FAILED")
	}
}

// The performance targets (issue #9), on this 2-core class of machine:
// capture→assigned journeys at the maximum rate at least EchoShare of the
// run's echo rate, and SubmitLead's p99 under SubmitP99 at half that rate.
const (
	EchoShare = 1.0 / 30
	SubmitP99 = 25.0 // ms
)

// printTargets judges the targets that this run alone can: throughput on an
// unpaced run, SubmitLead's p99 on a paced one (the target's rate is half
// the maximum, which a paced run does not know; RunTargets knows it).
func (r *Report) printTargets(w io.Writer) {
	if r.EchoRate <= 0 || r.Judged() <= 0 {
		return
	}
	fmt.Fprintf(w, "Targets, judged on this run alone:\n")
	if r.Rate > 0 {
		fmt.Fprintf(w, "  throughput ≥ 1/30 of the echo: not judged; the run was paced at --rate %.0f (run without --rate for the maximum)\n", r.Rate)
		if line := r.submitTarget(); line != "" {
			fmt.Fprintf(w, "  %s (the target is at half the maximum rate: a run without --rate gives the maximum)\n", line)
		}
	} else {
		fmt.Fprintf(w, "  %s\n", r.throughputTarget())
		fmt.Fprintf(w, "  SubmitLead p99 < %.0f ms at half the maximum rate: not judged at the maximum; run again with --rate %.0f, or use --targets\n", SubmitP99, r.Judged()/2)
	}
	r.printFurther(w)
}

// PrintTargets judges both targets on RunTargets' two runs: the throughput
// of the unpaced one, SubmitLead's p99 of the one paced at half of it.
func PrintTargets(w io.Writer, maximum, half *Report) {
	fmt.Fprintf(w, "Targets, judged on the two runs above (the maximum, then half of it):\n")
	if maximum.EchoRate <= 0 || maximum.Judged() <= 0 {
		fmt.Fprintf(w, "  not judged: the first run measured no echo baseline or no journey\n")
		return
	}
	fmt.Fprintf(w, "  %s\n", maximum.throughputTarget())
	if line := half.submitTarget(); line != "" {
		fmt.Fprintf(w, "  %s, half of the maximum %.1f/s\n", line, maximum.Judged())
	} else {
		fmt.Fprintf(w, "  SubmitLead p99 < %.0f ms: not judged, the second run answered no SubmitLead\n", SubmitP99)
	}
	maximum.printFurther(w)
}

// throughputTarget is the verdict on an unpaced run's journeys/s, the
// sustained rate when it was measured.
func (r *Report) throughputTarget() string {
	need, got := r.EchoRate*EchoShare, r.Judged()
	state := verdict(got >= need)
	if got < need {
		state += fmt.Sprintf(", %.2f× short", need/got)
	}
	what := "journeys/s"
	if r.Sustained > 0 {
		what = "journeys/s sustained"
	}
	return fmt.Sprintf("throughput ≥ 1/30 of the echo: %.1f %s = 1/%.1f of %.0f calls/s; 1/30 is %.1f/s: %s",
		got, what, r.EchoRate/got, r.EchoRate, need, state)
}

// printCatchUp says how far the event consumers were behind when the last
// journey ended and how long the suite then took to be idle.
func (r *Report) printCatchUp(w io.Writer) {
	if r.Sustained <= 0 {
		return
	}
	state := "idle"
	if !r.CaughtUp {
		state = "still not idle (given up)"
	}
	fmt.Fprintf(w, "Catch-up: when the last journey ended the event consumers (reporting) had %d events left to apply; the suite was %s %.1fs later. The sustained rate counts that time, and the CPU and span figures below count that work.\n",
		r.EventsBehind, state, r.CatchUp.Seconds())
}

// submitTarget is the verdict on a paced run's SubmitLead p99 ("" when it
// answered none).
func (r *Report) submitTarget() string {
	sub := r.RPC["capture.SubmitLead"]
	if sub == nil || sub.N() == 0 {
		return ""
	}
	p99 := sub.Quantile(0.99)
	return fmt.Sprintf("SubmitLead p99 < %.0f ms: %.1f ms at %.0f/s: %s", SubmitP99, p99, r.Rate, verdict(p99 < SubmitP99))
}

// printFurther says when leads also went further: a further lead's steps
// (accept, touch, BANT, QUALIFIED, the deal) cost several times its
// capture→assigned journey, on the same cores.
func (r *Report) printFurther(w io.Writer) {
	if r.FurtherShare > 0 {
		fmt.Fprintf(w, "  with --further %g: %.0f%% of the assigned leads also went on to accept, touch, BANT, QUALIFIED and a won deal, on the same cores; --further 0 measures capture→assigned alone\n",
			r.FurtherShare, 100*r.FurtherShare)
	}
}

func verdict(met bool) string {
	if met {
		return "MET"
	}
	return "NOT MET"
}

// OK reports whether the conservation check holds.
func (r *Report) OK() bool {
	return r.Accepted > 0 && r.Assigned+r.Queued+r.Nurturing+r.BadFit == r.Accepted && r.Duplicates == 0 && r.DeadLetters == 0 && r.Unaccounted == 0 &&
		(!r.CloseDeals || r.Closed == r.Further)
}
