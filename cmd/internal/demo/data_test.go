package demo

import (
	"reflect"
	"strings"
	"testing"
)

func TestPlanIsDeterministic(t *testing.T) {
	a, b := plan(120, 42, "x"), plan(120, 42, "x")
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed planned different leads")
	}
	if reflect.DeepEqual(a, plan(120, 43, "x")) {
		t.Fatal("different seeds planned the same leads")
	}
}

func TestPlanCoversTheJourney(t *testing.T) {
	people := plan(200, 1, "run1")
	fates := map[fate]int{}
	emails := map[string]int{}
	for i, p := range people {
		if p.index != i {
			t.Fatalf("person %d has index %d", i, p.index)
		}
		if p.duplicateOf >= 0 {
			orig := people[p.duplicateOf]
			if p.duplicateOf >= i || orig.email != p.email || orig.duplicateOf >= 0 {
				t.Errorf("person %d: a second submission must repeat an earlier first one's e-mail", i)
			}
			continue
		}
		fates[p.fate]++
		emails[p.email]++
		if !strings.Contains(p.email, "run1") {
			t.Errorf("e-mail %q lacks the run id", p.email)
		}
		if p.fate != fateCold && p.freeMail {
			t.Errorf("person %d: a lead meant to qualify has a free-mail address", i)
		}
	}
	for f := fateCold; f <= fateLostRecycle; f++ {
		if fates[f] == 0 {
			t.Errorf("no lead with fate %s in 200", f)
		}
	}
	for e, n := range emails {
		if n > 1 {
			t.Errorf("%d first submissions share %q", n, e)
		}
	}
}

func TestAsciiFold(t *testing.T) {
	for in, want := range map[string]string{"Müller": "mueller", "García": "garcia", "O'Brien": "obrien", "Zoe": "zoe"} {
		if got := asciiFold(in); got != want {
			t.Errorf("asciiFold(%q) = %q, want %q", in, got, want)
		}
	}
}
