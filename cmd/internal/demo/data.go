package demo

import (
	"fmt"
	"math/rand/v2"
	"strings"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
)

// company is a fictional organisation (every company domain is under the
// reserved .example top-level domain; cold leads may use a free-mail address,
// which capture recognises and which fit scoring counts against them).
type company struct {
	name, slug, industry, country, region string
	employees                             int32
	revenueMinor                          int64
	currency                              string
}

// Good-fit companies: the ideal customer profile of the default model.
var goodFit = []company{
	{"Nordwind Software GmbH", "nordwind-software", "software", "DE", "", 420, 48_000_000_00, "EUR"},
	{"Alpenblick Analytics AG", "alpenblick", "saas", "CH", "", 180, 22_000_000_00, "EUR"},
	{"Kanalwerk Fintech BV", "kanalwerk", "fintech", "NL", "", 260, 31_000_000_00, "EUR"},
	{"Brightwater Cloud Ltd", "brightwater-cloud", "information technology", "GB", "", 140, 12_000_000_00, "EUR"},
	{"Lumiere Data SAS", "lumiere-data", "software", "FR", "", 95, 8_500_000_00, "EUR"},
	{"Fjordline Systems AS", "fjordline", "internet", "NO", "", 310, 27_000_000_00, "EUR"},
	{"Redwood Metrics Inc", "redwood-metrics", "saas", "US", "US-CA", 230, 35_000_000_00, "USD"},
	{"Lakeshore Payments Corp", "lakeshore-payments", "fintech", "US", "US-IL", 520, 64_000_000_00, "USD"},
	{"Maple Stack Software", "maplestack", "software", "CA", "CA-ON", 150, 14_000_000_00, "USD"},
	{"Harborview Media LLC", "harborview-media", "media", "US", "US-NY", 120, 9_000_000_00, "USD"},
	{"Sakura Devices KK", "sakura-devices", "manufacturing", "JP", "", 640, 90_000_000_00, "USD"},
	{"Koala Commerce Pty", "koala-commerce", "e-commerce", "AU", "", 210, 18_000_000_00, "USD"},
	// Enterprises (1000+ employees): the enterprise team's.
	{"Rheinmetall Digital SE", "rhein-digital", "information technology", "DE", "", 5200, 900_000_000_00, "EUR"},
	{"Atlantic Bancorp", "atlantic-bancorp", "financial services", "US", "US-MA", 12000, 4_000_000_000_00, "USD"},
	{"Meridian Telecom plc", "meridian-telecom", "telecommunications", "GB", "", 8300, 2_100_000_000_00, "EUR"},
	{"Pacifica Logistics Group", "pacifica-logistics", "software", "SG", "", 2400, 310_000_000_00, "USD"},
}

// Poor-fit companies: small, outside the ICP.
var poorFit = []company{
	{"Bäckerei Sonnenschein", "sonnenschein-baeckerei", "food", "DE", "", 8, 0, ""},
	{"Corner Yoga Studio", "corner-yoga", "wellness", "US", "US-TX", 4, 0, ""},
	{"Petit Atelier", "petit-atelier", "retail", "FR", "", 6, 0, ""},
	{"Oak & Ivy Landscaping", "oak-ivy", "construction", "GB", "", 12, 0, ""},
	{"Sunrise Dental Care", "sunrise-dental", "healthcare", "CA", "", 15, 0, ""},
}

