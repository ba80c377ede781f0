package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

func decodeIssue(t *testing.T, body string, v any) (eventstore.FieldIssue, string) {
	t.Helper()
	_, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(body)), v)
	require.Error(t, err, body)
	e := eventstore.AsError(err)
	require.Equal(t, "VALIDATION_ERROR", e.Code, body)
	require.Len(t, e.Details, 1, body)
	return e.Details[0], e.Message
}

// Every request body refuses members its schema does not have, nested
// ones included, and says where, in the wire's terms: never a Go type.
func TestDecodeRefusesUnknownMembersAndNamesThemByPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body, field, issue string
		v                  any
	}{
		{`{"idempotencyKey":"k","amount":"5","ammount":"5"}`, "ammount", unknownMember, &actionRequest{}},
		{`{"amount":"5","stakeholders":[{"partnerUserId":"u"},{"partnerUserID":"u","role":"x"}]}`, "stakeholders[1].role", unknownMember, &actionRequest{}},
		{`{"actions":[{"amount":"5"},{"amount":"5","currencyy":"USD"}]}`, "actions[1].currencyy", unknownMember, &struct {
			Actions []actionRequest `json:"actions"`
		}{}},
		{`{"name":"c","tiers":[{"minAmount":"1","multiplier":"2","bonus":1}]}`, "tiers[0].bonus", unknownMember, &campaignRequest{}},
		{`{"name":"c","splits":[{"stakeholderTypeCode":"A","percent":"x"}]}`, "splits[0].percent", decimalIssue, &campaignRequest{}},
		{`{"amount":{"value":5}}`, "amount", decimalIssue, &actionRequest{}},
		{`{"amount":"5","stakeholders":{"partnerUserId":"u"}}`, "stakeholders", "must be an array", &actionRequest{}},
		{`{"amount":"5","autoCreateUsers":"yes"}`, "autoCreateUsers", "must be a boolean", &actionRequest{}},
		{`{"amount":5,"currency":1}`, "currency", "must be a string", &actionRequest{}},
		{`{"amount":1.5}`, "amount", "must be an integer", &allocationRequest{}},
		{`{"name":"c","startsAt":"tomorrow"}`, "startsAt", "must be an RFC 3339 timestamp", &campaignRequest{}},
		{`[1]`, "body", "must be an object", &actionRequest{}},
		{`{"url":"https://x","eventTypes":"all"}`, "eventTypes", "must be an array", &registerWebhookBody{}},
	}
	for _, c := range cases {
		fi, msg := decodeIssue(t, c.body, c.v)
		require.Equal(t, c.field, fi.Field, c.body)
		require.Equal(t, c.issue, fi.Issue, c.body)
		for _, leak := range []string{"Go ", "httpapi.", "struct", "decimalText", "int64"} {
			require.NotContains(t, msg+fi.Issue, leak, c.body)
		}
	}
}

// Documented aliases and free-form members still decode; so do members
// whose case differs, as they always have.
func TestDecodeKeepsAliasesAndFreeFormMembers(t *testing.T) {
	t.Parallel()
	var u userRequest
	_, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"externalId":"u1","metadata":{"anything":{"deep":[1]}}}`)), &u)
	require.NoError(t, err)
	require.Equal(t, "u1", u.ExternalID)
	var c campaignRequest
	_, err = decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"tokenBudget":5,"splits":[{"stakeholderTypeCode":"A","percentage":"100"}]}`)), &c)
	require.NoError(t, err)
	require.Equal(t, decimalText("100"), c.Splits[0].Percentage)
	var a allocationRequest
	_, err = decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"tokenPoolId":"pool_x","amount":5}`)), &a)
	require.NoError(t, err)
	var act actionRequest
	_, err = decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{"Amount":"5","metadata":{"x":1}}`)), &act)
	require.NoError(t, err)
	require.Equal(t, decimalText("5"), act.Amount)
}

// A body is one JSON value and JSON's white space: anything after it, even
// a stray closing bracket or a Unicode space, is refused with a field issue
// on "body".
func TestBodyRefusesTrailingData(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"amount":"1"} x`, `{"amount":"1"}}`, `{"amount":"1"} ]`, `{"amount":"1"}{}`,
		"{\"amount\":\"1\"}\v", "{\"amount\":\"1\"}\u00a0", "{\"amount\":\"1\"}\u2028"} {
		var in actionRequest
		_, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(body)), &in)
		require.Error(t, err, body)
		require.Equal(t, []eventstore.FieldIssue{{Field: "body", Issue: "trailing data after the JSON value"}}, eventstore.AsError(err).Details, body)
	}
	var in actionRequest
	_, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader("{\"amount\":\"1\"} \n\t")), &in)
	require.NoError(t, err)
}
