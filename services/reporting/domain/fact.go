// Package domain holds reporting's rules: how a lifecycle event changes a
// lead's facts (Ops), how facts are read back (ParseFact), and every report
// computed from the facts of a cohort. It imports neither gRPC nor Redis.
package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// OpKind is how an Op changes a lead's facts.
type OpKind string

const (
	// OpMin sets the fields of a group when the event's key is smaller than
	// the group's stored key (or the group is unset): "the first X".
	OpMin OpKind = "min"
	// OpMax sets the fields of a group when the event's key is larger: "the
	// latest X".
	OpMax OpKind = "max"
	// OpIncr adds Delta to a counter field.
	OpIncr OpKind = "incr"
)

// Op is one change of a lead's fact hash. Ops are order-independent: min and
// max compare (occurred_at, event id) keys, increments commute, and the
// store applies each event at most once (by event id). So any delivery order
// and any number of redeliveries give the same facts.
type Op struct {
	Kind OpKind
	// Group names a set of fields written together; the group's key is
	// stored in the field named Group, its fields as "<Group>.<name>".
	Group string
	// Key orders events: EventKey(occurred_at, event id).
	Key string
	// Fields are name, value pairs (without the group prefix).
	Fields []string
	// Delta for OpIncr.
	Delta int64
}

// Fact groups and counters (the fields of lf:reporting:…:lead:<id>).
const (
	GroupCaptured      = "cap"
	GroupMQL           = "mql"
	GroupScore         = "score"
	GroupRouted        = "rt"
	GroupAssigned      = "asg"
	GroupAccepted      = "acc"
	GroupTouched       = "touch"
	GroupTouchBreach   = "brf"
	GroupQualified     = "qual"
	GroupDeal          = "deal"
	GroupWon           = "won"
	GroupLost          = "lost"
	GroupReopened      = "reopen"
	GroupStagePrefix   = "stage:"
	CounterBreaches    = "n.breach"
	CounterReassigned  = "n.reassign"
	CounterTouches     = "n.touch"
	CounterRejections  = "n.reject"
	CounterRecycles    = "n.recycle"
	CounterEngagements = "n.engage"
	CounterMerges      = "n.merge"
)

// keyDigits zero-pads the milliseconds so keys compare as strings.
const keyDigits = 15

// EventKey is the sort key of an event: occurred_at in Unix milliseconds
// (zero-padded) and the event id, which breaks ties deterministically.
func EventKey(t time.Time, id string) string {
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	return fmt.Sprintf("%0*d|%s", keyDigits, ms, id)
}

