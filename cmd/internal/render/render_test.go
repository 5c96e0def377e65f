package render

import (
	"bytes"
	"strings"
	"testing"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
)

func TestMinor(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0.00"}, {5, "0.05"}, {100, "1.00"}, {123456, "1,234.56"}, {100000000, "1,000,000.00"}, {-123456, "-1,234.56"}, {99999, "999.99"},
	} {
		if got := Minor(tc.in); got != tc.want {
			t.Errorf("Minor(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Money(&leadv1.Money{AmountMinor: 4800000, CurrencyCode: "EUR"}); got != "EUR 48,000.00" {
		t.Errorf("Money = %q", got)
	}
	if Money(nil) != "" {
		t.Error("Money(nil) is not empty")
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(&reportingv1.Ratio{Numerator: 2, Denominator: 3, BasisPoints: 6666}); got != "66.66%" {
		t.Errorf("Ratio = %q", got)
	}
	if got := Ratio(&reportingv1.Ratio{}); got != "" {
		t.Errorf("Ratio with denominator 0 = %q, want empty", got)
	}
}

func TestFunnelTable(t *testing.T) {
	resp := &reportingv1.GetFunnelResponse{Total: &reportingv1.FunnelRow{
		Captured: 10, Mql: 5, Won: 1, Revenue: []*leadv1.Money{{AmountMinor: 100, CurrencyCode: "USD"}},
		Conversions: []*reportingv1.Conversion{{To: reportingv1.FunnelStep_FUNNEL_STEP_MQL, Rate: &reportingv1.Ratio{Numerator: 5, Denominator: 10, BasisPoints: 5000}}},
	}}
	var b bytes.Buffer
	if err := Funnel(&b, resp); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"captured     10", "mql          5      50.00%", "revenue won: USD 1.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("funnel output lacks %q:\n%s", want, out)
		}
	}
}

func TestJSONIsStable(t *testing.T) {
	m := &leadv1.Money{AmountMinor: 4800000, CurrencyCode: "EUR"}
	var a, b bytes.Buffer
	if err := JSON(&a, m); err != nil {
		t.Fatal(err)
	}
	if err := JSON(&b, m); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"amountMinor\": \"4800000\",\n  \"currencyCode\": \"EUR\"\n}\n"
	if a.String() != want || b.String() != want {
		t.Errorf("JSON = %q, want %q", a.String(), want)
	}
}
