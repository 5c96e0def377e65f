// Package domain holds capture's rules in pure Go: normalising and validating
// a submission, creating a lead, merging a submission into an existing lead,
// and the profile (without personal data) that scoring gets. It imports
// neither gRPC nor Redis; the store and the scoring client are interfaces it
// owns (ports.go).
package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
)

// MaxTouches bounds a lead's touch history; beyond it the oldest touches after
// the first are dropped (first_touch is kept for ever).
const MaxTouches = 100

// MaxProductInterests and MaxAnswers bound what merges accumulate (the
// contract's per-submission limits; LeadProfile allows 50 interests).
const (
	MaxProductInterests = 50
	MaxAnswers          = 100
)

// Violation is one bad field of a submission.
type Violation struct{ Field, Description string }

// ValidationError lists every bad field of a submission. Descriptions never
// contain the submitted values.
type ValidationError struct{ Violations []Violation }

func (e *ValidationError) Error() string {
	fs := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		fs[i] = v.Field
	}
	return "invalid submission: " + strings.Join(fs, ", ")
}

// Domain errors the face maps to status codes.
var (
	ErrNotFound = errors.New("lead not found")
	ErrErased   = errors.New("lead was erased")
)

// Submission is a normalised, valid submission.
type Submission struct {
	Contact *leadv1.Contact
	// Org is the organisation as submitted (no id, status or created_at);
	// Org.Domain is "" when neither domain, website nor a business e-mail
	// gave one.
	Org              *leadv1.Organisation
	FreeMail         bool
	ProductInterests []string
	Answers          map[string]string
	Touch            *leadv1.Touch
	// Consent is nil when the submission carried none.
	Consent   *leadv1.Consent
	VisitorID string
}

