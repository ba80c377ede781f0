package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/apptest"
)

func TestNewPartnerHelperEndToEnd(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	for _, env := range []string{"sandbox", "production"} {
		p := srv.NewPartner(t, env)
		require.Regexp(t, `^ptr_[0-9a-f]{32}$`, p.PartnerID)
		var body map[string]any
		code := p.JSON(t, http.MethodGet, "/v1/partner/users?page=1&limit=5", nil, &body)
		require.Equal(t, http.StatusNotImplemented, code, body)
		require.Equal(t, "NOT_IMPLEMENTED", body["code"])
		code = p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", map[string]any{"amount": "1.00"}, &body)
		require.Equal(t, http.StatusNotImplemented, code, body)
	}
}
