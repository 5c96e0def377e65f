package domain

import (
	"fmt"
	"sort"
	"time"
)

// Month is a calendar month in UTC.
type Month struct {
	Year int
	Mon  time.Month
}

// ParseMonth parses "YYYY-MM".
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return Month{}, fmt.Errorf("month %q: want YYYY-MM", s)
	}
	return Month{t.Year(), t.Month()}, nil
}

func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Mon)) }

// Next is the following month.
func (m Month) Next() Month {
	if m.Mon == time.December {
		return Month{m.Year + 1, time.January}
	}
	return Month{m.Year, m.Mon + 1}
}

func (m Month) index() int { return m.Year*12 + int(m.Mon) - 1 }

// MaxForecastMonths is the longest forecast range.
const MaxForecastMonths = 37

// MonthRange returns the months from..to inclusive.
func MonthRange(from, to string) ([]string, error) {
	var vs violations
	f, err := ParseMonth(from)
	if err != nil {
		vs.add("from_month", "%v", err)
	}
	t, err2 := ParseMonth(to)
	if err2 != nil {
		vs.add("to_month", "%v", err2)
	}
	if err == nil && err2 == nil {
		switch n := t.index() - f.index() + 1; {
		case n < 1:
			vs.add("to_month", "must not be before from_month")
		case n > MaxForecastMonths:
			vs.add("to_month", "at most %d months after from_month", MaxForecastMonths-1)
		}
	}
	if err := vs.err(); err != nil {
		return nil, err
	}
	var out []string
	for m := f; m.index() <= t.index(); m = m.Next() {
		out = append(out, m.String())
	}
	return out, nil
}

// ForecastLine is one group of the forecast, in one currency.
type ForecastLine struct {
	Month     string
	Owner     string
	Currency  string
	DealCount int
	Amount    int64
	Weighted  int64
	Won       int64
}

// Forecast is the result of ComputeForecast.
type Forecast struct {
	Lines              []ForecastLine // month × owner × currency
	ByMonth            []ForecastLine // month × currency
	ByOwner            []ForecastLine // owner × currency
	DealsWithoutAmount int
}

type fkey struct{ month, owner, currency string }

type facc struct {
	count    int
	amount   int64
	won      int64
	weighted WeightedSum
}

// ComputeForecast sums the deals of pipeline p whose close month is in
// months (open deals by expected close date, won deals by close date; lost
// deals are left out). weighted_amount = Σ amount_minor × probability_bps of
// the deal's current stage, divided by 10000 once per group and rounded half
// away from zero; the exact sum is kept, so a by-month total is the rounding
// of the exact total, not the sum of rounded lines. Deals without an amount
// are counted in DealsWithoutAmount only. ErrOverflow if a sum does not fit.
func ComputeForecast(p *Pipeline, deals []Deal, months []string, owner string) (Forecast, error) {
	inRange := map[string]bool{}
	for _, m := range months {
		inRange[m] = true
	}
	cells := map[fkey]*facc{}
	byMonth := map[fkey]*facc{}
	byOwner := map[fkey]*facc{}
	var out Forecast
	get := func(m map[fkey]*facc, k fkey) *facc {
		a := m[k]
		if a == nil {
			a = &facc{}
			m[k] = a
		}
		return a
	}
	for i := range deals {
		d := &deals[i]
		if d.PipelineID != p.ID || d.Status == DealLost || (owner != "" && d.OwnerRepID != owner) {
			continue
		}
		month := d.CloseMonth()
		if !inRange[month] {
			continue
		}
		if d.Amount.IsZero() {
			out.DealsWithoutAmount++
			continue
		}
		bps := int32(0)
		if st, ok := p.Stage(d.StageID); ok {
			bps = st.ProbabilityBPS
		}
		if d.Status == DealWon {
			bps = BPS
		}
		for _, a := range []*facc{
			get(cells, fkey{month, d.OwnerRepID, d.Amount.Currency}),
			get(byMonth, fkey{month, "", d.Amount.Currency}),
			get(byOwner, fkey{"", d.OwnerRepID, d.Amount.Currency}),
		} {
			var err error
			a.count++
			if a.amount, err = addChecked(a.amount, d.Amount.Minor); err != nil {
				return Forecast{}, err
			}
			if d.Status == DealWon {
				if a.won, err = addChecked(a.won, d.Amount.Minor); err != nil {
					return Forecast{}, err
				}
			}
			a.weighted.Add(d.Amount.Minor, bps)
		}
	}
	var err error
	if out.Lines, err = lines(cells); err != nil {
		return Forecast{}, err
	}
	if out.ByMonth, err = lines(byMonth); err != nil {
		return Forecast{}, err
	}
	if out.ByOwner, err = lines(byOwner); err != nil {
		return Forecast{}, err
	}
	return out, nil
}

func lines(m map[fkey]*facc) ([]ForecastLine, error) {
	out := make([]ForecastLine, 0, len(m))
	for k, a := range m {
		w, err := a.weighted.Minor()
		if err != nil {
			return nil, err
		}
		out = append(out, ForecastLine{Month: k.month, Owner: k.owner, Currency: k.currency, DealCount: a.count, Amount: a.amount, Weighted: w, Won: a.won})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Month != b.Month {
			return a.Month < b.Month
		}
		if a.Owner != b.Owner {
			return a.Owner < b.Owner
		}
		return a.Currency < b.Currency
	})
	return out, nil
}