// Normalise validates and normalises a submission. now fills the touch time
// and a consent given without a time; defaultChannel replaces an unspecified
// channel. Every bad field is reported (field paths from the request root:
// "submission.contact.email").
func Normalise(in *capturev1.LeadSubmission, defaultRegion string, now time.Time, defaultChannel leadv1.Channel) (*Submission, error) {
	var vs []Violation
	bad := func(field string, err error) { vs = append(vs, Violation{"submission." + field, err.Error()}) }

	c := in.GetContact()
	out := &Submission{Contact: &leadv1.Contact{
		FirstName:  CleanText(c.GetFirstName()),
		LastName:   CleanText(c.GetLastName()),
		JobTitle:   CleanText(c.GetJobTitle()),
		Seniority:  c.GetSeniority(),
		Department: CleanKeyword(c.GetDepartment()),
	}}
	var err error
	if out.Contact.Email, err = NormaliseEmail(c.GetEmail()); err != nil {
		bad("contact.email", err)
	}
	if out.Contact.Phone, err = NormalisePhone(c.GetPhone(), defaultRegion); err != nil {
		bad("contact.phone", err)
	}
	if strings.TrimSpace(c.GetEmail()) == "" && strings.TrimSpace(c.GetPhone()) == "" {
		bad("contact", errors.New("an e-mail or a phone number is required"))
	}
	if out.Contact.Seniority == leadv1.Seniority_SENIORITY_UNSPECIFIED {
		out.Contact.Seniority = SeniorityFromTitle(out.Contact.JobTitle)
	}

	co := in.GetCompany()
	org := &leadv1.Organisation{
		Name:          CleanText(co.GetName()),
		Website:       strings.TrimSpace(co.GetWebsite()),
		Industry:      CleanKeyword(co.GetIndustry()),
		EmployeeCount: co.GetEmployeeCount(),
		Region:        strings.TrimSpace(co.GetRegion()),
	}
	if m := co.GetAnnualRevenue(); m != nil {
		org.AnnualRevenue = proto.Clone(m).(*leadv1.Money)
	}
	if org.CountryCode, err = NormaliseCountry(co.GetCountry()); err != nil {
		bad("company.country", err)
	}
	if r := org.Region; r != "" {
		// ISO 3166-2 codes are upper case ("US-CA"); region names stay as given.
		if len(r) <= 6 && strings.Contains(r, "-") {
			org.Region = strings.ToUpper(r)
		}
	}
	switch {
	case strings.TrimSpace(co.GetDomain()) != "":
		if org.Domain, err = NormaliseDomain(co.GetDomain()); err != nil {
			bad("company.domain", err)
		}
	case org.Website != "":
		if org.Domain, err = NormaliseDomain(org.Website); err != nil {
			bad("company.website", err)
		}
	}
	if e := out.Contact.Email; e != "" {
		ed := EmailDomain(e)
		if reg, err := NormaliseDomain(ed); err == nil {
			out.FreeMail = IsFreeMail(ed) || IsFreeMail(reg)
			if org.Domain == "" && !out.FreeMail {
				org.Domain = reg
			}
		}
	}
	out.Org = org

	seen := map[string]bool{}
	for _, p := range in.GetProductInterests() {
		p = CleanKeyword(p)
		if p != "" && !seen[p] {
			seen[p] = true
			out.ProductInterests = append(out.ProductInterests, p)
		}
	}
	if len(in.GetAnswers()) > 0 {
		out.Answers = make(map[string]string, len(in.GetAnswers()))
		for k, v := range in.GetAnswers() {
			if k = CleanText(k); k != "" {
				out.Answers[k] = strings.TrimSpace(v)
			}
		}
	}

	t := proto.Clone(in.GetTouch()).(*leadv1.Touch)
	if t == nil {
		t = &leadv1.Touch{}
	}
	if t.Channel == leadv1.Channel_CHANNEL_UNSPECIFIED {
		t.Channel = defaultChannel
	}
	t.Source = CleanKeyword(t.Source)
	t.Medium = CleanKeyword(t.Medium)
	t.Campaign = CleanText(t.Campaign)
	if t.OccurredAt == nil {
		t.OccurredAt = timestamppb.New(now)
	} else if !t.OccurredAt.IsValid() {
		bad("touch.occurred_at", errors.New("not a valid time"))
	} else if t.OccurredAt.AsTime().After(now.Add(24 * time.Hour)) {
		bad("touch.occurred_at", errors.New("more than a day in the future"))
	}
	out.Touch = t

	if cs := in.GetConsent(); cs != nil {
		out.Consent = proto.Clone(cs).(*leadv1.Consent)
		out.Consent.WordingVersion = strings.TrimSpace(out.Consent.WordingVersion)
		if out.Consent.GivenAt == nil {
			out.Consent.GivenAt = timestamppb.New(now)
		} else if !out.Consent.GivenAt.IsValid() {
			bad("consent.given_at", errors.New("not a valid time"))
		} else if out.Consent.GivenAt.AsTime().After(now.Add(24 * time.Hour)) {
			bad("consent.given_at", errors.New("more than a day in the future"))
		}
	}
	out.VisitorID = strings.TrimSpace(in.GetVisitorId())

	if len(vs) > 0 {
		return nil, &ValidationError{Violations: vs}
	}
	return out, nil
}

// NewLead makes a new lead from a normalised submission. org is the
// organisation record the lead belongs to (nil without a domain).
func NewLead(id string, s *Submission, org *leadv1.Organisation, traceparent, traceID string, now time.Time) *leadv1.Lead {
	l := &leadv1.Lead{
		Id:               id,
		Contact:          proto.Clone(s.Contact).(*leadv1.Contact),
		Organisation:     proto.Clone(s.Org).(*leadv1.Organisation),
		ProductInterests: slices.Clone(s.ProductInterests),
		Answers:          cloneMap(s.Answers),
		Attribution: &leadv1.Attribution{
			FirstTouch: s.Touch,
			LastTouch:  s.Touch,
			Touches:    []*leadv1.Touch{s.Touch},
		},
		Consent:         s.Consent,
		TraceId:         traceID,
		Traceparent:     traceparent,
		CreatedAt:       timestamppb.New(now),
		UpdatedAt:       timestamppb.New(now),
		SubmissionCount: 1,
	}
	if s.VisitorID != "" {
		l.VisitorIds = []string{s.VisitorID}
	}
	AttachOrganisation(l, org)
	return l
}

