package domain

import (
	"strings"
	"time"
)

// ActivityType is the kind of an activity.
type ActivityType int

// Activity types.
const (
	ActivityCall ActivityType = iota + 1
	ActivityEmail
	ActivityMeeting
	ActivityNote
	ActivityTask
)

// String is the name used in ActivityLogged events.
func (t ActivityType) String() string {
	switch t {
	case ActivityCall:
		return "call"
	case ActivityEmail:
		return "email"
	case ActivityMeeting:
		return "meeting"
	case ActivityNote:
		return "note"
	case ActivityTask:
		return "task"
	}
	return "unspecified"
}

// Activity is a touch or a task on a deal.
type Activity struct {
	ID          string       `json:"id"`
	DealID      string       `json:"deal_id"`
	Type        ActivityType `json:"type"`
	Subject     string       `json:"subject"`
	Body        string       `json:"body,omitempty"`
	RepID       string       `json:"rep_id,omitempty"`
	OccurredAt  time.Time    `json:"occurred_at"`
	DueAt       time.Time    `json:"due_at"`
	CompletedAt time.Time    `json:"completed_at"`
	CreatedAt   time.Time    `json:"created_at"`
}

// NewActivity validates and builds an activity on deal d. A task needs a due
// date; other kinds must not have one. Rep defaults to the deal owner and
// occurred_at to now; occurred_at may not be more than a day in the future.
func NewActivity(id string, d *Deal, typ ActivityType, subject, body, repID string, occurredAt, dueAt, now time.Time) (Activity, error) {
	var vs violations
	if typ < ActivityCall || typ > ActivityTask {
		vs.add("type", "must be call, email, meeting, note or task")
	}
	subject = strings.TrimSpace(subject)
	if subject == "" {
		vs.add("subject", "must not be blank")
	}
	if typ == ActivityTask && dueAt.IsZero() {
		vs.add("due_at", "is required for a task")
	}
	if typ != ActivityTask && !dueAt.IsZero() {
		vs.add("due_at", "only a task has a due date")
	}
	if occurredAt.IsZero() {
		occurredAt = now
	}
	if occurredAt.After(now.Add(24 * time.Hour)) {
		vs.add("occurred_at", "must not be in the future")
	}
	if err := vs.err(); err != nil {
		return Activity{}, err
	}
	if strings.TrimSpace(repID) == "" {
		repID = d.OwnerRepID
	}
	return Activity{
		ID: id, DealID: d.ID, Type: typ, Subject: subject, Body: body, RepID: strings.TrimSpace(repID),
		OccurredAt: occurredAt.UTC(), DueAt: dueAt.UTC(), CreatedAt: now,
	}, nil
}

// Complete marks a task done; already is true when it was done before.
func (a *Activity) Complete(now time.Time) (already bool, err error) {
	if a.Type != ActivityTask {
		return false, precondition("activity %s is a %s, not a task", a.ID, a.Type)
	}
	if !a.CompletedAt.IsZero() {
		return true, nil
	}
	a.CompletedAt = now
	return false, nil
}
