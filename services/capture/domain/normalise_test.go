package domain

import (
	"errors"
	"testing"
)

func TestNormaliseEmail(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"", "", nil},
		{"  Ann.Example@ACME.com \n", "ann.example@acme.com", nil},
		{"a+tag@sub.acme.co.uk", "a+tag@sub.acme.co.uk", nil},
		{"no-at-sign", "", ErrEmailSyntax},
		{"a@b", "", ErrEmailSyntax},
		{"Ann <ann@acme.com>", "", ErrEmailSyntax},
		{"a b@acme.com", "", ErrEmailSyntax},
		{"ann@acme..com", "", ErrEmailSyntax},
		{"ann@-acme.com", "", ErrEmailSyntax},
		{"@acme.com", "", ErrEmailSyntax},
		{"ann@acme.c", "", ErrEmailSyntax},
	} {
		got, err := NormaliseEmail(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("NormaliseEmail(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestNormalisePhone(t *testing.T) {
	for _, tc := range []struct {
		in, region, want string
		err              error
	}{
		{"", "US", "", nil},
		{"(415) 555-2671", "US", "+14155552671", nil},
		{"+1 415 555 2671", "DE", "+14155552671", nil},
		{"030 901820", "DE", "+4930901820", nil},
		{"+49 30 901820", "US", "+4930901820", nil},
		{"0044 20 7946 0958", "DE", "+442079460958", nil},
		{"12", "US", "", ErrPhone},
		{"not a number", "US", "", ErrPhone},
		{"+999 123", "US", "", ErrPhone},
	} {
		got, err := NormalisePhone(tc.in, tc.region)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("NormalisePhone(%q, %s) = %q, %v; want %q, %v", tc.in, tc.region, got, err, tc.want, tc.err)
		}
	}
}

func TestNormaliseDomain(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"", "", nil},
		{"acme.com", "acme.com", nil},
		{"https://WWW.Acme.com/about?x=1", "acme.com", nil},
		{"http://shop.acme.co.uk:8080/", "acme.co.uk", nil},
		{"www.acme.io/pricing", "acme.io", nil},
		{"acme.com.", "acme.com", nil},
		{"localhost", "", ErrDomain},
		{"acme", "", ErrDomain},
		{"co.uk", "", ErrDomain},
		{"ac me.com", "", ErrDomain},
		{"https://", "", ErrDomain},
	} {
		got, err := NormaliseDomain(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("NormaliseDomain(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestNormaliseCountry(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"", "", nil},
		{"de", "DE", nil},
		{"DEU", "DE", nil},
		{"Germany", "DE", nil},
		{"  united   states ", "US", nil},
		{"USA", "US", nil},
		{"UK", "GB", nil},
		{"United Kingdom", "GB", nil},
		{"gbr", "GB", nil},
		{"Deutschland", "DE", nil},
		{"Côte d’Ivoire", "CI", nil},
		{"Bosnia & Herzegovina", "BA", nil},
		{"France", "FR", nil},
		{"Japan", "JP", nil},
		{"EU", "", ErrCountry},
		{"XX", "", ErrCountry},
		{"Atlantis", "", ErrCountry},
		{"419", "", ErrCountry},
	} {
		got, err := NormaliseCountry(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("NormaliseCountry(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"  Ann  ":          "Ann",
		"Mary \t\n Ann":    "Mary Ann",
		"José\u0000García": "José García",
	} {
		if got := CleanText(in); got != want {
			t.Errorf("CleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsFreeMail(t *testing.T) {
	if !IsFreeMail("gmail.com") || IsFreeMail("acme.com") {
		t.Fatal("free-mail list")
	}
}

// FuzzNormalisers: never panics, and normalising an output again gives the
// same output (a fixed point), for every field normaliser.
func FuzzNormalisers(f *testing.F) {
	for _, s := range []string{"", " Ann@Acme.COM ", "+1 (415) 555-2671", "030 901820", "https://www.acme.co.uk/x", "Germany", "deu", "a@b.c", "\xff", "ｆｏｏ@bar.com", "+80012345678"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if e, err := NormaliseEmail(s); err == nil {
			if e2, err := NormaliseEmail(e); err != nil || e2 != e {
				t.Fatalf("email not stable: %q -> %q -> %q, %v", s, e, e2, err)
			}
		}
		for _, region := range []string{"US", "DE"} {
			if p, err := NormalisePhone(s, region); err == nil {
				if p2, err := NormalisePhone(p, region); err != nil || p2 != p {
					t.Fatalf("phone not stable: %q -> %q -> %q, %v", s, p, p2, err)
				}
			}
		}
		if d, err := NormaliseDomain(s); err == nil {
			if d2, err := NormaliseDomain(d); err != nil || d2 != d {
				t.Fatalf("domain not stable: %q -> %q -> %q, %v", s, d, d2, err)
			}
		}
		if c, err := NormaliseCountry(s); err == nil {
			if c2, err := NormaliseCountry(c); err != nil || c2 != c {
				t.Fatalf("country not stable: %q -> %q -> %q, %v", s, c, c2, err)
			}
		}
		if c := CleanText(s); CleanText(c) != c {
			t.Fatalf("text not stable: %q -> %q", s, c)
		}
	})
}
