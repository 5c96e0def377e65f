package load

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func submitHist(ms ...int) *Hist {
	h := &Hist{}
	for _, v := range ms {
		h.Add(time.Duration(v) * time.Millisecond)
	}
	return h
}

// The report judges the targets this run can: throughput against 1/30 of
// its own echo on an unpaced run, SubmitLead's p99 against 25 ms on a
// paced one, and says how to measure the other.
func TestReportJudgesTheTargetsOfItsRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Report
		want []string
	}{
		{"maximum rate, short", Report{EchoRate: 66000, Throughput: 1100, RPC: map[string]*Hist{"capture.SubmitLead": submitHist(5, 40)}},
			[]string{"1100.0 journeys/s = 1/60.0 of 66000 calls/s; 1/30 is 2200.0/s: NOT MET, 2.00× short", "run again with --rate 550"}},
		{"maximum rate, met", Report{EchoRate: 30000, Throughput: 1200, RPC: map[string]*Hist{}},
			[]string{"1/25.0 of 30000 calls/s; 1/30 is 1000.0/s: MET\n"}},
		{"paced, under 25 ms", Report{EchoRate: 66000, Throughput: 650, Rate: 650, RPC: map[string]*Hist{"capture.SubmitLead": submitHist(3, 4, 15)}},
			[]string{"not judged; the run was paced at --rate 650", "SubmitLead p99 < 25 ms: 15.0 ms at 650/s: MET"}},
		{"paced, over 25 ms", Report{EchoRate: 66000, Throughput: 1000, Rate: 1000, RPC: map[string]*Hist{"capture.SubmitLead": submitHist(10, 32)}},
			[]string{"SubmitLead p99 < 25 ms: 32.0 ms at 1000/s: NOT MET"}},
		{"maximum rate with leads taken further", Report{EchoRate: 66000, Throughput: 1300, FurtherShare: 0.1, RPC: map[string]*Hist{}},
			[]string{"NOT MET, 1.69× short", "with --further 0.1: 10% of the assigned leads also went on", "--further 0 measures capture→assigned alone"}},
		{"maximum rate, judged on the sustained rate", Report{EchoRate: 66000, Throughput: 2400, Sustained: 2100, CaughtUp: true, RPC: map[string]*Hist{}},
			[]string{"2100.0 journeys/s sustained = 1/31.4 of 66000 calls/s; 1/30 is 2200.0/s: NOT MET, 1.05× short", "run again with --rate 1050"}},
		{"paced with leads taken further", Report{EchoRate: 66000, Throughput: 650, Rate: 650, FurtherShare: 0.25, RPC: map[string]*Hist{"capture.SubmitLead": submitHist(3, 15)}},
			[]string{"15.0 ms at 650/s: MET", "with --further 0.25: 25% of the assigned leads"}},
	} {
		var b bytes.Buffer
		tc.r.printTargets(&b)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: report\n%s\nlacks %q", tc.name, b.String(), w)
			}
		}
		if tc.r.FurtherShare == 0 && strings.Contains(b.String(), "--further") {
			t.Errorf("%s: a run that took no lead further mentions --further:\n%s", tc.name, b.String())
		}
	}
	var b bytes.Buffer
	(&Report{Throughput: 100}).printTargets(&b)
	if b.Len() != 0 {
		t.Errorf("without an echo baseline the targets are not judged, got %q", b.String())
	}
}

// The pair of runs is judged as the targets are defined: the first run's
// throughput against its echo, the second's SubmitLead p99 at half of it.
func TestPrintTargetsJudgesThePairOfRuns(t *testing.T) {
	maximum := &Report{EchoRate: 66000, Throughput: 1800, RPC: map[string]*Hist{"capture.SubmitLead": submitHist(15, 41)}}
	half := &Report{EchoRate: 65000, Throughput: 900, Rate: 900, RPC: map[string]*Hist{"capture.SubmitLead": submitHist(4, 18)}}
	var b bytes.Buffer
	PrintTargets(&b, maximum, half)
	for _, w := range []string{
		"1800.0 journeys/s = 1/36.7 of 66000 calls/s; 1/30 is 2200.0/s: NOT MET, 1.22× short",
		"SubmitLead p99 < 25 ms: 18.0 ms at 900/s: MET, half of the maximum 1800.0/s",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("verdict\n%s\nlacks %q", b.String(), w)
		}
	}
	if strings.Contains(b.String(), "41.0") || strings.Contains(b.String(), "--further") {
		t.Errorf("judged the maximum run's p99 or mentioned --further:\n%s", b.String())
	}

	half.RPC["capture.SubmitLead"] = submitHist(10, 30)
	maximum.FurtherShare = 0.1
	b.Reset()
	PrintTargets(&b, maximum, half)
	for _, w := range []string{"30.0 ms at 900/s: NOT MET", "with --further 0.1"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("verdict\n%s\nlacks %q", b.String(), w)
		}
	}

	b.Reset()
	PrintTargets(&b, &Report{Throughput: 10}, half)
	if !strings.Contains(b.String(), "not judged") || strings.Contains(b.String(), "MET") {
		t.Errorf("without an echo baseline nothing is judged, got\n%s", b.String())
	}
}

// A run that measured the catch-up shows the sustained rate beside the
// run's own and says how far behind the event consumers were.
func TestPrintShowsTheCatchUp(t *testing.T) {
	r := Report{EchoRate: 66000, Throughput: 2400, Sustained: 2100, EventsBehind: 5000, CatchUp: 2500 * time.Millisecond, CaughtUp: true,
		Elapsed: 20 * time.Second, RPC: map[string]*Hist{}, EndToEnd: &Hist{}}
	var b bytes.Buffer
	r.Print(&b)
	for _, w := range []string{"capture→assigned/queued, sustained (run + catch-up)  2100.0", "(reporting) had 5000 events left to apply; the suite was idle 2.5s later"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("report\n%s\nlacks %q", b.String(), w)
		}
	}
	r.CaughtUp = false
	b.Reset()
	r.Print(&b)
	if !strings.Contains(b.String(), "still not idle (given up) 2.5s later") {
		t.Errorf("a catch-up given up reads as idle:\n%s", b.String())
	}
	r = Report{EchoRate: 66000, Throughput: 2400, RPC: map[string]*Hist{}, EndToEnd: &Hist{}}
	b.Reset()
	r.Print(&b)
	if strings.Contains(b.String(), "sustained") || strings.Contains(b.String(), "Catch-up") {
		t.Errorf("a run without --redis reports a catch-up:\n%s", b.String())
	}
}
