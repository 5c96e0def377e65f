// Package domain is the pure core of the scoring service: scoring models and
// their rules, the explainable score, BANT, and the prospect-status state
// machine. It imports neither gRPC nor Redis; the store implements the
// interface declared here.
package domain

import (
	"errors"
	"time"
)

// Enumerations mirror the numbers of the leadflow.lead.v1 enums so the gRPC
// face converts them with a cast.

// Status is the prospect status (leadflow.lead.v1.ProspectStatus).
type Status int32

// Prospect statuses.
const (
	StatusUnspecified Status = 0
	StatusPotential   Status = 1
	StatusWorking     Status = 2
	StatusNurturing   Status = 3
	StatusQualified   Status = 4
	StatusBadFit      Status = 5
)

// Statuses lists every real status, in enum order.
var Statuses = []Status{StatusPotential, StatusWorking, StatusNurturing, StatusQualified, StatusBadFit}

func (s Status) String() string {
	switch s {
	case StatusPotential:
		return "POTENTIAL"
	case StatusWorking:
		return "WORKING"
	case StatusNurturing:
		return "NURTURING"
	case StatusQualified:
		return "QUALIFIED"
	case StatusBadFit:
		return "BAD_FIT"
	}
	return "UNSPECIFIED"
}

// Grade is the fit band (leadflow.lead.v1.Grade), A best.
type Grade int32

// Grades.
const (
	GradeUnspecified Grade = 0
	GradeA           Grade = 1
	GradeB           Grade = 2
	GradeC           Grade = 3
	GradeD           Grade = 4
)

// Heat is the engagement band (leadflow.lead.v1.Heat).
type Heat int32

// Heats.
const (
	HeatUnspecified Heat = 0
	HeatCold        Heat = 1
	HeatWarm        Heat = 2
	HeatHot         Heat = 3
)

// Seniority mirrors leadflow.lead.v1.Seniority.
type Seniority int32

// Seniorities.
const (
	SeniorityUnspecified           Seniority = 0
	SeniorityEntry                 Seniority = 1
	SeniorityIndividualContributor Seniority = 2
	SeniorityManager               Seniority = 3
	SeniorityDirector              Seniority = 4
	SeniorityVicePresident         Seniority = 5
	SeniorityCLevel                Seniority = 6
	SeniorityOwner                 Seniority = 7
)

var seniorityNames = map[Seniority]string{
	SeniorityEntry: "entry", SeniorityIndividualContributor: "individual contributor",
	SeniorityManager: "manager", SeniorityDirector: "director", SeniorityVicePresident: "vice president",
	SeniorityCLevel: "c-level", SeniorityOwner: "owner",
}

func (s Seniority) String() string {
	if n, ok := seniorityNames[s]; ok {
		return n
	}
	return "unspecified"
}

// SignalType mirrors leadflow.lead.v1.SignalType.
type SignalType int32

// Signal types.
const (
	SignalUnspecified       SignalType = 0
	SignalPageView          SignalType = 1
	SignalPricingPageView   SignalType = 2
	SignalContentDownload   SignalType = 3
	SignalWebinarRegistered SignalType = 4
	SignalWebinarAttended   SignalType = 5
	SignalDemoRequest       SignalType = 6
	SignalEmailOpen         SignalType = 7
	SignalEmailClick        SignalType = 8
	SignalEmailReply        SignalType = 9
	SignalChat              SignalType = 10
)

var signalNames = map[SignalType]string{
	SignalPageView: "page view", SignalPricingPageView: "pricing page view",
	SignalContentDownload: "content download", SignalWebinarRegistered: "webinar registration",
	SignalWebinarAttended: "webinar attendance", SignalDemoRequest: "demo request",
	SignalEmailOpen: "e-mail open", SignalEmailClick: "e-mail click", SignalEmailReply: "e-mail reply",
	SignalChat: "chat",
}

func (t SignalType) String() string {
	if n, ok := signalNames[t]; ok {
		return n
	}
	return "unspecified"
}

// Valid reports whether t is a known signal type.
func (t SignalType) Valid() bool { _, ok := signalNames[t]; return ok }

// Money is an amount in minor units of one ISO 4217 currency. Never a float.
type Money struct {
	AmountMinor  int64  `json:"a"`
	CurrencyCode string `json:"c"`
}

// Profile is what scoring knows of a lead: no personal data.
type Profile struct {
	LeadID         string    `json:"lead_id"`
	OrganisationID string    `json:"org_id,omitempty"`
	Industry       string    `json:"industry,omitempty"`
	EmployeeCount  int32     `json:"employees,omitempty"`
	Revenue        *Money    `json:"revenue,omitempty"`
	CountryCode    string    `json:"country,omitempty"`
	Region         string    `json:"region,omitempty"`
	JobTitle       string    `json:"title,omitempty"`
	Seniority      Seniority `json:"seniority,omitempty"`
	FreeMail       bool      `json:"free_mail,omitempty"`
	Products       []string  `json:"products,omitempty"`
	CapturedAt     time.Time `json:"captured_at"`
	Traceparent    string    `json:"traceparent,omitempty"`
}

// Signal is one engagement of a lead.
type Signal struct {
	ID   string     `json:"id"`
	Type SignalType `json:"t"`
	At   time.Time  `json:"at"`
}

// Factor is one line of a score's breakdown.
type Factor struct {
	RuleID   string `json:"rule"`
	Category string `json:"cat"`
	Points   int32  `json:"pts"`
	Reason   string `json:"why"`
}

// Factor categories.
const (
	CategoryFit        = "fit"
	CategoryEngagement = "engagement"
)

// Score is an explainable score: Fit+Engagement == Total == sum of factor points.
type Score struct {
	Fit          int32     `json:"fit"`
	Engagement   int32     `json:"eng"`
	Total        int32     `json:"total"`
	Grade        Grade     `json:"grade"`
	Heat         Heat      `json:"heat"`
	Factors      []Factor  `json:"factors,omitempty"`
	ModelVersion int32     `json:"model"`
	ScoredAt     time.Time `json:"at"`
	MQL          bool      `json:"mql,omitempty"`
}

// FieldViolation names one invalid field of a request.
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError carries every violated field; the face maps it to
// InvalidArgument with a BadRequest detail.
type ValidationError struct {
	Message    string
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	s := e.Message
	for _, v := range e.Violations {
		s += "; " + v.Field + ": " + v.Description
	}
	return s
}

// Domain sentinel errors; the face maps them to status codes.
var (
	// ErrNotFound: the lead or model does not exist (NotFound).
	ErrNotFound = errors.New("not found")
	// ErrIllegalTransition: the status move is not in the table (FailedPrecondition).
	ErrIllegalTransition = errors.New("illegal status transition")
	// ErrPrecondition: the move is allowed but a requirement is missing (FailedPrecondition).
	ErrPrecondition = errors.New("failed precondition")
	// ErrConflict: a concurrent change won; retry (Aborted).
	ErrConflict = errors.New("concurrent update")
)