// KeyTime is the time of an EventKey; zero for a malformed key.
func KeyTime(key string) time.Time {
	msPart, _, ok := strings.Cut(key, "|")
	if !ok {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Outcome is where a lead's deal ended.
type Outcome int

const (
	// OutcomeNone: no deal or still open.
	OutcomeNone Outcome = iota
	// OutcomeWon: the latest close was a win, not reopened since.
	OutcomeWon
	// OutcomeLost: the latest close was a loss, not reopened since.
	OutcomeLost
)

// Fact is what reporting knows about one lead. A zero time means the step
// was not reached.
type Fact struct {
	LeadID string

	CapturedAt                                           time.Time
	Source, Campaign, Medium, Channel, Country, Industry string

	MQLAt    time.Time
	MQLScore int64
	MQLGrade string

	ScoredAt time.Time // latest LeadScored
	Score    int64
	Grade    string

	RoutedAt time.Time
	Team     string // team of the first routing decision

	AssignedAt    time.Time
	AssignTeam    string
	Rep           string // rep of the first assignment
	FirstTouchDue time.Time

	AcceptedAt time.Time

	FirstTouchAt   time.Time
	TouchTeam      string
	TouchRep       string
	TouchWithinSLA bool
	// FirstTouchBreachAt is the first "first_touch" SlaBreached.
	FirstTouchBreachAt time.Time

	Breaches, Reassignments, Touches, Rejections, Recycles int64

	QualifiedAt time.Time

	DealAt       time.Time
	DealID       string
	DealRep      string
	DealStage    string
	DealAmount   int64
	DealCurrency string

	Outcome       Outcome
	WonAt         time.Time
	WonAmount     int64
	WonCurrency   string
	WonRep        string
	DealCreatedAt time.Time // from DealWon, else DealAt
	LostAt        time.Time
	LostReason    string

	// Stages maps every stage the lead's deal entered to when it first did.
	Stages map[string]time.Time
}

// Captured reports whether the lead has a capture event.
func (f *Fact) Captured() bool { return !f.CapturedAt.IsZero() }

// ParseFact reads the fact hash of a lead.
func ParseFact(leadID string, h map[string]string) Fact {
	f := Fact{LeadID: leadID}
	at := func(g string) time.Time {
		if k, ok := h[g]; ok {
			return KeyTime(k)
		}
		return time.Time{}
	}
	s := func(g, name string) string { return h[g+"."+name] }
	n := func(field string) int64 {
		v, _ := strconv.ParseInt(h[field], 10, 64)
		return v
	}
	ms := func(v string) time.Time {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil || v == "" {
			return time.Time{}
		}
		return time.UnixMilli(x).UTC()
	}

	f.CapturedAt = at(GroupCaptured)
	f.Source, f.Campaign, f.Medium = s(GroupCaptured, "src"), s(GroupCaptured, "cmp"), s(GroupCaptured, "med")
	f.Channel, f.Country, f.Industry = s(GroupCaptured, "ch"), s(GroupCaptured, "ctry"), s(GroupCaptured, "ind")

	f.MQLAt = at(GroupMQL)
	f.MQLScore = n(GroupMQL + ".tot")
	f.MQLGrade = s(GroupMQL, "gr")

	f.ScoredAt = at(GroupScore)
	f.Score = n(GroupScore + ".tot")
	f.Grade = s(GroupScore, "gr")

	f.RoutedAt = at(GroupRouted)
	f.Team = s(GroupRouted, "team")

	f.AssignedAt = at(GroupAssigned)
	f.AssignTeam, f.Rep = s(GroupAssigned, "team"), s(GroupAssigned, "rep")
	f.FirstTouchDue = ms(s(GroupAssigned, "due"))
	if f.Team == "" {
		f.Team = f.AssignTeam
	}

	f.AcceptedAt = at(GroupAccepted)

	f.FirstTouchAt = at(GroupTouched)
	f.TouchTeam, f.TouchRep = s(GroupTouched, "team"), s(GroupTouched, "rep")
	f.TouchWithinSLA = s(GroupTouched, "sla") == "1"
	f.FirstTouchBreachAt = at(GroupTouchBreach)

	f.Breaches, f.Reassignments, f.Touches = n(CounterBreaches), n(CounterReassigned), n(CounterTouches)
	f.Rejections, f.Recycles = n(CounterRejections), n(CounterRecycles)

	f.QualifiedAt = at(GroupQualified)

	f.DealAt = at(GroupDeal)
	f.DealID, f.DealRep, f.DealStage = s(GroupDeal, "id"), s(GroupDeal, "rep"), s(GroupDeal, "stage")
	f.DealAmount, f.DealCurrency = n(GroupDeal+".amt"), s(GroupDeal, "cur")

	wonKey, lostKey, reopenKey := h[GroupWon], h[GroupLost], h[GroupReopened]
	switch {
	case wonKey != "" && wonKey > lostKey && wonKey > reopenKey:
		f.Outcome = OutcomeWon
	case lostKey != "" && lostKey > wonKey && lostKey > reopenKey:
		f.Outcome = OutcomeLost
	}
	if f.Outcome == OutcomeWon {
		f.WonAt = KeyTime(wonKey)
		f.WonAmount, f.WonCurrency, f.WonRep = n(GroupWon+".amt"), s(GroupWon, "cur"), s(GroupWon, "rep")
		f.DealCreatedAt = ms(s(GroupWon, "created"))
		if f.DealCreatedAt.IsZero() {
			f.DealCreatedAt = f.DealAt
		}
	}
	if f.Outcome == OutcomeLost {
		f.LostAt = KeyTime(lostKey)
		f.LostReason = s(GroupLost, "reason")
	}
	for k, v := range h {
		if id, ok := strings.CutPrefix(k, GroupStagePrefix); ok {
			if f.Stages == nil {
				f.Stages = map[string]time.Time{}
			}
			f.Stages[id] = KeyTime(v)
		}
	}
	return f
}
