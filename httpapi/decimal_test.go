package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Decimals follow the documented pattern exactly, quoted or not.
func TestDecimalAcceptsExactlyThePattern(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"1e2", "+5", " 10", "10 ", "00010", "-5", "1.", ".5", "1.123456789", "1E2", "0x10", "1234567890123456789", "true", "{}"} {
		wires := []string{`"` + s + `"`}
		if strings.TrimSpace(s) == s { // unquoted, spaces are JSON's own
			wires = append(wires, s)
		}
		for _, wire := range wires {
			var in actionRequest
			body := `{"amount":` + wire + `}`
			_, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(body)), &in)
			require.Error(t, err, wire)
			if json.Valid([]byte(body)) { // +5, .5, 0x10 are not even JSON
				require.Equal(t, []eventstore.FieldIssue{{Field: "amount", Issue: decimalIssue}}, eventstore.AsError(err).Details, wire)
			}
		}
	}
	for _, s := range []string{"0", "10", "49.99", "0.5", "123456789012345678", "1.12345678"} {
		for _, wire := range []string{`"` + s + `"`, s} {
			var in actionRequest
			_, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"amount":`+wire+`}`)), &in)
			require.NoError(t, err, wire)
			require.Equal(t, decimalText(s), in.Amount, wire)
		}
	}
	// An escaped spelling is read as the text it spells; empty and null
	// are absent, left for the domain to require.
	for wire, want := range map[string]decimalText{`"\u0031\u0030.5"`: "10.5", `""`: "", `null`: ""} {
		var in actionRequest
		_, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"amount":`+wire+`}`)), &in)
		require.NoError(t, err, wire)
		require.Equal(t, want, in.Amount, wire)
	}
	var in actionRequest
	_, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"amount":"\u002d5"}`)), &in)
	require.Error(t, err, "an escaped minus is still a sign")
}
