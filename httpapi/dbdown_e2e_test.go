package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
)

// With PostgreSQL unreachable, commands and reads answer 503 with the code
// DATABASE_UNAVAILABLE (not a 500), and work again once it is back.
func TestDatabaseDownIs503WithAClearCode(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.AdminURL())
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(ctx) })
	allow := func(ok bool) {
		_, err := admin.Exec(ctx, `ALTER DATABASE `+srv.DB.Name+` ALLOW_CONNECTIONS `+map[bool]string{true: "true", false: "false"}[ok])
		require.NoError(t, err)
	}
	allow(false)
	t.Cleanup(func() { allow(true) })
	_, err = admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, srv.DB.Name)
	require.NoError(t, err)

	for i, path := range []string{"/v1/partner/actions/submit", "/v1/partner/users"} {
		method, body := http.MethodPost, any(submitBody("down-1", "5", "alice"))
		if i == 1 {
			method, body = http.MethodGet, nil
		}
		// The first request on a connection the server killed may find it
		// dead; every answer is a 503 with the code, never a 500.
		for range 3 {
			var e map[string]any
			code := p.JSON(t, method, path, body, &e)
			require.Equal(t, http.StatusServiceUnavailable, code, "%s %s: %v", method, path, e)
			require.Equal(t, "DATABASE_UNAVAILABLE", e["code"], "%v", e)
		}
	}

	allow(true)
	require.Eventually(t, func() bool {
		var out json.RawMessage
		return p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", submitBody("down-1", "5", "alice"), &out) == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond)
}
