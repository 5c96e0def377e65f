package main

import (
	"bytes"
	"strings"
	"testing"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
)

func TestParseMoney(t *testing.T) {
	for _, tc := range []struct {
		in    string
		minor int64
		ok    bool
	}{
		{"48000", 4800000, true}, {"48000.5", 4800050, true}, {"48,000.50", 4800050, true}, {" 0.07 ", 7, true},
		{"1.234", 0, false}, {"-5", 0, false}, {"abc", 0, false}, {"", 0, false}, {"1.x", 0, false},
	} {
		m, err := parseMoney(tc.in, "eur")
		if (err == nil) != tc.ok {
			t.Errorf("parseMoney(%q) error = %v, want ok=%t", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (m.GetAmountMinor() != tc.minor || m.GetCurrencyCode() != "EUR") {
			t.Errorf("parseMoney(%q) = %v, want %d EUR", tc.in, m, tc.minor)
		}
	}
}

func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"1", "1.5", "12,000.00", "-1", ".5", "1."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMoney(s, "USD")
		if err == nil && m.GetAmountMinor() < 0 {
			t.Fatalf("parseMoney(%q) = %d: negative", s, m.GetAmountMinor())
		}
	})
}

func TestEnumValue(t *testing.T) {
	d := leadv1.Channel(0).Descriptor()
	for in, want := range map[string]leadv1.Channel{"web_form": leadv1.Channel_CHANNEL_WEB_FORM, "WEB-FORM": leadv1.Channel_CHANNEL_WEB_FORM, "CHANNEL_EVENT": leadv1.Channel_CHANNEL_EVENT} {
		v, err := enumValue(d, "CHANNEL_", in)
		if err != nil || leadv1.Channel(v) != want {
			t.Errorf("enumValue(%q) = %v, %v; want %v", in, v, err, want)
		}
	}
	_, err := enumValue(d, "CHANNEL_", "pigeon")
	if err == nil || !strings.Contains(err.Error(), "web_form") {
		t.Errorf("an unknown value must be refused with the list of values, got %v", err)
	}
	if _, err := enumValue(d, "CHANNEL_", "unspecified"); err == nil {
		t.Error("UNSPECIFIED must be refused")
	}
}

func TestUsageErrorsNeedNoServer(t *testing.T) {
	for _, args := range [][]string{
		{"deal", "won", "d1", "--amount", "12.345"},
		{"lead", "engage", "l1", "--type", "smoke_signal"},
		{"apply"},
		{"funnel", "--from", "yesterday"},
		{"health", "-o", "yaml"},
	} {
		var out, errOut bytes.Buffer
		root := newRoot(&out, &errOut)
		root.SetArgs(args)
		if err := root.Execute(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
