package webhooks_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/webhooks"
)

func TestWebhookEndpointsEndToEnd(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, func(c *app.Config) { c.Webhooks = fastOptions() })
	p := srv.NewPartner(t, "sandbox")
	stranger := srv.NewPartner(t, "sandbox")
	rc := newReceiver(t, nil)

	var reg struct {
		ID               string   `json:"id"`
		URL              string   `json:"url"`
		Secret           string   `json:"secret"`
		IsActive         bool     `json:"isActive"`
		EventTypes       []string `json:"eventTypes"`
		ReceiveAllEvents bool     `json:"receiveAllEvents"`
	}
	code := p.JSON(t, http.MethodPost, "/v1/partner/webhooks", map[string]any{
		"url": rc.URL + "/hook", "description": "test", "eventTypes": []string{"action.completed"}, "receiveAllEvents": false,
	}, &reg)
	require.Equal(t, http.StatusCreated, code)
	require.Regexp(t, `^wh_[0-9a-f]{32}$`, reg.ID)
	require.Regexp(t, `^whsec_[0-9a-f]{64}$`, reg.Secret)
	require.True(t, reg.IsActive)
	require.Equal(t, []string{"action.completed"}, reg.EventTypes)
	rc.setSecret(reg.Secret)

	var list struct {
		Data       []map[string]any `json:"data"`
		Pagination struct {
			Total int `json:"total"`
		} `json:"pagination"`
	}
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/webhooks", nil, &list))
	require.Equal(t, 1, list.Pagination.Total)
	require.NotContains(t, list.Data[0], "secret")
	require.Equal(t, http.StatusOK, stranger.JSON(t, http.MethodGet, "/v1/partner/webhooks", nil, &list))
	require.Equal(t, 0, list.Pagination.Total)

	var bad map[string]any
	require.Equal(t, http.StatusBadRequest, p.JSON(t, http.MethodPost, "/v1/partner/webhooks",
		map[string]any{"url": "https://169.254.169.254/latest", "receiveAllEvents": true}, &bad))
	require.Equal(t, "VALIDATION_ERROR", bad["code"])

	var test struct {
		EventID    string `json:"eventId"`
		DeliveryID string `json:"deliveryId"`
	}
	require.Equal(t, http.StatusAccepted, p.JSON(t, http.MethodPost, "/v1/partner/webhooks/"+reg.ID+"/test", nil, &test))
	eventually(t, func() bool { return rc.count() == 1 }, "test webhook delivered")
	got := rc.requests()[0]
	require.True(t, got.Valid)
	require.Equal(t, "webhook.test", got.Env.Type)
	require.Equal(t, test.EventID, got.Env.ID)

	var dl struct {
		Data []webhooks.Delivery `json:"data"`
	}
	eventually(t, func() bool {
		p.JSON(t, http.MethodGet, "/v1/partner/webhooks/"+reg.ID+"/deliveries?page=1&limit=10", nil, &dl)
		return len(dl.Data) == 1 && dl.Data[0].Status == "SUCCEEDED"
	}, "delivery logged")
	require.Equal(t, test.DeliveryID, dl.Data[0].ID)
	require.Len(t, dl.Data[0].Attempts, 1)
	require.Equal(t, 200, *dl.Data[0].Attempts[0].StatusCode)
	require.Equal(t, http.StatusNotFound, stranger.JSON(t, http.MethodGet, "/v1/partner/webhooks/"+reg.ID+"/deliveries", nil, nil))

	require.Equal(t, http.StatusAccepted, p.JSON(t, http.MethodPost, "/v1/partner/webhooks/"+reg.ID+"/deliveries/"+test.DeliveryID+"/retry", nil, nil))
	eventually(t, func() bool { return rc.count() == 2 }, "manual retry delivered")
	require.Equal(t, test.EventID, rc.requests()[1].Env.ID)
	require.Equal(t, http.StatusNotFound, stranger.JSON(t, http.MethodPost, "/v1/partner/webhooks/"+reg.ID+"/deliveries/"+test.DeliveryID+"/retry", nil, nil))

	var health webhooks.Health
	eventually(t, func() bool {
		p.JSON(t, http.MethodGet, "/v1/partner/dashboard/webhooks/health", nil, &health)
		return health.Attempts == 2
	}, "health counts both attempts")
	require.Equal(t, 1.0, *health.SuccessRate)
	require.NotNil(t, health.LastSuccessAt)
	require.WithinDuration(t, time.Now(), *health.LastSuccessAt, time.Hour)

	require.Equal(t, http.StatusNotFound, stranger.JSON(t, http.MethodDelete, "/v1/partner/webhooks/"+reg.ID, nil, nil))
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodDelete, "/v1/partner/webhooks/"+reg.ID, nil, nil))
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/webhooks", nil, &list))
	require.Equal(t, 0, list.Pagination.Total)
	require.Equal(t, http.StatusNotFound, p.JSON(t, http.MethodPost, "/v1/partner/webhooks/"+reg.ID+"/test", nil, nil))
}
