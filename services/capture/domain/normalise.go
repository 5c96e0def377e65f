package domain

import (
	"errors"
	"net/mail"
	"net/url"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// Errors of the field normalisers. Their text is shown to callers; it never
// contains the offending value (which may be personal data).
var (
	ErrEmailSyntax = errors.New("not a valid e-mail address")
	ErrPhone       = errors.New("not a valid phone number (E.164, or national in the default region)")
	ErrDomain      = errors.New("not a valid domain or website")
	ErrCountry     = errors.New("unknown country: use an ISO 3166-1 code or an English country name")
)

// NormaliseEmail trims and lower-cases an e-mail address and checks its
// syntax (net/mail, a bare address only, a domain with a dot). Empty stays
// empty.
func NormaliseEmail(raw string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if s == "" {
		return "", nil
	}
	if len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>\"(),;:[]\\") {
		return "", ErrEmailSyntax
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", ErrEmailSyntax
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at > 64 {
		return "", ErrEmailSyntax
	}
	if _, err := normaliseHost(s[at+1:]); err != nil {
		return "", ErrEmailSyntax
	}
	return s, nil
}

// EmailDomain is the part after the @ of a normalised e-mail.
func EmailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return ""
	}
	return email[at+1:]
}

// NormalisePhone parses a phone number (with a leading + and country code, or
// national in defaultRegion) and returns it in E.164. Empty stays empty.
func NormalisePhone(raw, defaultRegion string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", nil
	}
	if len(s) > 64 {
		return "", ErrPhone
	}
	n, err := phonenumbers.Parse(s, defaultRegion)
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", ErrPhone
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// ValidRegion reports whether r is a region phonenumbers knows (for the
// configured default region).
func ValidRegion(r string) bool {
	return phonenumbers.GetSupportedRegions()[r]
}

// NormaliseDomain turns a domain or a website URL into the registrable
// domain (eTLD+1), lower-case, without "www." or a port: "https://WWW.Shop.Acme.co.uk/x"
// → "acme.co.uk". Empty stays empty.
func NormaliseDomain(raw string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if s == "" {
		return "", nil
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", ErrDomain
		}
		s = u.Hostname()
	} else {
		// "acme.com/about", "acme.com:8080"
		if i := strings.IndexAny(s, "/?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			s = s[:i]
		}
	}
	h, err := normaliseHost(s)
	if err != nil {
		return "", err
	}
	reg, err := publicsuffix.EffectiveTLDPlusOne(h)
	if err != nil {
		return "", ErrDomain
	}
	return reg, nil
}

// normaliseHost checks an ASCII host name: labels of letters, digits and
// hyphens, at least two labels, an alphabetic top-level label.
func normaliseHost(h string) (string, error) {
	h = strings.TrimSuffix(h, ".")
	if len(h) == 0 || len(h) > 253 {
		return "", ErrDomain
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return "", ErrDomain
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", ErrDomain
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", ErrDomain
			}
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 {
		return "", ErrDomain
	}
	for i := 0; i < len(tld); i++ {
		if tld[i] < 'a' || tld[i] > 'z' {
			if !strings.HasPrefix(tld, "xn--") {
				return "", ErrDomain
			}
		}
	}
	return h, nil
}

// countryNames maps lower-case English names (from CLDR via x/text, plus
// common aliases) to ISO 3166-1 alpha-2 codes.
var countryNames = map[string]string{}

func init() {
	names := display.English.Regions()
	for r := range phonenumbers.GetSupportedRegions() {
		reg, err := language.ParseRegion(r)
		if err != nil || !reg.IsCountry() {
			continue
		}
		if n := names.Name(reg); n != "" {
			countryNames[foldName(n)] = reg.String()
		}
	}
	for alias, code := range map[string]string{
		"usa": "US", "united states of america": "US", "america": "US",
		"uk": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB", "northern ireland": "GB",
		"deutschland": "DE", "holland": "NL", "the netherlands": "NL", "south korea": "KR", "korea": "KR", "north korea": "KP",
		"russia": "RU", "russian federation": "RU", "czech republic": "CZ", "czechia": "CZ", "viet nam": "VN", "vietnam": "VN",
		"uae": "AE", "turkey": "TR", "turkiye": "TR", "ivory coast": "CI", "schweiz": "CH", "suisse": "CH", "osterreich": "AT",
		"espana": "ES", "italia": "IT", "brasil": "BR", "mexico": "MX", "hong kong": "HK", "macau": "MO", "taiwan": "TW",
		"burma": "MM", "swaziland": "SZ", "macedonia": "MK", "cape verde": "CV", "iran": "IR", "syria": "SY", "laos": "LA",
		"bolivia": "BO", "venezuela": "VE", "tanzania": "TZ", "moldova": "MD", "palestine": "PS", "vatican": "VA",
	} {
		countryNames[alias] = code
	}
}

func foldName(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r == 'ü' || r == 'ö' || r == 'ä':
			b.WriteRune(map[rune]rune{'ü': 'u', 'ö': 'o', 'ä': 'a'}[r])
			space = false
		case r == 'ñ':
			b.WriteRune('n')
			space = false
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteRune(r)
			space = false
		case r == '&':
			if b.Len() > 0 {
				b.WriteString(" and")
			}
			space = true
		default:
			space = true
		}
	}
	return b.String()
}

// NormaliseCountry accepts an ISO 3166-1 alpha-2 or alpha-3 code or an
// English name of a country and returns the alpha-2 code. Empty stays empty.
func NormaliseCountry(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", nil
	}
	if (len(s) == 2 || len(s) == 3) && isASCIILetters(s) {
		up := strings.ToUpper(s)
		if up == "UK" {
			return "GB", nil
		}
		if reg, err := language.ParseRegion(up); err == nil && reg.IsCountry() && ValidRegion(reg.String()) {
			return reg.String(), nil
		}
	}
	if c, ok := countryNames[foldName(s)]; ok {
		return c, nil
	}
	return "", ErrCountry
}

func isASCIILetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// CleanText trims a free-text value (a name, a title) and collapses runs of
// white space and control characters to one space.
func CleanText(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// CleanKeyword lower-cases and cleans a picklist value ("Software " →
// "software").
func CleanKeyword(s string) string { return strings.ToLower(CleanText(s)) }
