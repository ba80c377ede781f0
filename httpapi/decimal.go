package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// decimalText is a decimal amount as the wire carries it: a JSON number or
// a JSON string holding one. It keeps the text, so no binary float ever
// touches an amount; the domain parses it.
type decimalText string

// UnmarshalJSON accepts 49.99 and "49.99".
func (d *decimalText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*d = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = decimalText(strings.TrimSpace(s))
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("amount must be a decimal number")
	}
	*d = decimalText(n.String())
	return nil
}

// ptr is the optional form of a decimal field of a PATCH body.
func (d *decimalText) ptr() *string {
	if d == nil {
		return nil
	}
	s := string(*d)
	return &s
}
