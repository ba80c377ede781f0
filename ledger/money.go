package ledger

import (
	"github.com/shopspring/decimal"
)

// currencyMinorUnits is ISO 4217's number of decimals per currency.
var currencyMinorUnits = map[string]int32{
	"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "CAD": 2, "AUD": 2, "CHF": 2, "INR": 2,
	"KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "TND": 3, "LYD": 3, "IQD": 3,
	"KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "UGX": 0, "XOF": 0, "XAF": 0, "PYG": 0, "RWF": 0,
	"CNY": 2, "HKD": 2, "SGD": 2, "NZD": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2,
	"HUF": 2, "MXN": 2, "BRL": 2, "ARS": 2, "ZAR": 2, "NGN": 2, "KES": 2, "GHS": 2, "EGP": 2,
	"AED": 2, "SAR": 2, "QAR": 2, "ILS": 2, "TRY": 2, "THB": 2, "MYR": 2, "IDR": 2, "PHP": 2,
	"PKR": 2, "BDT": 2, "TWD": 2, "COP": 2, "PEN": 2, "RON": 2, "BGN": 2, "UAH": 2,
}

// MinorUnits returns how many decimals currency allows, and whether it is known.
func MinorUnits(currency string) (int32, bool) {
	n, ok := currencyMinorUnits[currency]
	return n, ok
}

// RewardTokens converts an amount into whole tokens: amount × multiplier,
// rounded half up (amounts are positive, so half away from zero is half up).
func RewardTokens(amount, multiplier decimal.Decimal) int64 {
	return amount.Mul(multiplier).Round(0).IntPart()
}

// SplitEqual divides total among n stakeholders so that the parts add up
// exactly to total: each gets total/n, and the remainder goes one token
// each to the first stakeholders in request order.
func SplitEqual(total int64, n int) []int64 {
	parts := make([]int64, n)
	if n == 0 {
		return parts
	}
	base, rem := total/int64(n), total%int64(n)
	for i := range parts {
		parts[i] = base
		if int64(i) < rem {
			parts[i]++
		}
	}
	return parts
}

// SplitWeighted divides total by percentage weights (summing to 100, in
// basis points of a percent are not needed: whole or decimal percentages
// are fine). Each part is floor(total × weight / Σweights); the tokens
// left over by flooring go one each to the parts in order. Parts add up
// exactly to total.
func SplitWeighted(total int64, weights []decimal.Decimal) []int64 {
	parts := make([]int64, len(weights))
	sum := decimal.Zero
	for _, w := range weights {
		sum = sum.Add(w)
	}
	if len(weights) == 0 || !sum.IsPositive() {
		return SplitEqual(total, len(weights))
	}
	var given int64
	t := decimal.NewFromInt(total)
	for i, w := range weights {
		parts[i] = t.Mul(w).Div(sum).Floor().IntPart()
		given += parts[i]
	}
	for i := 0; given < total; i = (i + 1) % len(parts) {
		if weights[i].IsPositive() {
			parts[i]++
			given++
		}
	}
	return parts
}