// AttachOrganisation copies the organisation record's identity (id, status,
// owner, created_at) onto the lead's organisation.
func AttachOrganisation(l *leadv1.Lead, org *leadv1.Organisation) {
	if org == nil || l.Organisation == nil {
		return
	}
	l.Organisation.Id = org.GetId()
	l.Organisation.ProspectStatus = org.GetProspectStatus()
	l.Organisation.OwnerRepId = org.GetOwnerRepId()
	l.Organisation.CreatedAt = org.GetCreatedAt()
}

// NewOrganisation is the organisation record created by the first lead of a
// domain: status POTENTIAL.
func NewOrganisation(id string, s *Submission, now time.Time) *leadv1.Organisation {
	o := proto.Clone(s.Org).(*leadv1.Organisation)
	o.Id = id
	o.ProspectStatus = leadv1.ProspectStatus_PROSPECT_STATUS_POTENTIAL
	o.CreatedAt = timestamppb.New(now)
	return o
}

// Merge merges a submission into an existing lead: empty fields are filled,
// product interests and visitor ids are added, the touch is appended (the
// first touch stays), consent is replaced only by a newer one. It returns the
// names of the fields the submission filled or changed (never their values).
func Merge(l *leadv1.Lead, s *Submission, now time.Time) ([]string, error) {
	if l.GetErased() {
		return nil, ErrErased
	}
	var filled []string
	fill := func(name string, dst *string, v string) {
		if *dst == "" && v != "" {
			*dst = v
			filled = append(filled, name)
		}
	}
	if l.Contact == nil {
		l.Contact = &leadv1.Contact{}
	}
	c, n := l.Contact, s.Contact
	fill("contact.first_name", &c.FirstName, n.FirstName)
	fill("contact.last_name", &c.LastName, n.LastName)
	fill("contact.email", &c.Email, n.Email)
	fill("contact.phone", &c.Phone, n.Phone)
	fill("contact.job_title", &c.JobTitle, n.JobTitle)
	fill("contact.department", &c.Department, n.Department)
	if c.Seniority == leadv1.Seniority_SENIORITY_UNSPECIFIED && n.Seniority != leadv1.Seniority_SENIORITY_UNSPECIFIED {
		c.Seniority = n.Seniority
		filled = append(filled, "contact.seniority")
	}

	if l.Organisation == nil {
		l.Organisation = &leadv1.Organisation{}
	}
	o, no := l.Organisation, s.Org
	fill("organisation.name", &o.Name, no.Name)
	fill("organisation.domain", &o.Domain, no.Domain)
	fill("organisation.website", &o.Website, no.Website)
	fill("organisation.industry", &o.Industry, no.Industry)
	fill("organisation.country_code", &o.CountryCode, no.CountryCode)
	fill("organisation.region", &o.Region, no.Region)
	if o.EmployeeCount == 0 && no.EmployeeCount != 0 {
		o.EmployeeCount = no.EmployeeCount
		filled = append(filled, "organisation.employee_count")
	}
	if o.AnnualRevenue == nil && no.AnnualRevenue != nil {
		o.AnnualRevenue = proto.Clone(no.AnnualRevenue).(*leadv1.Money)
		filled = append(filled, "organisation.annual_revenue")
	}

	added := false
	for _, p := range s.ProductInterests {
		if !slices.Contains(l.ProductInterests, p) && len(l.ProductInterests) < MaxProductInterests {
			l.ProductInterests = append(l.ProductInterests, p)
			added = true
		}
	}
	if added {
		filled = append(filled, "product_interests")
	}
	added = false
	for k, v := range s.Answers {
		if _, ok := l.Answers[k]; !ok && len(l.Answers) < MaxAnswers {
			if l.Answers == nil {
				l.Answers = map[string]string{}
			}
			l.Answers[k] = v
			added = true
		}
	}
	if added {
		filled = append(filled, "answers")
	}
	if s.VisitorID != "" && !slices.Contains(l.VisitorIds, s.VisitorID) {
		l.VisitorIds = append(l.VisitorIds, s.VisitorID)
		filled = append(filled, "visitor_ids")
	}

	AddTouch(l, s.Touch)

	if s.Consent != nil && (l.Consent == nil || s.Consent.GetGivenAt().AsTime().After(l.Consent.GetGivenAt().AsTime())) {
		l.Consent = s.Consent
		filled = append(filled, "consent")
	}
	l.SubmissionCount++
	l.UpdatedAt = timestamppb.New(now)
	return filled, nil
}

