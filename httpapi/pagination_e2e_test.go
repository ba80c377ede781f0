package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// A page beyond the bound is a 400 naming the field, never a 500 from an
// overflowing offset or one PostgreSQL refuses.
func TestHugePageIsAValidationError(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	for _, list := range []string{"/v1/partner/webhooks", "/v1/partner/campaigns", "/v1/partner/transactions", "/v1/partner/users"} {
		for _, page := range []string{"99999999999", "9223372036854775807", "100001"} {
			var e struct {
				Code    string `json:"code"`
				Details []struct {
					Field string `json:"field"`
					Issue string `json:"issue"`
				} `json:"details"`
			}
			path := list + "?limit=100&page=" + page
			require.Equal(t, http.StatusBadRequest, p.JSON(t, http.MethodGet, path, nil, &e), path)
			require.Equal(t, "VALIDATION_ERROR", e.Code, path)
			require.Len(t, e.Details, 1, path)
			require.Equal(t, "page", e.Details[0].Field, path)
		}
		// The bound itself is a valid (empty) page.
		var ok struct {
			Data []any `json:"data"`
		}
		require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, list+"?limit=100&page=100000", nil, &ok), list)
		require.Empty(t, ok.Data)
	}
}
