package httpapi

import (
	"net/http"
	"strings"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Route is one endpoint of the contract.
type Route struct {
	Method  string
	Path    string // as in endpoints.tsv, with :params
	Auth    AuthKind
	Purpose string
}

// Key is the route's identity in Deps.Handlers.
func (r Route) Key() RouteKey { return RouteKey{Method: r.Method, Path: r.Path} }

// MuxPath converts :param segments to gorilla/mux {param} syntax.
func (r Route) MuxPath() string {
	parts := strings.Split(r.Path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// Routes is every endpoint of ../shared/spec/endpoints.tsv, in an order
// where a literal segment is registered before a parameter at the same
// place (partner-info before :id, active before :id), since the router
// takes the first match. The route-coverage test checks it against the
// spec file.
func Routes() []Route {
	return []Route{
		{http.MethodPost, "/v1/partner/keys", AuthJWT, "Create an API key pair"},
		{http.MethodGet, "/v1/partner/keys", AuthJWT, "List your API keys"},
		{http.MethodGet, "/v1/partner/keys/partner-info", AuthJWT, "Get your Partner record"},
		{http.MethodGet, "/v1/partner/keys/:id", AuthJWT, "Get one key record"},
		{http.MethodPatch, "/v1/partner/keys/:id", AuthJWT, "Rename, deactivate, or set expiry"},
		{http.MethodDelete, "/v1/partner/keys/:id", AuthJWT, "Delete/revoke a key"},
		{http.MethodPost, "/v1/partner/auth/login", AuthLogin, "Login to partner portal"},
		{http.MethodGet, "/v1/partner/auth/me", AuthJWT, "Get current partner user and publishable key"},
		{http.MethodGet, "/v1/partner/config", AuthWidget, "Get partner widget config"},
		{http.MethodGet, "/v1/partner/organizations/:slug", AuthWidget, "Look up nonprofit details"},
		{http.MethodPost, "/v1/partner/donations/create-link", AuthWidget, "Create a donation checkout link"},
		{http.MethodGet, "/v1/partner/donations/status/:partnerDonationId", AuthWidget, "Check donation reward status"},
		{http.MethodGet, "/v1/partner/users", AuthHMAC, "List partner users"},
		{http.MethodPost, "/v1/partner/users", AuthHMACSecret, "Create a partner user"},
		{http.MethodGet, "/v1/partner/users/:externalId", AuthHMAC, "Get a user by your external ID"},
		{http.MethodPatch, "/v1/partner/users/:externalId", AuthHMACSecret, "Update user metadata"},
		{http.MethodGet, "/v1/partner/users/:externalId/balance", AuthHMAC, "Get user balance"},
		{http.MethodGet, "/v1/partner/users/:externalId/transactions", AuthHMAC, "Get user action history"},
		{http.MethodPost, "/v1/partner/actions/submit", AuthHMACSecret, "Submit one reward action"},
		{http.MethodGet, "/v1/partner/actions", AuthHMAC, "List actions"},
		{http.MethodPost, "/v1/partner/actions/bulk", AuthHMACSecret, "Submit up to 100 actions synchronously"},
		{http.MethodGet, "/v1/partner/actions/bulk/:jobId", AuthHMAC, "Deprecated: bulk results come back from POST /bulk"},
		{http.MethodGet, "/v1/partner/actions/:id", AuthHMAC, "Get action status/details"},
		{http.MethodPost, "/v1/partner/actions/:actionId/reverse", AuthHMACSecret, "Reverse a completed action"},
		{http.MethodGet, "/v1/partner/token-pools", AuthHMAC, "List allocated token pools"},
		{http.MethodPost, "/v1/partner/token-pools/request", AuthHMACSecret, "Request more allocation"},
		{http.MethodGet, "/v1/partner/token-pools/requests", AuthHMAC, "List allocation requests"},
		{http.MethodGet, "/v1/partner/token-pools/:id/balance", AuthHMAC, "Get pool balance"},
		{http.MethodGet, "/v1/partner/campaigns", AuthHMAC, "List campaigns"},
		{http.MethodGet, "/v1/partner/campaigns/active", AuthHMAC, "Get active campaign"},
		{http.MethodGet, "/v1/partner/campaigns/:id", AuthHMAC, "Get campaign details"},
		{http.MethodGet, "/v1/partner/campaigns/:id/analytics", AuthHMAC, "Get campaign analytics"},
		{http.MethodPost, "/v1/partner/campaigns", AuthHMACSecret, "Create campaign"},
		{http.MethodPatch, "/v1/partner/campaigns/:id", AuthHMACSecret, "Update campaign"},
		{http.MethodGet, "/v1/partner/transactions", AuthHMAC, "List partner transactions"},
		{http.MethodGet, "/v1/partner/transactions/:id", AuthHMAC, "Get transaction details"},
		{http.MethodGet, "/v1/partner/dashboard/summary", AuthHMAC, "Pool, activity, and user summary"},
		{http.MethodGet, "/v1/partner/dashboard/trends", AuthHMAC, "Daily activity trends"},
		{http.MethodGet, "/v1/partner/dashboard/top-earners", AuthHMAC, "Top rewarded users"},
		{http.MethodGet, "/v1/partner/dashboard/webhooks/health", AuthHMAC, "Webhook health"},
		{http.MethodGet, "/v1/partner/dashboard/api-usage", AuthHMAC, "API usage metrics"},
		{http.MethodGet, "/v1/partner/dashboard/recent-activity", AuthHMAC, "Recent actions"},
		{http.MethodGet, "/v1/partner/dashboard/integration-health", AuthHMAC, "Integration health"},
		{http.MethodGet, "/v1/partner/dashboard/campaigns/:id/analytics", AuthHMAC, "Campaign performance"},
		{http.MethodPost, "/v1/partner/webhooks", AuthHMACSecret, "Register webhook"},
		{http.MethodGet, "/v1/partner/webhooks", AuthHMAC, "List webhooks"},
		{http.MethodDelete, "/v1/partner/webhooks/:id", AuthHMACSecret, "Delete webhook"},
		{http.MethodGet, "/v1/partner/webhooks/:id/deliveries", AuthHMAC, "List deliveries"},
		{http.MethodPost, "/v1/partner/webhooks/:id/deliveries/:deliveryId/retry", AuthHMACSecret, "Retry delivery"},
		{http.MethodPost, "/v1/partner/webhooks/:id/test", AuthHMACSecret, "Send test webhook"},
	}
}

var (
	errNotFoundRoute    = eventstore.Errorf(eventstore.KindNotFound, "ROUTE_NOT_FOUND", "no such endpoint; see /partner-api for the reference")
	errMethodNotAllowed = &eventstore.Error{Kind: eventstore.KindInvalid, Code: "METHOD_NOT_ALLOWED", Message: "this endpoint does not accept that method"}
)

// notImplemented answers endpoints whose capability is not built yet:
// never a fake success.
func notImplemented(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, eventstore.Errorf(eventstore.KindNotImplemented, "NOT_IMPLEMENTED", "%s %s is not available yet", r.Method, r.URL.Path))
}
