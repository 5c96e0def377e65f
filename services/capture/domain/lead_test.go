package domain

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

func sub() *capturev1.LeadSubmission {
	return &capturev1.LeadSubmission{
		Contact:          &leadv1.Contact{FirstName: "  Ann ", LastName: "Lee", Email: " Ann.Lee@Acme.COM ", Phone: "(415) 555-2671", JobTitle: "VP Engineering"},
		Company:          &capturev1.Company{Name: "Acme", Website: "https://www.acme.com/about", Industry: "Software ", Country: "United States", EmployeeCount: 250},
		Touch:            &leadv1.Touch{Channel: leadv1.Channel_CHANNEL_WEB_FORM, Source: "Google", Campaign: "spring"},
		Consent:          &leadv1.Consent{MarketingOptIn: true, GivenAt: timestamppb.New(t0.Add(-time.Hour)), WordingVersion: "v1"},
		ProductInterests: []string{"Analytics", "analytics", " API "},
	}
}

func TestNormaliseSubmission(t *testing.T) {
	n, err := Normalise(sub(), "US", t0, leadv1.Channel_CHANNEL_API)
	if err != nil {
		t.Fatal(err)
	}
	c := n.Contact
	if c.FirstName != "Ann" || c.Email != "ann.lee@acme.com" || c.Phone != "+14155552671" || c.Seniority != leadv1.Seniority_SENIORITY_VICE_PRESIDENT {
		t.Fatalf("contact = %v", c)
	}
	if n.Org.Domain != "acme.com" || n.Org.CountryCode != "US" || n.Org.Industry != "software" || n.FreeMail {
		t.Fatalf("org = %v freemail=%v", n.Org, n.FreeMail)
	}
	if !slices.Equal(n.ProductInterests, []string{"analytics", "api"}) {
		t.Fatalf("interests = %v", n.ProductInterests)
	}
	if n.Touch.Channel != leadv1.Channel_CHANNEL_WEB_FORM || n.Touch.Source != "google" || !n.Touch.OccurredAt.AsTime().Equal(t0) {
		t.Fatalf("touch = %v", n.Touch)
	}
}

func TestNormaliseDomainSources(t *testing.T) {
	for _, tc := range []struct {
		name           string
		email, website string
		dom            string
		wantDomain     string
		wantFree       bool
	}{
		{"from business e-mail", "a@sales.acme.co.uk", "", "", "acme.co.uk", false},
		{"free-mail gives none", "a@gmail.com", "", "", "", true},
		{"website wins over e-mail", "a@gmail.com", "http://beta.io/x", "", "beta.io", true},
		{"domain wins over website", "a@acme.com", "http://beta.io", "Gamma.ORG", "gamma.org", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sub()
			s.Contact.Email, s.Company.Website, s.Company.Domain = tc.email, tc.website, tc.dom
			n, err := Normalise(s, "US", t0, leadv1.Channel_CHANNEL_API)
			if err != nil {
				t.Fatal(err)
			}
			if n.Org.Domain != tc.wantDomain || n.FreeMail != tc.wantFree {
				t.Fatalf("domain %q free %v; want %q %v", n.Org.Domain, n.FreeMail, tc.wantDomain, tc.wantFree)
			}
		})
	}
}

func TestNormaliseReportsEveryBadField(t *testing.T) {
	s := sub()
	s.Contact.Email = "not-an-email"
	s.Contact.Phone = "12"
	s.Company.Country = "Atlantis"
	s.Company.Website = "http://"
	_, err := Normalise(s, "US", t0, leadv1.Channel_CHANNEL_API)
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v", err)
	}
	var fields []string
	for _, v := range verr.Violations {
		fields = append(fields, v.Field)
		if strings.Contains(v.Description, "not-an-email") || strings.Contains(v.Description, "Atlantis") {
			t.Errorf("description leaks the value: %q", v.Description)
		}
	}
	want := []string{"submission.contact.email", "submission.contact.phone", "submission.company.country", "submission.company.website"}
	if !slices.Equal(fields, want) {
		t.Fatalf("fields = %v, want %v", fields, want)
	}

	_, err = Normalise(&capturev1.LeadSubmission{Contact: &leadv1.Contact{FirstName: "X"}}, "US", t0, leadv1.Channel_CHANNEL_API)
	if !errors.As(err, &verr) || verr.Violations[0].Field != "submission.contact" {
		t.Fatalf("no identity: %v", err)
	}
}

