package httpapi

import (
	"net/http"
	"time"

	"github.com/sirgiving/ledger/apiusage"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// UsageDeps are what the API-usage and integration-health dashboards read.
type UsageDeps struct {
	DB eventstore.Querier
	// ReadWait bounds waiting for the read models to reflect the tenant's
	// last write (integration health reads pools and webhooks).
	ReadWait time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// UsageHandlers implements GET /v1/partner/dashboard/api-usage and
// GET /v1/partner/dashboard/integration-health, scoped to the principal's
// partner and environment.
func UsageHandlers(d UsageDeps) map[RouteKey]http.HandlerFunc {
	if d.ReadWait <= 0 {
		d.ReadWait = 2 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &usageAPI{d}
	return map[RouteKey]http.HandlerFunc{
		{http.MethodGet, "/v1/partner/dashboard/api-usage"}:          h.apiUsage,
		{http.MethodGet, "/v1/partner/dashboard/integration-health"}: h.integrationHealth,
	}
}

type usageAPI struct{ UsageDeps }

func (h *usageAPI) apiUsage(w http.ResponseWriter, r *http.Request) {
	days, err := intParam(r, "days", 1, 90, 7)
	if err != nil {
		writeError(w, r, err)
		return
	}
	sc, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rep, err := apiusage.Usage(r.Context(), h.DB, sc, days, h.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (h *usageAPI) integrationHealth(w http.ResponseWriter, r *http.Request) {
	sc, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t := sc
	if err := projections.WaitTenant(r.Context(), h.DB, t, h.ReadWait, projections.RewardsName, projections.WebhooksName); err != nil {
		writeError(w, r, err)
		return
	}
	var keyID string
	if p, ok := PrincipalFrom(r.Context()); ok {
		keyID = p.KeyID
	}
	ih, err := apiusage.CheckIntegration(r.Context(), h.DB, sc, keyID, h.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ih)
}
