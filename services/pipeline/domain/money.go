package domain

import (
	"errors"
	"math"
	"math/big"
	"regexp"
)

// Money is an amount in minor units of one ISO 4217 currency. Never a float.
type Money struct {
	Minor    int64  `json:"minor"`
	Currency string `json:"currency"`
}

// IsZero reports whether m is the zero value (no amount known).
func (m Money) IsZero() bool { return m.Minor == 0 && m.Currency == "" }

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// ValidCurrency reports whether c is an upper-case three-letter code.
func ValidCurrency(c string) bool { return currencyRE.MatchString(c) }

// ErrOverflow means an amount does not fit in 64-bit minor units.
var ErrOverflow = errors.New("amount out of range")

// BPS is 100 % in basis points.
const BPS = 10000

// MulDivRound returns a × num / den rounded to the nearest integer, halves
// away from zero, computed exactly (no intermediate overflow). den must be
// positive. ErrOverflow when the result does not fit in an int64.
func MulDivRound(a, num, den int64) (int64, error) {
	if den <= 0 {
		return 0, errors.New("MulDivRound: denominator must be positive")
	}
	p := new(big.Int).Mul(big.NewInt(a), big.NewInt(num))
	return divRound(p, big.NewInt(den))
}

// divRound divides p by the positive d, rounding halves away from zero.
func divRound(p, d *big.Int) (int64, error) {
	q, r := new(big.Int).QuoRem(p, d, new(big.Int)) // truncated toward zero
	// |2r| >= d → move one away from zero.
	twice := new(big.Int).Abs(r)
	twice.Lsh(twice, 1)
	if twice.Cmp(d) >= 0 {
		if p.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return 0, ErrOverflow
	}
	return q.Int64(), nil
}

// WeightedSum accumulates Σ amount × bps exactly and rounds once. It sums in
// an int64 while that cannot overflow and switches to a big integer when it
// would, so the result is exact for any input.
type WeightedSum struct {
	small int64
	isBig bool
	acc   big.Int
}

// Add adds amount × bps.
func (w *WeightedSum) Add(amount int64, bps int32) {
	if !w.isBig {
		if p, ok := mulChecked(amount, int64(bps)); ok {
			if s, err := addChecked(w.small, p); err == nil {
				w.small = s
				return
			}
		}
		w.isBig = true
		w.acc.SetInt64(w.small)
	}
	w.acc.Add(&w.acc, new(big.Int).Mul(big.NewInt(amount), big.NewInt(int64(bps))))
}

// Minor returns Σ amount × bps / 10000 rounded half away from zero.
func (w *WeightedSum) Minor() (int64, error) {
	if w.isBig {
		return divRound(&w.acc, big.NewInt(BPS))
	}
	q, r := w.small/BPS, w.small%BPS // truncated toward zero
	if r >= BPS/2 {
		q++
	} else if r <= -BPS/2 {
		q--
	}
	return q, nil
}

// mulChecked multiplies two int64; ok is false on overflow.
func mulChecked(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return p, true
}

// addChecked adds two int64 or reports ErrOverflow.
func addChecked(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, ErrOverflow
	}
	return s, nil
}
