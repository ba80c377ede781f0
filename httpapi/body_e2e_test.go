package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// A misspelt member is refused, not ignored: "ammount" beside "amount"
// used to complete the action with whatever amount was spelt right.
// Decimals outside the documented pattern are refused too, and neither
// writes anything.
func TestSubmitRefusesUnknownMembersAndOffPatternDecimals(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	before := eventCount(t, srv)
	bodies := map[string]map[string]any{
		"ammount": func() map[string]any {
			b := submitBody("typo-1", "10", "alice")
			b["ammount"] = "1000"
			return b
		}(),
		"stakeholders[0].role": func() map[string]any {
			b := submitBody("typo-2", "10", "alice")
			b["stakeholders"].([]map[string]any)[0]["role"] = "x"
			return b
		}(),
		"amount": submitBody("exp-1", "1e2", "alice"),
	}
	for field, b := range bodies {
		var e wireError
		require.Equal(t, http.StatusBadRequest, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", b, &e), field)
		require.Equal(t, "VALIDATION_ERROR", e.Code, field)
		require.Equal(t, field, e.Details[0].Field)
		require.NotContains(t, e.Message+e.Details[0].Issue, "Go ")
	}
	for _, amount := range []string{`"+5"`, `" 10"`, `"10 "`, `"00010"`, `"1e2"`} {
		b := submitBody("pad", "10", "alice")
		b["amount"] = json.RawMessage(amount)
		var e wireError
		require.Equal(t, http.StatusBadRequest, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", b, &e), amount)
		require.Equal(t, "amount", e.Details[0].Field, amount)
	}
	// A bulk item is a body too.
	var e wireError
	item := submitBody("typo-3", "10", "alice")
	item["tokenpoolid "] = "x"
	require.Equal(t, http.StatusBadRequest, p.JSON(t, http.MethodPost, "/v1/partner/actions/bulk", map[string]any{"actions": []any{item}}, &e))
	require.Equal(t, "actions[0].tokenpoolid ", e.Details[0].Field)
	require.Equal(t, before, eventCount(t, srv), "nothing was written")
}