var firstNames = []string{"Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hugo", "Ines", "Jonas",
	"Kai", "Lena", "Mateo", "Nora", "Omar", "Paula", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wim", "Yara", "Zoe"}

var lastNames = []string{"Schneider", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Rossi", "Novak", "García",
	"Müller", "Andersen", "Kowalski", "Dubois", "Nakamura", "O'Brien", "Silva", "Haddad", "Weber", "Jansen"}

var goodTitles = []string{"CTO", "VP Engineering", "Head of Data Platform", "Director of IT", "Chief Information Officer",
	"Head of Analytics", "Engineering Manager", "Founder & CEO", "Director Platform Engineering", "VP Data"}

var poorTitles = []string{"Marketing Intern", "Student", "Office Assistant", "Junior Designer", "Trainee"}

var channels = []struct {
	channel                  leadv1.Channel
	source, medium, campaign string
}{
	{leadv1.Channel_CHANNEL_WEB_FORM, "google", "cpc", "search-q4"},
	{leadv1.Channel_CHANNEL_WEB_FORM, "linkedin", "paid-social", "abm-fintech"},
	{leadv1.Channel_CHANNEL_EVENT, "saastr-europa", "event", "events-2026"},
	{leadv1.Channel_CHANNEL_CHATBOT, "website", "organic", ""},
	{leadv1.Channel_CHANNEL_EMAIL, "newsletter", "email", "nurture-nov"},
	{leadv1.Channel_CHANNEL_REFERRAL, "customer-referral", "referral", ""},
	{leadv1.Channel_CHANNEL_PAID_AD, "linkedin", "lead-gen-form", "abm-fintech"},
	{leadv1.Channel_CHANNEL_WEB_FORM, "webinar", "email", "webinar-2026-11"},
}

var products = [][]string{{"analytics"}, {"api"}, {"platform", "analytics"}, {"api", "platform"}, {"reporting"}}

// fate is what the demo makes of a lead.
type fate int

const (
	fateCold        fate = iota // never reaches MQL
	fateJunk                    // MQL, the rep gives it back as junk
	fateRecycle                 // accepted, touched, recycled to nurturing
	fateUnreachable             // accepted, three touches, unreachable
	fateReject                  // the first rep rejects it, another accepts and qualifies it
	fateOpen                    // qualified; the deal stays open
	fateWon                     // qualified; the deal is won
	fateLost                    // qualified; the deal is lost
	fateLostRecycle             // qualified; the deal is lost and the lead recycled
)

func (f fate) String() string {
	return [...]string{"cold", "junk", "recycle", "unreachable", "reject", "open", "won", "lost", "lost+recycle"}[f]
}

func (f fate) qualifies() bool { return f >= fateReject }

// person is one planned lead.
type person struct {
	index       int
	first, last string
	title       string
	email       string
	co          company
	freeMail    bool
	touch       int // index into channels
	products    []string
	fate        fate
	duplicateOf int // >= 0: a second submission of that lead (same e-mail, another channel)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// plan draws n leads from seed: the same seed gives the same people, the
// same companies and the same fates. runID keeps e-mail addresses of
// different runs apart, so a second run against the same suite creates new
// leads instead of merging into the first run's.
func plan(n int, seed uint64, runID string) []person {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	people := make([]person, 0, n)
	for i := 0; i < n; i++ {
		// Every 12th lead (from the 6th on) is a second submission of an
		// earlier one: de-duplication merges it.
		if i >= 6 && i%12 == 5 {
			orig := r.IntN(i - 1)
			for people[orig].duplicateOf >= 0 {
				orig = r.IntN(i - 1)
			}
			d := people[orig]
			d.index, d.duplicateOf = i, orig
			d.touch = (d.touch + 3) % len(channels)
			people = append(people, d)
			continue
		}
		p := person{index: i, duplicateOf: -1, first: pick(r, firstNames), last: pick(r, lastNames), touch: r.IntN(len(channels))}
		roll := r.IntN(100)
		switch {
		case roll < 30:
			p.fate = fateCold
		case roll < 37:
			p.fate = fateJunk
		case roll < 45:
			p.fate = fateRecycle
		case roll < 50:
			p.fate = fateUnreachable
		case roll < 55:
			p.fate = fateReject
		case roll < 63:
			p.fate = fateOpen
		case roll < 83:
			p.fate = fateWon
		case roll < 92:
			p.fate = fateLost
		default:
			p.fate = fateLostRecycle
		}
		if p.fate == fateCold {
			p.co = pick(r, poorFit)
			p.title = pick(r, poorTitles)
			p.freeMail = r.IntN(2) == 0
		} else {
			p.co = pick(r, goodFit)
			p.title = pick(r, goodTitles)
			p.products = pick(r, products)
		}
		local := strings.ToLower(asciiFold(p.first) + "." + asciiFold(p.last))
		if p.freeMail {
			p.email = fmt.Sprintf("%s.%s.%d@gmail.com", local, runID, i)
		} else {
			p.email = fmt.Sprintf("%s+%s.%d@%s.example", local, runID, i, p.co.slug)
		}
		people = append(people, p)
	}
	return people
}

// asciiFold makes a name usable in an e-mail local part.
func asciiFold(s string) string {
	repl := strings.NewReplacer("ä", "ae", "ö", "oe", "ü", "ue", "ß", "ss", "é", "e", "í", "i", "á", "a", "'", "")
	s = repl.Replace(strings.ToLower(s))
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' {
			b.WriteRune(c)
		}
	}
	return b.String()
}