// AddTouch appends a touch: first_touch never changes, last_touch is the
// latest touch by time, the history keeps arrival order (bounded).
func AddTouch(l *leadv1.Lead, t *leadv1.Touch) {
	a := l.Attribution
	if a == nil {
		a = &leadv1.Attribution{}
		l.Attribution = a
	}
	if a.FirstTouch == nil {
		a.FirstTouch = t
	}
	if a.LastTouch == nil || !t.GetOccurredAt().AsTime().Before(a.LastTouch.GetOccurredAt().AsTime()) {
		a.LastTouch = t
	}
	a.Touches = append(a.Touches, t)
	if len(a.Touches) > MaxTouches {
		a.Touches = append(a.Touches[:1], a.Touches[len(a.Touches)-MaxTouches+1:]...)
	}
}

// Erase removes a lead's personal data: contact, free-form answers and
// visitor ids. Organisation, attribution, consent facts and timestamps stay.
// It reports false when the lead was erased already.
func Erase(l *leadv1.Lead, now time.Time) bool {
	if l.GetErased() {
		return false
	}
	l.Contact = &leadv1.Contact{}
	l.Answers = nil
	l.VisitorIds = nil
	l.Erased = true
	l.ErasedAt = timestamppb.New(now)
	l.UpdatedAt = timestamppb.New(now)
	return true
}

// Profile is what scoring gets of a stored lead: its profile at this
// revision.
func (sl *StoredLead) Profile() *leadv1.LeadProfile {
	p := Profile(sl.Lead, sl.FreeMail)
	p.Revision = sl.Revision
	return p
}

// Profile is the lead without personal data.
func Profile(l *leadv1.Lead, freeMail bool) *leadv1.LeadProfile {
	p := &leadv1.LeadProfile{
		LeadId:           l.GetId(),
		JobTitle:         l.GetContact().GetJobTitle(),
		Seniority:        l.GetContact().GetSeniority(),
		FreeMailDomain:   freeMail,
		ProductInterests: slices.Clone(l.GetProductInterests()),
		CapturedAt:       l.GetCreatedAt(),
		Traceparent:      l.GetTraceparent(),
	}
	if o := l.GetOrganisation(); o != nil {
		p.Organisation = proto.Clone(o).(*leadv1.Organisation)
	}
	if a := l.GetAttribution(); a != nil {
		p.Attribution = &leadv1.Attribution{FirstTouch: a.GetFirstTouch(), LastTouch: a.GetLastTouch()}
	}
	return p
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// HandoffJobID names the hand-off job of a lead revision: each change of a
// lead schedules its own job, and scheduling again (a replay) is a no-op.
func HandoffJobID(leadID string, revision int64) string {
	return fmt.Sprintf("lead:%s:r%d", leadID, revision)
}

// SignalJobID names the hand-off job of an engagement signal.
func SignalJobID(signalID string) string { return "signal:" + signalID }
