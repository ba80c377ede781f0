package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/projections"
)

// frozenReadModels starts a service whose projectors never run (so every
// read model lags every write until catchUp) and gives it a sandbox
// partner, onboarded by hand since the usual flow waits for projectors.
func frozenReadModels(t *testing.T) (*apptest.Server, *apptest.Partner) {
	t.Helper()
	srv := apptest.Start(t, func(c *app.Config) {
		c.DisableBackground = true
		c.ReadWait = 50 * time.Millisecond
	})
	ctx := context.Background()
	email := "lag-" + ledger.NewAccountID("t")[2:14] + "@example.com"
	password := "pw-" + ledger.NewAccountID("p")
	userID, _, err := srv.Ledger.CreatePortalUser(ctx, events.Metadata{Actor: "test"}, email, password)
	require.NoError(t, err)
	catchUp(t, srv, projections.Accounts{})
	p := &apptest.Partner{Srv: srv, Env: "sandbox", UserID: userID, Email: email, Password: password}
	p.Token = srv.Login(t, email, password)
	p.CreateKey(t, "lag")
	catchUp(t, srv, projections.Accounts{})
	return srv, p
}

// catchUp brings the given read models up to the head of the event store
// by hand (a rebuild replays PostgreSQL, not JetStream).
func catchUp(t *testing.T, srv *apptest.Server, ps ...projections.Projection) {
	t.Helper()
	for _, p := range ps {
		_, err := projections.Rebuild(context.Background(), srv.Pool, p, nil)
		require.NoError(t, err)
	}
}

func countEvents(t *testing.T, srv *apptest.Server, typ string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, srv.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE event_type = $1`, typ).Scan(&n))
	return n
}

// A registration that committed answers 201 with its one-time secret even
// when the webhook read model lags: a 503 would lose the secret and make
// the client's retry register a second webhook.
func TestWebhookRegistrationAnswersDespiteLaggingReadModel(t *testing.T) {
	t.Parallel()
	srv, p := frozenReadModels(t)

	resp := p.Do(t, http.MethodPost, "/v1/partner/webhooks", map[string]any{
		"url": srv.URL + "/hook", "description": "lagging", "eventTypes": []string{"action.completed", "action.failed"},
	})
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var created map[string]any
	require.NoError(t, json.Unmarshal(readAll(t, resp), &created))
	require.Regexp(t, `^whsec_[0-9a-f]{64}$`, created["secret"])
	require.Regexp(t, `^wh_[0-9a-f]{32}$`, created["id"])
	require.Equal(t, int64(1), countEvents(t, srv, "webhook.registered"))

	// Once the read model catches up it shows exactly that one webhook, as
	// the 201 described it.
	catchUp(t, srv, projections.NewWebhooks())
	var list struct {
		Data []map[string]any `json:"data"`
	}
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/webhooks", nil, &list))
	require.Len(t, list.Data, 1)
	delete(created, "secret")
	require.Equal(t, created, list.Data[0])
}

// Campaign creation and update answer from the command's result when the
// rewards read model lags, instead of a 503 that invites a duplicate.
func TestCampaignWritesAnswerDespiteLaggingReadModel(t *testing.T) {
	t.Parallel()
	srv, p := frozenReadModels(t)

	var created map[string]any
	require.Equal(t, http.StatusCreated, p.JSON(t, http.MethodPost, "/v1/partner/campaigns", map[string]any{
		"name": "Lagging", "description": "d", "status": "SCHEDULED", "startsAt": "2031-01-01T00:00:00Z", "endsAt": "2031-02-01T00:00:00Z",
		"multiplier": "1.5", "actionTypes": []string{"PURCHASE"}, "budget": 1000,
		"tiers":  []map[string]any{{"minAmount": "100", "multiplier": "2"}},
		"splits": []map[string]any{{"stakeholderTypeCode": "CUSTOMER", "percent": 100}},
	}, &created))
	id, _ := created["id"].(string)
	require.Regexp(t, `^cmp_[0-9a-f]{32}$`, id)
	require.Equal(t, "SCHEDULED", created["status"])
	require.Equal(t, int64(1), countEvents(t, srv, "campaign.created"))

	catchUp(t, srv, projections.Rewards{})
	var got map[string]any
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/campaigns/"+id, nil, &got))
	require.Equal(t, got, created)

	var updated map[string]any
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodPatch, "/v1/partner/campaigns/"+id, map[string]any{
		"name": "Renamed", "status": "ACTIVE",
	}, &updated))
	require.Equal(t, "Renamed", updated["name"])
	require.Equal(t, "ACTIVE", updated["status"])

	catchUp(t, srv, projections.Rewards{})
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/campaigns/"+id, nil, &got))
	require.Equal(t, got, updated)
	var list struct {
		Data []map[string]any `json:"data"`
	}
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/campaigns", nil, &list))
	require.Len(t, list.Data, 1)
}