func TestSeniorityFromTitle(t *testing.T) {
	for title, want := range map[string]leadv1.Seniority{
		"Co-Founder & CEO":           leadv1.Seniority_SENIORITY_OWNER,
		"Chief Technology Officer":   leadv1.Seniority_SENIORITY_C_LEVEL,
		"Managing Director":          leadv1.Seniority_SENIORITY_C_LEVEL,
		"SVP, Sales":                 leadv1.Seniority_SENIORITY_VICE_PRESIDENT,
		"Vice President Marketing":   leadv1.Seniority_SENIORITY_VICE_PRESIDENT,
		"Head of Platform":           leadv1.Seniority_SENIORITY_DIRECTOR,
		"Director of IT":             leadv1.Seniority_SENIORITY_DIRECTOR,
		"Product Manager":            leadv1.Seniority_SENIORITY_MANAGER,
		"Team Lead Backend":          leadv1.Seniority_SENIORITY_MANAGER,
		"Senior Software Engineer":   leadv1.Seniority_SENIORITY_INDIVIDUAL_CONTRIBUTOR,
		"Marketing Intern":           leadv1.Seniority_SENIORITY_ENTRY,
		"Executive Assistant to CEO": leadv1.Seniority_SENIORITY_ENTRY,
		"":                           leadv1.Seniority_SENIORITY_UNSPECIFIED,
		"Wizard":                     leadv1.Seniority_SENIORITY_UNSPECIFIED,
	} {
		if got := SeniorityFromTitle(title); got != want {
			t.Errorf("SeniorityFromTitle(%q) = %v, want %v", title, got, want)
		}
	}
}

func TestMerge(t *testing.T) {
	first, _ := Normalise(sub(), "US", t0, leadv1.Channel_CHANNEL_API)
	first.Contact.Phone = ""
	first.Org.Industry = ""
	l := NewLead("L1", first, &leadv1.Organisation{Id: "O1", ProspectStatus: leadv1.ProspectStatus_PROSPECT_STATUS_POTENTIAL}, "tp", "tid", t0)

	s2 := sub()
	s2.Contact.FirstName = "Annie" // not overwritten
	s2.Company.Industry = "fintech"
	s2.Touch = &leadv1.Touch{Channel: leadv1.Channel_CHANNEL_EVENT, Source: "booth", OccurredAt: timestamppb.New(t0.Add(time.Hour))}
	s2.Consent = &leadv1.Consent{MarketingOptIn: false, GivenAt: timestamppb.New(t0.Add(-48 * time.Hour))} // older: ignored
	s2.ProductInterests = []string{"crm"}
	s2.VisitorId = "v-1"
	n2, err := Normalise(s2, "US", t0.Add(time.Hour), leadv1.Channel_CHANNEL_API)
	if err != nil {
		t.Fatal(err)
	}
	filled, err := Merge(l, n2, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"contact.phone", "organisation.industry", "product_interests", "visitor_ids"}
	if !slices.Equal(filled, want) {
		t.Fatalf("filled = %v, want %v", filled, want)
	}
	if l.Contact.FirstName != "Ann" || l.Contact.Phone != "+14155552671" || l.Organisation.Industry != "fintech" {
		t.Fatalf("lead = %v", l)
	}
	a := l.Attribution
	if a.FirstTouch.Source != "google" || a.LastTouch.Source != "booth" || len(a.Touches) != 2 {
		t.Fatalf("attribution = %v", a)
	}
	if !l.Consent.MarketingOptIn || l.SubmissionCount != 2 {
		t.Fatalf("older consent replaced a newer one, or count wrong: %v %d", l.Consent, l.SubmissionCount)
	}
	if l.Organisation.Id != "O1" {
		t.Fatalf("organisation id lost")
	}

	// A newer consent replaces; an older touch does not become the last touch.
	s3 := sub()
	s3.Consent = &leadv1.Consent{MarketingOptIn: false, GivenAt: timestamppb.New(t0.Add(2 * time.Hour))}
	s3.Touch = &leadv1.Touch{Source: "late-import", OccurredAt: timestamppb.New(t0.Add(-time.Hour))}
	n3, _ := Normalise(s3, "US", t0.Add(3*time.Hour), leadv1.Channel_CHANNEL_IMPORT)
	filled, _ = Merge(l, n3, t0.Add(3*time.Hour))
	if !slices.Contains(filled, "consent") || l.Consent.MarketingOptIn || a.LastTouch.Source != "booth" || len(a.Touches) != 3 {
		t.Fatalf("filled %v consent %v last %v", filled, l.Consent, a.LastTouch)
	}

	Erase(l, t0)
	if _, err := Merge(l, n3, t0); !errors.Is(err, ErrErased) {
		t.Fatalf("merge into erased lead: %v", err)
	}
}

