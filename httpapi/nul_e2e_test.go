package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// PostgreSQL text and jsonb refuse the NUL character, so a NUL that
// reached an event would stop every read model copying it, for every
// tenant. It is refused at the door, wherever it hides, and nothing is
// written.
func TestNULIsRefusedEverywhereAndNothingIsWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	head, err := eventstore.ReadHead(ctx, srv.Pool)
	require.NoError(t, err)

	body := func(mutate func(map[string]any)) map[string]any {
		b := submitBody("nul-1", "5", "nul-user")
		mutate(b)
		return b
	}
	cases := map[string]struct {
		method, path string
		body         any
		field        string
	}{
		"idempotency key": {http.MethodPost, "/v1/partner/actions/submit", body(func(b map[string]any) { b["idempotencyKey"] = "k\x00" }), "idempotencyKey"},
		"metadata value": {http.MethodPost, "/v1/partner/actions/submit", body(func(b map[string]any) {
			b["metadata"] = map[string]any{"note": "a\x00b"}
		}), "metadata.note"},
		"metadata key":  {http.MethodPost, "/v1/partner/actions/submit", body(func(b map[string]any) { b["metadata"] = map[string]any{"k\x00": 1} }), "metadata.k\x00"},
		"stakeholder":   {http.MethodPost, "/v1/partner/actions/submit", body(func(b map[string]any) { b["stakeholders"].([]map[string]any)[0]["partnerUserId"] = "u\x00" }), "stakeholders[0].partnerUserId"},
		"user metadata": {http.MethodPost, "/v1/partner/users", map[string]any{"partnerUserId": "nul-2", "metadata": map[string]any{"x": "\x00"}}, "metadata.x"},
	}
	for name, c := range cases {
		var out struct {
			Code    string
			Details []eventstore.FieldIssue
		}
		require.Equal(t, http.StatusBadRequest, p.JSON(t, c.method, c.path, c.body, &out), name)
		require.Equal(t, "VALIDATION_ERROR", out.Code, name)
		require.Equal(t, c.field, out.Details[0].Field, name)
	}
	var out struct{ Code string }
	require.Equal(t, http.StatusBadRequest, p.JSON(t, http.MethodPatch, "/v1/partner/users/a%00b", map[string]any{"metadata": map[string]any{}}, &out))
	require.Equal(t, "VALIDATION_ERROR", out.Code)

	// An escaped backslash followed by u0000 is text, not a NUL.
	b := submitBody("nul-3", "5", "nul-user")
	b["metadata"] = map[string]any{"path": `C:\u0000`}
	raw, err := json.Marshal(b)
	require.NoError(t, err)
	require.Contains(t, string(raw), `\\u0000`)
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", json.RawMessage(raw), nil))

	after, err := eventstore.ReadHead(ctx, srv.Pool)
	require.NoError(t, err)
	evs, err := eventstore.ReadFrom(ctx, srv.Pool, head, 100)
	require.NoError(t, err)
	require.Equal(t, after, head+int64(len(evs)))
	nul := regexp.MustCompile(`(^|[^\\])\\u0000`)
	for _, e := range evs {
		require.False(t, nul.Match(e.Payload), "no event carries a NUL: %s", e.Payload)
	}
	// The read models are alive: the legitimate action is readable.
	var bal struct{ Balance int64 }
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/users/nul-user/balance", nil, &bal))
	require.Equal(t, int64(5), bal.Balance)
}
