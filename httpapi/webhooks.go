// Webhook subscriptions, their deliveries and health (/v1/partner/webhooks…).

package httpapi

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/projections"
	"github.com/sirgiving/ledger/webhooks"
)

type registerWebhookBody struct {
	URL              string   `json:"url"`
	Description      string   `json:"description"`
	EventTypes       []string `json:"eventTypes"`
	ReceiveAllEvents bool     `json:"receiveAllEvents"`
}

type registeredWebhookBody struct {
	projections.Webhook
	// Secret is shown once, here.
	Secret string `json:"secret"`
}

func (a *api) registerWebhook(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in registerWebhookBody
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	reg, err := a.Ledger.RegisterWebhook(r.Context(), scope, accountsMeta(r), ledger.RegisterWebhook{
		URL: in.URL, Description: in.Description, EventTypes: in.EventTypes, ReceiveAllEvents: in.ReceiveAllEvents,
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The webhook exists now and its secret is shown only in this answer, so
	// answer 201 from the registration even if the read model lags: a 503
	// would lose the secret and make the client register a second webhook.
	if err := projections.WaitPosition(r.Context(), a.DB, reg.Position, a.ReadWait, projections.WebhooksName); err != nil {
		loggerFrom(r.Context()).Warn("webhooks read model lagging after registration", "err", err)
	}
	writeJSON(w, http.StatusCreated, registeredWebhookBody{Webhook: projections.WebhookFromRegistration(reg.Event, reg.RecordedAt), Secret: reg.Secret})
}

func (a *api) listWebhooks(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, err := parsePage(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, total, err := projections.ListWebhooks(r.Context(), a.DB, scope, p.Offset(), p.Limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, list)
}

func (a *api) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	res, err := a.Ledger.DeleteWebhook(r.Context(), scope, accountsMeta(r), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), a.DB, res.Position, a.ReadWait, projections.WebhooksName); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
}

func (a *api) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, err := parsePage(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, total, err := webhooks.ListDeliveries(r.Context(), a.DB, scope, mux.Vars(r)["id"], p.Offset(), p.Limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, list)
}

func (a *api) retryDelivery(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v := mux.Vars(r)
	d, err := webhooks.Retry(r.Context(), a.DB, scope, v["id"], v["deliveryId"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, d)
}

type testWebhookBody struct {
	WebhookID  string `json:"webhookId"`
	EventID    string `json:"eventId"`
	DeliveryID string `json:"deliveryId"`
	Type       string `json:"type"`
	Status     string `json:"status"`
}

func (a *api) testWebhook(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	res, err := a.Ledger.RequestWebhookTest(r.Context(), scope, accountsMeta(r), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), a.DB, res.Position, a.ReadWait, projections.WebhooksName); err != nil {
		writeError(w, r, err)
		return
	}
	evt := projections.WebhookEventID(res.Events[0].ID.String(), "webhook.test", 0)
	writeJSON(w, http.StatusAccepted, testWebhookBody{
		WebhookID: id, EventID: evt, DeliveryID: projections.WebhookDeliveryID(id, evt), Type: "webhook.test", Status: "PENDING",
	})
}

func (a *api) webhookHealth(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	hl, err := webhooks.GetHealth(r.Context(), a.DB, scope, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, hl)
}
