package domain

import (
	"fmt"
	"strings"
)

// DefaultLostReasons is the list used when none is configured.
var DefaultLostReasons = []string{"no_budget", "no_decision", "lost_to_competitor", "timing", "no_fit", "unresponsive", "other"}

// LostReasons is the configured list of lost reasons.
type LostReasons struct{ list []string }

// ParseLostReasons builds the list from a comma-separated string (the
// LEADFLOW_PIPELINE_LOST_REASONS value); blanks are dropped, reasons are
// trimmed and compared case-insensitively. An empty input gives the defaults.
func ParseLostReasons(csv string) (LostReasons, error) {
	var out []string
	seen := map[string]bool{}
	for _, r := range strings.Split(csv, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if len(r) > 100 {
			return LostReasons{}, fmt.Errorf("lost reason %q is longer than 100 characters", r)
		}
		k := strings.ToLower(r)
		if seen[k] {
			return LostReasons{}, fmt.Errorf("lost reason %q is listed twice", r)
		}
		seen[k] = true
		out = append(out, r)
	}
	if len(out) == 0 {
		out = append(out, DefaultLostReasons...)
	}
	return LostReasons{list: out}, nil
}

// List returns the reasons in configured order.
func (l LostReasons) List() []string { return append([]string(nil), l.list...) }

// Match returns the canonical spelling of reason.
func (l LostReasons) Match(reason string) (string, bool) {
	reason = strings.TrimSpace(reason)
	for _, r := range l.list {
		if strings.EqualFold(r, reason) {
			return r, true
		}
	}
	return "", false
}
