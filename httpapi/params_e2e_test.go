package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

type wireError struct {
	StatusCode int                     `json:"statusCode"`
	Code       string                  `json:"code"`
	Message    string                  `json:"message"`
	RequestID  string                  `json:"requestId"`
	Details    []eventstore.FieldIssue `json:"details"`
}

// Hostile bytes in a path or query parameter are the caller's own fault
// (DESIGN promise 9): 400 VALIDATION_ERROR naming the parameter, never a
// 500 from a database that refuses them. An id of a shape the service
// never mints is simply not there: 404 with the resource's code.
func TestMalformedParametersAre400AndImpossibleIdsAre404(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	var wh struct{ ID string }
	require.Equal(t, http.StatusCreated, p.JSON(t, http.MethodPost, "/v1/partner/webhooks",
		map[string]any{"url": srv.URL + "/hook", "receiveAllEvents": true}, &wh))

	long := strings.Repeat("a", 300)
	malformed := []struct{ method, path, field string }{
		{http.MethodGet, "/v1/partner/users/%ff", "externalId"},
		{http.MethodGet, "/v1/partner/users/%ff/balance", "externalId"},
		{http.MethodGet, "/v1/partner/users/%ff/transactions", "externalId"},
		{http.MethodGet, "/v1/partner/users/a%01b", "externalId"},
		{http.MethodGet, "/v1/partner/users/" + long, "externalId"},
		{http.MethodPatch, "/v1/partner/users/%c3%28", "externalId"},
		{http.MethodGet, "/v1/partner/actions/%ff", "id"},
		{http.MethodGet, "/v1/partner/actions/bulk/%ff", "jobId"},
		{http.MethodGet, "/v1/partner/transactions/%ff", "id"},
		{http.MethodGet, "/v1/partner/token-pools/%ff/balance", "id"},
		{http.MethodGet, "/v1/partner/campaigns/%ff", "id"},
		{http.MethodGet, "/v1/partner/campaigns/%ff/analytics", "id"},
		{http.MethodPatch, "/v1/partner/campaigns/%ff", "id"},
		{http.MethodGet, "/v1/partner/dashboard/campaigns/%ff/analytics", "id"},
		{http.MethodGet, "/v1/partner/webhooks/%ff/deliveries", "id"},
		{http.MethodPost, "/v1/partner/webhooks/" + wh.ID + "/deliveries/%ff/retry", "deliveryId"},
		{http.MethodDelete, "/v1/partner/webhooks/%ff", "id"},
		{http.MethodPost, "/v1/partner/actions/%ff/reverse", "actionId"},
		{http.MethodPost, "/v1/partner/webhooks/%ff/test", "id"},
		{http.MethodGet, "/v1/partner/users?search=%ff", "search"},
		{http.MethodGet, "/v1/partner/actions?partnerUserId=%ff", "partnerUserId"},
		{http.MethodGet, "/v1/partner/transactions?partnerUserId=%ff", "partnerUserId"},
		{http.MethodGet, "/v1/partner/transactions?actionId=a%0ab", "actionId"},
	}
	for _, c := range malformed {
		var out wireError
		require.Equal(t, http.StatusBadRequest, p.JSON(t, c.method, c.path, map[string]any{}, &out), "%s %s", c.method, c.path)
		require.Equal(t, "VALIDATION_ERROR", out.Code, "%s %s", c.method, c.path)
		require.NotEmpty(t, out.RequestID)
		require.Equal(t, c.field, out.Details[0].Field, "%s %s", c.method, c.path)
	}
	var out wireError
	require.Equal(t, http.StatusBadRequest, p.Srv.PortalJSON(t, p.Token, http.MethodGet, "/v1/partner/keys/%ff", nil, &out))
	require.Equal(t, "VALIDATION_ERROR", out.Code)
	require.Equal(t, "id", out.Details[0].Field)

	impossible := []struct{ method, path, code string }{
		{http.MethodGet, "/v1/partner/actions/act_nothex", "ACTION_NOT_FOUND"},
		{http.MethodGet, "/v1/partner/actions/txn_0123456789abcdef0123456789abcdef", "ACTION_NOT_FOUND"},
		{http.MethodPost, "/v1/partner/actions/whatever/reverse", "ACTION_NOT_FOUND"},
		{http.MethodGet, "/v1/partner/transactions/TXN_1", "TRANSACTION_NOT_FOUND"},
		{http.MethodGet, "/v1/partner/token-pools/default/balance", "POOL_NOT_FOUND"},
		{http.MethodGet, "/v1/partner/campaigns/cmp_0123456789ABCDEF0123456789ABCDEF", "CAMPAIGN_NOT_FOUND"},
		{http.MethodGet, "/v1/partner/dashboard/campaigns/x/analytics", "CAMPAIGN_NOT_FOUND"},
		{http.MethodDelete, "/v1/partner/webhooks/wh_", "WEBHOOK_NOT_FOUND"},
		{http.MethodGet, "/v1/partner/webhooks/x/deliveries", "WEBHOOK_NOT_FOUND"},
		{http.MethodPost, "/v1/partner/webhooks/" + wh.ID + "/deliveries/whd_x/retry", "DELIVERY_NOT_FOUND"},
		// A well-formed id that does not exist keeps its old answer.
		{http.MethodGet, "/v1/partner/actions/act_0123456789abcdef0123456789abcdef", "ACTION_NOT_FOUND"},
		{http.MethodGet, "/v1/partner/users/nobody", "USER_NOT_FOUND"},
	}
	for _, c := range impossible {
		var out wireError
		require.Equal(t, http.StatusNotFound, p.JSON(t, c.method, c.path, nil, &out), "%s %s", c.method, c.path)
		require.Equal(t, c.code, out.Code, "%s %s", c.method, c.path)
	}
	out = wireError{}
	require.Equal(t, http.StatusNotFound, p.Srv.PortalJSON(t, p.Token, http.MethodGet, "/v1/partner/keys/key_1", nil, &out))
	require.Equal(t, "KEY_NOT_FOUND", out.Code)

	// Printable non-ASCII partner ids are fine.
	require.Equal(t, http.StatusNotFound, p.JSON(t, http.MethodGet, "/v1/partner/users/Zo%C3%AB", nil, &out))
	require.Equal(t, "USER_NOT_FOUND", out.Code)
}
