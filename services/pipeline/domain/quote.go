package domain

import (
	"fmt"
	"strings"
	"time"
)

// QuoteStatus is where a quote is in its life.
type QuoteStatus int

// Quote statuses.
const (
	QuoteDraft QuoteStatus = iota + 1
	QuoteSent
	QuoteAccepted
	QuoteRejected
	QuoteExpired
)

func (s QuoteStatus) String() string {
	return [...]string{"unspecified", "draft", "sent", "accepted", "rejected", "expired"}[s]
}

// LineSpec is a quote line as given.
type LineSpec struct {
	Product     string
	Quantity    int64
	UnitPrice   Money
	DiscountBPS int32
}

// Line is a quote line with computed amounts (minor units of the quote's
// currency).
type Line struct {
	Product     string `json:"product"`
	Quantity    int64  `json:"quantity"`
	UnitPrice   int64  `json:"unit_price"`
	DiscountBPS int32  `json:"discount_bps"`
	Subtotal    int64  `json:"subtotal"`
	Discount    int64  `json:"discount"`
	Total       int64  `json:"total"`
}

// Quote is one version of a deal's quote.
type Quote struct {
	ID            string      `json:"id"`
	DealID        string      `json:"deal_id"`
	Version       int32       `json:"version"`
	Status        QuoteStatus `json:"status"`
	Currency      string      `json:"currency"`
	Lines         []Line      `json:"lines"`
	Subtotal      int64       `json:"subtotal"`
	DiscountTotal int64       `json:"discount_total"`
	Total         int64       `json:"total"`
	ValidUntil    time.Time   `json:"valid_until"`
	CreatedAt     time.Time   `json:"created_at"`
	SentAt        time.Time   `json:"sent_at"`
	DecidedAt     time.Time   `json:"decided_at"`
	RejectReason  string      `json:"reject_reason,omitempty"`
}

// MaxQuoteVersions is the most quote versions a deal may have.
const MaxQuoteVersions = 100

// NewQuote computes a quote's lines and totals.
//
// Rounding, per line: subtotal = quantity × unit_price (exact);
// discount = subtotal × discount_bps / 10000 rounded half away from zero to
// a minor unit; total = subtotal − discount. The quote's subtotal, discount
// and total are the exact sums of the lines, so they always add up.
func NewQuote(id, dealID string, version int32, currency string, specs []LineSpec, validUntil, now time.Time) (Quote, error) {
	var vs violations
	if !ValidCurrency(currency) {
		vs.add("currency_code", "must be an ISO 4217 code such as EUR")
	}
	if len(specs) == 0 {
		vs.add("line_items", "needs at least one line")
	}
	if !validUntil.IsZero() && !validUntil.After(now) {
		vs.add("valid_until", "must be in the future")
	}
	q := Quote{ID: id, DealID: dealID, Version: version, Status: QuoteDraft, Currency: currency, ValidUntil: validUntil.UTC(), CreatedAt: now}
	for i, s := range specs {
		f := fmt.Sprintf("line_items[%d]", i)
		l, err := quoteLine(s, currency, f, &vs)
		if err != nil {
			vs.add(f, "amount out of range")
			continue
		}
		if l == nil {
			continue
		}
		q.Lines = append(q.Lines, *l)
		var e1, e2, e3 error
		q.Subtotal, e1 = addChecked(q.Subtotal, l.Subtotal)
		q.DiscountTotal, e2 = addChecked(q.DiscountTotal, l.Discount)
		q.Total, e3 = addChecked(q.Total, l.Total)
		if e1 != nil || e2 != nil || e3 != nil {
			vs.add("line_items", "quote total out of range")
			break
		}
	}
	if err := vs.err(); err != nil {
		return Quote{}, err
	}
	return q, nil
}