func TestEraseAndProfileHoldNoPersonalData(t *testing.T) {
	n, _ := Normalise(sub(), "US", t0, leadv1.Channel_CHANNEL_API)
	n.Answers = map[string]string{"q": "call me on +14155552671"}
	n.VisitorID = "v-9"
	l := NewLead("L1", n, nil, "tp", "tid", t0)
	b, _ := proto.Marshal(Profile(l, n.FreeMail))
	for _, pii := range []string{"Ann", "Lee", "ann.lee@acme.com", "+14155552671", "v-9"} {
		if strings.Contains(string(b), pii) {
			t.Errorf("profile holds %q", pii)
		}
	}
	if !Erase(l, t0) || Erase(l, t0) {
		t.Fatal("Erase should report the first erasure only")
	}
	b, _ = proto.Marshal(l)
	for _, pii := range []string{"Ann", "Lee", "ann.lee@acme.com", "+14155552671", "v-9"} {
		if strings.Contains(string(b), pii) {
			t.Errorf("erased lead holds %q", pii)
		}
	}
	if l.Attribution.FirstTouch.Source != "google" || l.Organisation.Domain != "acme.com" {
		t.Fatal("erase removed non-personal facts")
	}
}

func TestAddTouchIsBounded(t *testing.T) {
	l := &leadv1.Lead{}
	for i := 0; i < MaxTouches+10; i++ {
		AddTouch(l, &leadv1.Touch{Source: "s", Campaign: string(rune('a' + i%26)), OccurredAt: timestamppb.New(t0.Add(time.Duration(i) * time.Minute))})
	}
	if len(l.Attribution.Touches) != MaxTouches || l.Attribution.Touches[0] != l.Attribution.FirstTouch {
		t.Fatalf("touches = %d", len(l.Attribution.Touches))
	}
}

// FuzzNormalise: a submission built from fuzzed fields never panics, and
// feeding the normalised result back gives the same result.
func FuzzNormalise(f *testing.F) {
	f.Add(" Ann@Acme.COM ", "(415) 555-2671", "https://www.acme.com", "Germany", "VP Sales", " Ann ")
	f.Add("a@gmail.com", "+49 30 901820", "", "deu", "", "")
	f.Add("", "", "acme", "xx", "Head of \x00 IT", "\t")
	f.Fuzz(func(t *testing.T, email, phone, website, country, title, name string) {
		in := &capturev1.LeadSubmission{
			Contact: &leadv1.Contact{Email: email, Phone: phone, JobTitle: title, FirstName: name},
			Company: &capturev1.Company{Website: website, Country: country, Industry: name},
			Touch:   &leadv1.Touch{Source: name},
		}
		n, err := Normalise(in, "DE", t0, leadv1.Channel_CHANNEL_API)
		if err != nil {
			return
		}
		again := &capturev1.LeadSubmission{
			Contact: n.Contact,
			Company: &capturev1.Company{Domain: n.Org.Domain, Website: n.Org.Website, Country: n.Org.CountryCode, Industry: n.Org.Industry, Name: n.Org.Name},
			Touch:   n.Touch,
		}
		n2, err := Normalise(again, "DE", t0, leadv1.Channel_CHANNEL_API)
		if err != nil {
			t.Fatalf("normalised submission rejected: %v", err)
		}
		if !proto.Equal(n.Contact, n2.Contact) || !proto.Equal(n.Org, n2.Org) || !proto.Equal(n.Touch, n2.Touch) || n.FreeMail != n2.FreeMail {
			t.Fatalf("not stable:\n%v\n%v", n, n2)
		}
	})
}

func TestMergeBoundsWhatAccumulates(t *testing.T) {
	n, _ := Normalise(sub(), "US", t0, leadv1.Channel_CHANNEL_API)
	l := NewLead("L", n, nil, "", "", t0)
	for i := 0; i < 60; i++ {
		s := sub()
		s.ProductInterests = []string{strings.Repeat("p", i+1)}
		s.Answers = map[string]string{strings.Repeat("q", i+1): "a", strings.Repeat("r", i+1): "b"}
		ni, err := Normalise(s, "US", t0, leadv1.Channel_CHANNEL_API)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Merge(l, ni, t0); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.ProductInterests) != MaxProductInterests || len(l.Answers) != MaxAnswers {
		t.Fatalf("interests %d answers %d", len(l.ProductInterests), len(l.Answers))
	}
}
