package httpapi

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
	"github.com/sirgiving/ledger/webhooks"
)

// WebhooksDeps are what the webhook endpoints call.
type WebhooksDeps struct {
	Ledger *ledger.Service
	DB     *pgxpool.Pool
	// ReadWait bounds waiting for the webhook read model after a write.
	ReadWait time.Duration
}

// WebhookHandlers implements the webhook endpoints (CONTRACT §6) and the
// webhook health dashboard, all scoped to the principal's partner and
// environment.
func WebhookHandlers(d WebhooksDeps) map[RouteKey]http.HandlerFunc {
	if d.ReadWait <= 0 {
		d.ReadWait = 2 * time.Second
	}
	h := &webhookHandlers{d: d}
	return map[RouteKey]http.HandlerFunc{
		{http.MethodPost, "/v1/partner/webhooks"}:                                  h.register,
		{http.MethodGet, "/v1/partner/webhooks"}:                                   h.list,
		{http.MethodDelete, "/v1/partner/webhooks/:id"}:                            h.delete,
		{http.MethodGet, "/v1/partner/webhooks/:id/deliveries"}:                    h.deliveries,
		{http.MethodPost, "/v1/partner/webhooks/:id/deliveries/:deliveryId/retry"}: h.retry,
		{http.MethodPost, "/v1/partner/webhooks/:id/test"}:                         h.test,
		{http.MethodGet, "/v1/partner/dashboard/webhooks/health"}:                  h.health,
	}
}

type webhookHandlers struct{ d WebhooksDeps }

var errNoTenant = eventstore.Errorf(eventstore.KindUnauthorized, "UNAUTHORIZED", "this endpoint needs an API key")

func tenantOf(r *http.Request) (eventstore.Tenant, error) {
	p, ok := PrincipalFrom(r.Context())
	if !ok || p.PartnerID == "" || p.Environment == "" {
		return eventstore.Tenant{}, errNoTenant
	}
	return eventstore.Tenant{PartnerID: p.PartnerID, Environment: p.Environment}, nil
}

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

func (h *webhookHandlers) register(w http.ResponseWriter, r *http.Request) {
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
	reg, err := h.d.Ledger.RegisterWebhook(r.Context(), scope, accountsMeta(r), ledger.RegisterWebhook{
		URL: in.URL, Description: in.Description, EventTypes: in.EventTypes, ReceiveAllEvents: in.ReceiveAllEvents,
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The webhook exists now and its secret is shown only in this answer, so
	// answer 201 from the registration even if the read model lags: a 503
	// would lose the secret and make the client register a second webhook.
	if err := projections.WaitPosition(r.Context(), h.d.DB, reg.Position, h.d.ReadWait, projections.WebhooksName); err != nil {
		loggerFrom(r.Context()).Warn("webhooks read model lagging after registration", "err", err)
	}
	writeJSON(w, http.StatusCreated, registeredWebhookBody{Webhook: projections.WebhookFromRegistration(reg.Event, reg.RecordedAt), Secret: reg.Secret})
}

func (h *webhookHandlers) list(w http.ResponseWriter, r *http.Request) {
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
	list, total, err := projections.ListWebhooks(r.Context(), h.d.DB, scope, p.Offset(), p.Limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, list)
}

func (h *webhookHandlers) delete(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	res, err := h.d.Ledger.DeleteWebhook(r.Context(), scope, accountsMeta(r), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), h.d.DB, res.Position, h.d.ReadWait, projections.WebhooksName); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
}

func (h *webhookHandlers) deliveries(w http.ResponseWriter, r *http.Request) {
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
	list, total, err := webhooks.ListDeliveries(r.Context(), h.d.DB, scope, mux.Vars(r)["id"], p.Offset(), p.Limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, list)
}

func (h *webhookHandlers) retry(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v := mux.Vars(r)
	d, err := webhooks.Retry(r.Context(), h.d.DB, scope, v["id"], v["deliveryId"])
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

func (h *webhookHandlers) test(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	res, err := h.d.Ledger.RequestWebhookTest(r.Context(), scope, accountsMeta(r), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), h.d.DB, res.Position, h.d.ReadWait, projections.WebhooksName); err != nil {
		writeError(w, r, err)
		return
	}
	evt := projections.WebhookEventID(res.Events[0].ID.String(), "webhook.test", 0)
	writeJSON(w, http.StatusAccepted, testWebhookBody{
		WebhookID: id, EventID: evt, DeliveryID: projections.WebhookDeliveryID(id, evt), Type: "webhook.test", Status: "PENDING",
	})
}

func (h *webhookHandlers) health(w http.ResponseWriter, r *http.Request) {
	scope, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	hl, err := webhooks.GetHealth(r.Context(), h.d.DB, scope, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, hl)
}