// quoteLine computes one line; nil with no error when the line is invalid
// (its violations were added).
func quoteLine(s LineSpec, currency, f string, vs *violations) (*Line, error) {
	n := len(*vs)
	product := strings.TrimSpace(s.Product)
	if product == "" {
		vs.add(f+".product", "must not be blank")
	}
	if s.Quantity < 1 {
		vs.add(f+".quantity", "must be at least 1")
	}
	if s.UnitPrice.Minor < 0 {
		vs.add(f+".unit_price.amount_minor", "must not be negative")
	}
	if s.UnitPrice.Currency != currency {
		vs.add(f+".unit_price.currency_code", "must be the quote currency %s", currency)
	}
	if s.DiscountBPS < 0 || s.DiscountBPS > BPS {
		vs.add(f+".discount_bps", "must be between 0 and 10000")
	}
	if len(*vs) > n {
		return nil, nil
	}
	sub, err := MulDivRound(s.Quantity, s.UnitPrice.Minor, 1)
	if err != nil {
		return nil, err
	}
	disc, err := MulDivRound(sub, int64(s.DiscountBPS), BPS)
	if err != nil {
		return nil, err
	}
	return &Line{
		Product: product, Quantity: s.Quantity, UnitPrice: s.UnitPrice.Minor, DiscountBPS: s.DiscountBPS,
		Subtotal: sub, Discount: disc, Total: sub - disc,
	}, nil
}

// TotalMoney is the quote total as Money.
func (q *Quote) TotalMoney() Money { return Money{Minor: q.Total, Currency: q.Currency} }

// expired reports whether the quote is past valid_until at now.
func (q *Quote) expired(now time.Time) bool {
	return !q.ValidUntil.IsZero() && now.After(q.ValidUntil)
}

// Effective returns the quote as of now: a draft or sent quote past
// valid_until reads as EXPIRED.
func (q Quote) Effective(now time.Time) Quote {
	if (q.Status == QuoteDraft || q.Status == QuoteSent) && q.expired(now) {
		q.Status = QuoteExpired
		q.DecidedAt = q.ValidUntil
	}
	return q
}

// Send marks a draft sent. Sending a sent quote again is a no-op (already).
func (q *Quote) Send(now time.Time) (already bool, err error) {
	if q.Status == QuoteSent && !q.expired(now) {
		return true, nil
	}
	if err := q.expireIfDue(now); err != nil {
		return false, err
	}
	if q.Status != QuoteDraft {
		return false, precondition("quote %s is %s; only a draft can be sent", q.ID, q.Status)
	}
	q.Status = QuoteSent
	q.SentAt = now
	return false, nil
}

// ErrQuoteExpired is returned (wrapped in ErrFailedPrecondition) when a quote
// is past valid_until; the quote has been marked EXPIRED and must be saved.
var ErrQuoteExpired = fmt.Errorf("%w: quote expired", ErrFailedPrecondition)

func (q *Quote) expireIfDue(now time.Time) error {
	if (q.Status == QuoteDraft || q.Status == QuoteSent) && q.expired(now) {
		q.Status = QuoteExpired
		q.DecidedAt = q.ValidUntil
		return ErrQuoteExpired
	}
	return nil
}

// Accept marks a sent quote accepted. Accepting an accepted quote is a no-op.
func (q *Quote) Accept(now time.Time) (already bool, err error) {
	if q.Status == QuoteAccepted {
		return true, nil
	}
	if err := q.expireIfDue(now); err != nil {
		return false, err
	}
	if q.Status != QuoteSent {
		return false, precondition("quote %s is %s; only a sent quote can be accepted", q.ID, q.Status)
	}
	q.Status = QuoteAccepted
	q.DecidedAt = now
	return false, nil
}

// Reject marks a sent quote rejected. Rejecting a rejected quote is a no-op.
func (q *Quote) Reject(reason string, now time.Time) (already bool, err error) {
	if q.Status == QuoteRejected {
		return true, nil
	}
	if err := q.expireIfDue(now); err != nil {
		return false, err
	}
	if q.Status != QuoteSent {
		return false, precondition("quote %s is %s; only a sent quote can be rejected", q.ID, q.Status)
	}
	q.Status = QuoteRejected
	q.DecidedAt = now
	q.RejectReason = strings.TrimSpace(reason)
	return false, nil
}

// ApplyAcceptedQuote sets the deal amount from an accepted quote.
func (d *Deal) ApplyAcceptedQuote(q *Quote, now time.Time) error {
	if d.Status != DealOpen {
		return precondition("deal %s is %s; its amount is final", d.ID, d.Status)
	}
	d.Amount = q.TotalMoney()
	d.AcceptedQuoteID = q.ID
	d.touch(now)
	return nil
}
