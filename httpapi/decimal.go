package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// decimalText is a decimal amount as the wire carries it: a JSON number or
// a JSON string holding one. It keeps the text, so no binary float ever
// touches an amount; the domain parses it.
type decimalText string

// decimalIssue is what a request is told when a decimal does not match the
// documented pattern (the OpenAPI document's Decimal schema).
const decimalIssue = `must be a decimal matching ^(0|[1-9][0-9]{0,17})(\.[0-9]{1,8})?$, as a string ("49.99") or a number (49.99)`

var errDecimal = errors.New(decimalIssue)

// UnmarshalJSON accepts 49.99 and "49.99", and nothing else that spells a
// number: no exponent, sign, padding or leading zero, whether quoted or
// not, so every decimal the service records is written one way. An empty
// string counts as absent (the domain says whether it is required).
func (d *decimalText) UnmarshalJSON(b []byte) error {
	// encoding/json hands over one value it has already checked is valid
	// JSON, so the literal can be read in place: a decoder per amount was
	// 1.8 KB of garbage on every submit, 6% of what a request allocated.
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*d = ""
		return nil
	case len(b) >= 2 && b[0] == '"':
		inner := b[1 : len(b)-1]
		if bytes.IndexByte(inner, '\\') >= 0 {
			// Escapes never spell a valid decimal's characters more
			// simply; decode them and let the pattern decide.
			var s string
			if err := json.Unmarshal(b, &s); err != nil || s != "" && !isDecimal(s) {
				return errDecimal
			}
			*d = decimalText(s)
			return nil
		}
		if len(inner) > 0 && !isDecimal(string(inner)) {
			return errDecimal
		}
		*d = decimalText(inner)
		return nil
	case isDecimal(string(b)):
		*d = decimalText(b)
		return nil
	}
	return errDecimal
}

// decimalJSON reports whether a parsed JSON value (decoded with UseNumber)
// is a decimal the wire accepts.
func decimalJSON(v any) bool {
	switch v := v.(type) {
	case string:
		return v == "" || isDecimal(v)
	case json.Number:
		return isDecimal(string(v))
	}
	return false
}

// isDecimal reports whether s matches ^(0|[1-9][0-9]{0,17})(\.[0-9]{1,8})?$.
func isDecimal(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 18 || len(whole) > 1 && whole[0] == '0' || !allDigits(whole) {
		return false
	}
	return !dot || frac != "" && len(frac) <= 8 && allDigits(frac)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ptr is the optional form of a decimal field of a PATCH body.
func (d *decimalText) ptr() *string {
	if d == nil {
		return nil
	}
	s := string(*d)
	return &s
}
