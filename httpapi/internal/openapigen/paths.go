package openapigen

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/sirgiving/ledger/httpapi"
)

// widgetAuth is what every widget operation says about its caller.
const widgetAuth = "For browsers: send only `X-Partner-Key: pk_…` (a secret key is refused with 403 `PUBLISHABLE_KEY_REQUIRED`); answers carry CORS headers for any origin. "

// op describes one operation; summary and auth come from httpapi.Routes()
// so the document cannot drift from the router.
type op struct {
	method, path string // as in endpoints.tsv (":param")
	id, tag      string
	desc         string
	query        []O  // query parameters besides page/limit
	paged        bool // takes page/limit
	body         string
	bodyOptional bool
	status       int    // success status
	result       string // success schema; "" = no body
	errs         map[int]string
	deprecated   bool
	// noSuccess, when set, says why the operation documents no 2xx
	// answer; it is written as x-sir-no-success-response, which the lint
	// test accepts in place of a success response.
	noSuccess string
	extra     func(responses O) O
}

var errText = map[int]string{
	400: "Invalid input: `VALIDATION_ERROR` with `details` naming each field by its JSON path (`stakeholders[0].partnerUserId`), or the path or query parameter (invalid UTF-8, control characters, more than 255 bytes). A body member the schema does not define is refused, not ignored.",
	401: "Missing or invalid credentials. JWT: `MISSING_CREDENTIALS`, `INVALID_TOKEN`. Keys: `MISSING_CREDENTIALS`, `INVALID_KEY` (unknown, deactivated, expired or revoked), `INVALID_SIGNATURE`, `TIMESTAMP_OUT_OF_RANGE`, `REPLAYED_REQUEST`.",
	402: "Payment Required.",
	403: "Authenticated but not allowed: `PARTNER_SUSPENDED`, `SECRET_KEY_REQUIRED` (a `pk_` key on an endpoint needing `sk_`), `PUBLISHABLE_KEY_REQUIRED` (an `sk_` key sent without signature to a Widget endpoint).",
	404: "Not found (or not yours: other partners' and other environments' resources are invisible).",
	409: "Conflict with the resource's current state.",
	413: "`PAYLOAD_TOO_LARGE`: the request body is larger than 1 MiB.",
	422: "Well-formed but cannot be processed.",
	429: "Rate limit exceeded: `RATE_LIMITED`. Wait `Retry-After` seconds.",
	500: "Unexpected server error: `INTERNAL`. The message never carries details; quote the `requestId`.",
	501: "`NOT_IMPLEMENTED`: this endpoint is not available on this server yet.",
	503: "Temporarily unavailable: `READ_MODEL_LAGGING` (reads have not caught up with your last write; retry shortly), `TIMEOUT`, `DATABASE_UNAVAILABLE` (the ledger database cannot be reached; nothing was written, retry shortly).",
}

func pathParamDesc(name string) string {
	switch name {
	case "externalId":
		return "Your id for the user (`partnerUserId`)."
	case "slug":
		return "The nonprofit's slug."
	case "partnerDonationId":
		return "The donation id create-link answered (`don_…`)."
	case "actionId":
		return "Action id (`act_…`)."
	case "jobId":
		return "Former asynchronous bulk job id."
	case "deliveryId":
		return "Delivery id (`whd_…`)."
	}
	return "Resource id."
}

func qInt(name, desc string, min, max, def int) O {
	return obj("name", name, "in", "query", "required", false, "description", desc,
		"schema", obj("type", "integer", "minimum", min, "maximum", max, "default", def))
}

func qStr(name, desc string, schema O) O {
	return obj("name", name, "in", "query", "required", false, "description", desc, "schema", schema)
}

var (
	qFrom = qStr("from", "Only items at or after this instant (RFC 3339).", obj("type", "string", "format", "date-time"))
	qTo   = qStr("to", "Only items before this instant (RFC 3339).", obj("type", "string", "format", "date-time"))
	qDays = qInt("days", "Window: the last N UTC days, today included.", 1, 365, 30)
	qUser = qStr("partnerUserId", "Only this user's items.", obj("type", "string"))
)

func qEnum(name, desc, schemaRef string) O {
	return qStr(name, desc, ref(schemaRef))
}

func operations() []op {
	return []op{
		{method: "POST", path: "/v1/partner/keys", id: "createApiKey", tag: "Partner keys", body: "CreateApiKeyRequest", status: 201, result: "ApiKeyCreated",
			desc: "Issues a key for one environment: a publishable key, a secret key and an HMAC secret. The secret key and HMAC secret are shown in this answer only. The user's first key creates their Partner record (status PENDING_APPROVAL; sandbox works at once)."},
		{method: "GET", path: "/v1/partner/keys", id: "listApiKeys", tag: "Partner keys", paged: true, result: "ApiKeyList",
			desc: "Keys of the signed-in user's partner, both environments; secrets are never included."},
		{method: "GET", path: "/v1/partner/keys/partner-info", id: "getPartnerInfo", tag: "Partner keys", result: "Partner",
			errs: map[int]string{404: "`PARTNER_NOT_FOUND`: the user has no Partner record yet (create a key first)."}},
		{method: "GET", path: "/v1/partner/keys/:id", id: "getApiKey", tag: "Partner keys", result: "ApiKey",
			errs: map[int]string{404: "`KEY_NOT_FOUND`."}},
		{method: "PATCH", path: "/v1/partner/keys/:id", id: "updateApiKey", tag: "Partner keys", body: "UpdateApiKeyRequest", result: "ApiKey",
			desc: "A deactivated or expired key gets 401 `INVALID_KEY` until reactivated or its expiry is moved.",
			errs: map[int]string{404: "`KEY_NOT_FOUND`.", 409: "`KEY_REVOKED`: a deleted key cannot change."}},
		{method: "DELETE", path: "/v1/partner/keys/:id", id: "deleteApiKey", tag: "Partner keys", status: 204,
			desc: "Revokes the key for good: it gets 401 from now on. Its record stays visible with `isActive: false`.",
			errs: map[int]string{404: "`KEY_NOT_FOUND`."}},
		{method: "POST", path: "/v1/partner/auth/login", id: "login", tag: "Partner auth", body: "LoginRequest", status: 200, result: "LoginResponse",
			desc: "Exchanges e-mail and password for a JWT used by the JWT endpoints.",
			errs: map[int]string{
				401: "`INVALID_CREDENTIALS`: unknown e-mail or wrong password (the answer does not say which).",
				429: "`RATE_LIMITED`: too many login attempts. By default an e-mail address gets 10 attempts that do not succeed per 15 minutes (a successful login clears its count) and a client address 60 attempts per minute. Wait `Retry-After` seconds.",
			}},
		{method: "GET", path: "/v1/partner/auth/me", id: "getMe", tag: "Partner auth", result: "Me"},
		{method: "GET", path: "/v1/partner/config", id: "getWidgetConfig", tag: "Widget", result: "WidgetConfig",
			desc: widgetAuth + "The partner's widget configuration, from the accounts read model."},
		{method: "GET", path: "/v1/partner/organizations/:slug", id: "getOrganization", tag: "Widget", result: "Organization",
			desc: widgetAuth + "A nonprofit of the directory (`ledgerctl nonprofits import`; development servers list a set of well-known US nonprofits).",
			errs: map[int]string{404: "`NONPROFIT_NOT_FOUND`."}},
		{method: "POST", path: "/v1/partner/donations/create-link", id: "createDonationLink", tag: "Widget", body: "CreateDonationLinkRequest", status: 201, result: "DonationLink",
			desc: widgetAuth + "Records the donation (PENDING) and opens the provider's checkout. Send the donor's browser to `donationLink`. " +
				"When the provider confirms the payment the donation is COMPLETED, once, and the donor is rewarded as a DONATION action of `amount` (the tip earns nothing; an active campaign's multiplier applies); " +
				"`donation.completed` goes to webhooks. Sandbox keys get the sandbox checkout, served by this server at `/checkout/{id}` (test card 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined), in place of any provider not configured for the sandbox.",
			errs: map[int]string{
				403: "Also `DONATIONS_DISABLED`: the partner's configuration does not offer donations.",
				404: "`NONPROFIT_NOT_FOUND`.",
				422: "`PROVIDER_NOT_CONFIGURED` (the provider takes no payments for this environment on this server), `TIPS_DISABLED`, `PROVIDER_REFUSED` (the provider refused the checkout).",
				503: "Also `PROVIDER_UNAVAILABLE`: the provider could not be reached; nothing was recorded, retry.",
			}},
		{method: "GET", path: "/v1/partner/donations/status/:partnerDonationId", id: "getDonationStatus", tag: "Widget", result: "DonationStatus",
			desc: widgetAuth + "Poll after the donor returns from checkout: the status, and the tokens the donation earned. A donation of another partner or environment is not found.",
			errs: map[int]string{404: "`DONATION_NOT_FOUND`."}},

		{method: "GET", path: "/v1/partner/users", id: "listUsers", tag: "Users", paged: true, result: "EndUserList",
			query: []O{qStr("email", "Only the user with this e-mail.", obj("type", "string", "format", "email"))}},
		{method: "POST", path: "/v1/partner/users", id: "createUser", tag: "Users", body: "CreateUserRequest", status: 201, result: "EndUser",
			errs: map[int]string{409: "`USER_EXISTS`: partnerUserId already used in this environment."}},
		{method: "GET", path: "/v1/partner/users/:externalId", id: "getUser", tag: "Users", result: "EndUser",
			errs: map[int]string{404: "`USER_NOT_FOUND`."}},
		{method: "PATCH", path: "/v1/partner/users/:externalId", id: "updateUser", tag: "Users", body: "UpdateUserRequest", result: "EndUser",
			errs: map[int]string{404: "`USER_NOT_FOUND`."}},
		{method: "GET", path: "/v1/partner/users/:externalId/balance", id: "getUserBalance", tag: "Users", result: "UserBalance",
			errs: map[int]string{404: "`USER_NOT_FOUND`."}},
		{method: "GET", path: "/v1/partner/users/:externalId/transactions", id: "listUserTransactions", tag: "Users", paged: true, result: "TransactionList",
			desc:  "The user's REWARD and REVERSAL transactions, newest first.",
			query: []O{qEnum("type", "Only this type.", "TransactionType"), qFrom, qTo},
			errs:  map[int]string{404: "`USER_NOT_FOUND`."}},

		{method: "POST", path: "/v1/partner/actions/submit", id: "submitAction", tag: "Actions", body: "SubmitActionRequest", status: 200, result: "ActionResult",
			desc: "Records a reward action and distributes tokens from the pool to the stakeholders, once per `idempotencyKey`. " +
				"A repeat with the same key and body answers **409** with the original 200 body byte for byte and `Idempotent-Replayed: true`; " +
				"the same key with a different body is 422 `IDEMPOTENCY_KEY_REUSED`. A key whose action FAILED may be sent again: the action is attempted again. " +
				"Production rewards need an approved partner and an approved production pool.",
			errs: map[int]string{
				402: "`INSUFFICIENT_POOL`: the pool cannot cover the reward; `CAMPAIGN_BUDGET_EXHAUSTED`: the campaign's budget cannot. The action is recorded as FAILED and `action.failed` is sent to webhooks; the same idempotency key may be retried later.",
				403: "Also `PARTNER_NOT_APPROVED`: a production reward before SIR Giving approved the partner.",
				404: "`CAMPAIGN_NOT_FOUND`, `POOL_NOT_FOUND`: an explicit campaignId/tokenPoolId that does not exist in this environment.",
				422: "`IDEMPOTENCY_KEY_REUSED` (same key, different body), `USER_NOT_FOUND` (unknown stakeholder without autoCreateUsers), `CAMPAIGN_NOT_ACTIVE`, `POOL_EXPIRED` (recorded as FAILED).",
			},
			extra: func(r O) O {
				return r.with("409", obj("description", "`IDEMPOTENT`: this idempotency key was already used with this body. The body is the original 200 body, byte for byte.",
					"headers", obj("Idempotent-Replayed", obj("description", "Always `true` on a replay.", "required", true, "schema", obj("type", "string", "const", "true")),
						"X-Request-Id", ref2("headers", "X-Request-Id"),
						"X-RateLimit-Limit", ref2("headers", "X-RateLimit-Limit-Optional"),
						"X-RateLimit-Remaining", ref2("headers", "X-RateLimit-Remaining-Optional"),
						"X-RateLimit-Reset", ref2("headers", "X-RateLimit-Reset-Optional")),
					"content", obj("application/json", obj("schema", ref("ActionResult")))))
			}},
		{method: "GET", path: "/v1/partner/actions", id: "listActions", tag: "Actions", paged: true, result: "ActionList",
			query: []O{qEnum("status", "Only this status.", "ActionStatus"), qStr("actionType", "Only this action type.", obj("type", "string")),
				qUser, qStr("campaignId", "Only actions under this campaign.", obj("type", "string")), qFrom, qTo}},
		{method: "POST", path: "/v1/partner/actions/bulk", id: "submitBulkActions", tag: "Actions", body: "BulkActionsRequest", status: 200, result: "BulkActionsResponse",
			desc: "Up to 100 actions, processed synchronously and independently, in order; the results come back in this answer. Each item follows the rules of a single submit (including idempotency).",
			errs: map[int]string{400: "`TOO_MANY_ACTIONS` (more than 100), or `VALIDATION_ERROR` for a malformed envelope (invalid items are reported per item instead)."}},
		{method: "GET", path: "/v1/partner/actions/bulk/:jobId", id: "getBulkJob", tag: "Actions", result: "", deprecated: true,
			desc:      "**Deprecated.** Bulk actions are processed synchronously and return their result from `POST /v1/partner/actions/bulk`; there are no bulk jobs. Always answers 404 `BULK_JOB_NOT_FOUND`.",
			noSuccess: "Bulk jobs do not exist: POST /v1/partner/actions/bulk answers with the results. Kept, deprecated, so that older integrations get a documented 404 `BULK_JOB_NOT_FOUND` rather than an unknown route.",
			errs:      map[int]string{404: "`BULK_JOB_NOT_FOUND`: always (see the description)."}},
		{method: "GET", path: "/v1/partner/actions/:id", id: "getAction", tag: "Actions", result: "Action",
			errs: map[int]string{404: "`ACTION_NOT_FOUND`."}},
		{method: "POST", path: "/v1/partner/actions/:actionId/reverse", id: "reverseAction", tag: "Actions", body: "ReverseActionRequest", bodyOptional: true, status: 200, result: "Action",
			desc: "Takes the tokens back from the stakeholders, returns them to the pool, and answers with the action in REVERSED state. `action.reversed` is sent to webhooks.",
			errs: map[int]string{404: "`ACTION_NOT_FOUND`.", 409: "`ALREADY_REVERSED`, or `NOT_REVERSIBLE` (the action FAILED)."}},

		{method: "GET", path: "/v1/partner/token-pools", id: "listTokenPools", tag: "Token pools", paged: true, result: "TokenPoolList",
			desc: "Pools of the key's environment. A new partner's sandbox has a provisioned pool."},
		{method: "POST", path: "/v1/partner/token-pools/request", id: "requestAllocation", tag: "Token pools", body: "CreateAllocationRequest", status: 201, result: "AllocationRequest",
			desc: "Files an allocation request. Production requests wait for SIR Giving's approval (status PENDING); sandbox requests are approved at once.",
			errs: map[int]string{404: "`POOL_NOT_FOUND`."}},
		{method: "GET", path: "/v1/partner/token-pools/requests", id: "listAllocationRequests", tag: "Token pools", paged: true, result: "AllocationRequestList",
			query: []O{qStr("status", "Only this status.", obj("type", "string", "enum", []string{"PENDING", "APPROVED", "REJECTED"}))}},
		{method: "GET", path: "/v1/partner/token-pools/:id/balance", id: "getTokenPoolBalance", tag: "Token pools", result: "PoolBalance",
			errs: map[int]string{404: "`POOL_NOT_FOUND`."}},

		{method: "GET", path: "/v1/partner/campaigns", id: "listCampaigns", tag: "Campaigns", paged: true, result: "CampaignList",
			query: []O{qEnum("status", "Only this status.", "CampaignStatus")}},
		{method: "GET", path: "/v1/partner/campaigns/active", id: "getActiveCampaign", tag: "Campaigns", result: "Campaign",
			errs: map[int]string{404: "`NO_ACTIVE_CAMPAIGN`."}},
		{method: "GET", path: "/v1/partner/campaigns/:id", id: "getCampaign", tag: "Campaigns", result: "Campaign",
			errs: map[int]string{404: "`CAMPAIGN_NOT_FOUND`."}},
		{method: "GET", path: "/v1/partner/campaigns/:id/analytics", id: "getCampaignAnalytics", tag: "Campaigns", result: "CampaignAnalytics",
			query: []O{qFrom, qTo},
			errs:  map[int]string{404: "`CAMPAIGN_NOT_FOUND`."}},
		{method: "POST", path: "/v1/partner/campaigns", id: "createCampaign", tag: "Campaigns", body: "CreateCampaignRequest", status: 201, result: "Campaign",
			errs: map[int]string{404: "`POOL_NOT_FOUND`.", 409: "`CAMPAIGN_ALREADY_ACTIVE`: created ACTIVE while another campaign is active."}},
		{method: "PATCH", path: "/v1/partner/campaigns/:id", id: "updateCampaign", tag: "Campaigns", body: "UpdateCampaignRequest", result: "Campaign",
			desc: "A status change sends `campaign.status_changed` to webhooks.",
			errs: map[int]string{404: "`CAMPAIGN_NOT_FOUND`, `POOL_NOT_FOUND`.", 409: "`INVALID_STATUS_TRANSITION`, `CAMPAIGN_ALREADY_ACTIVE`, `CAMPAIGN_ENDED`, `BUDGET_BELOW_USED`."}},

		{method: "GET", path: "/v1/partner/transactions", id: "listTransactions", tag: "Transactions", paged: true, result: "TransactionList",
			query: []O{qEnum("type", "Only this type.", "TransactionType"), qUser, qStr("actionId", "Only this action's transactions.", obj("type", "string")),
				qStr("poolId", "Only this pool's transactions.", obj("type", "string")), qFrom, qTo}},
		{method: "GET", path: "/v1/partner/transactions/:id", id: "getTransaction", tag: "Transactions", result: "Transaction",
			errs: map[int]string{404: "`TRANSACTION_NOT_FOUND`."}},

		{method: "GET", path: "/v1/partner/dashboard/summary", id: "getDashboardSummary", tag: "Dashboard", result: "DashboardSummary"},
		{method: "GET", path: "/v1/partner/dashboard/trends", id: "getDashboardTrends", tag: "Dashboard", result: "DashboardTrends", query: []O{qDays}},
		{method: "GET", path: "/v1/partner/dashboard/top-earners", id: "getTopEarners", tag: "Dashboard", result: "TopEarners",
			query: []O{qInt("limit", "How many users.", 1, 100, 10), qStr("days", "Window: the last N UTC days; omitted = all time.", obj("type", "integer", "minimum", 1, "maximum", 365))}},
		{method: "GET", path: "/v1/partner/dashboard/webhooks/health", id: "getWebhookHealth", tag: "Dashboard", result: "WebhookHealth"},
		{method: "GET", path: "/v1/partner/dashboard/api-usage", id: "getApiUsage", tag: "Dashboard", result: "ApiUsage",
			desc:  "Requests made with this environment's keys: per day, per endpoint (with latency percentiles), per status class and per error code.",
			query: []O{qInt("days", "Window: the last N UTC days, today included.", 1, 90, 7)}},
		{method: "GET", path: "/v1/partner/dashboard/recent-activity", id: "getRecentActivity", tag: "Dashboard", result: "RecentActivity",
			query: []O{qInt("limit", "How many actions.", 1, 100, 20)}},
		{method: "GET", path: "/v1/partner/dashboard/integration-health", id: "getIntegrationHealth", tag: "Dashboard", result: "IntegrationHealth",
			desc: "API error rates, signing failures, keys expiring or never used, webhook health and token pools of this environment, with an overall `status` and its reasons."},
		{method: "GET", path: "/v1/partner/dashboard/campaigns/:id/analytics", id: "getDashboardCampaignAnalytics", tag: "Dashboard", result: "CampaignAnalytics",
			desc:  "The same figures as `GET /v1/partner/campaigns/{id}/analytics`, for the dashboard.",
			query: []O{qFrom, qTo},
			errs:  map[int]string{404: "`CAMPAIGN_NOT_FOUND`."}},

		{method: "POST", path: "/v1/partner/webhooks", id: "createWebhook", tag: "Webhooks", body: "CreateWebhookRequest", status: 201, result: "WebhookCreated",
			desc: "The answer carries `secret` (`whsec_…`) once: keep it to check `X-SIR-Signature`."},
		{method: "GET", path: "/v1/partner/webhooks", id: "listWebhooks", tag: "Webhooks", paged: true, result: "WebhookList"},
		{method: "DELETE", path: "/v1/partner/webhooks/:id", id: "deleteWebhook", tag: "Webhooks", status: 200, result: "WebhookDeleted",
			desc: "Stops all deliveries to the endpoint, pending retries included.",
			errs: map[int]string{404: "`WEBHOOK_NOT_FOUND`."}},
		{method: "GET", path: "/v1/partner/webhooks/:id/deliveries", id: "listWebhookDeliveries", tag: "Webhooks", paged: true, result: "WebhookDeliveryList",
			query: []O{qEnum("status", "Only this status.", "DeliveryStatus"), qEnum("eventType", "Only this event type.", "EventType")},
			errs:  map[int]string{404: "`WEBHOOK_NOT_FOUND`."}},
		{method: "POST", path: "/v1/partner/webhooks/:id/deliveries/:deliveryId/retry", id: "retryWebhookDelivery", tag: "Webhooks", status: 202, result: "WebhookDelivery",
			desc: "Queues one more attempt of the delivery now (same event id and body, fresh timestamp and signature); the answer is the delivery, PENDING.",
			errs: map[int]string{404: "`WEBHOOK_NOT_FOUND`, `DELIVERY_NOT_FOUND`.", 409: "`WEBHOOK_DISABLED`."}},
		{method: "POST", path: "/v1/partner/webhooks/:id/test", id: "testWebhook", tag: "Webhooks", status: 202, result: "WebhookTestQueued",
			desc: "Sends a `webhook.test` event to this endpoint (whatever its eventTypes); the answer names the queued delivery.",
			errs: map[int]string{404: "`WEBHOOK_NOT_FOUND`.", 409: "`WEBHOOK_DISABLED`."}},
	}
}

func ref2(kind, name string) O { return obj("$ref", "#/components/"+kind+"/"+name) }

// OpenAPIPath converts ":param" segments to "{param}".
func OpenAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

func pathParams(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if strings.HasPrefix(s, ":") {
			out = append(out, s[1:])
		}
	}
	return out
}

// securityFor is the security requirement of an auth kind.
func securityFor(k httpapi.AuthKind) []any {
	switch k {
	case httpapi.AuthLogin:
		return []any{}
	case httpapi.AuthJWT:
		return []any{obj("bearerJWT", []string{})}
	case httpapi.AuthWidget:
		return []any{obj("partnerKey", []string{})}
	case httpapi.AuthHMAC:
		return []any{obj("hmacKey", []string{}, "hmacTimestamp", []string{}, "hmacSignature", []string{})}
	case httpapi.AuthHMACSecret:
		return []any{obj("hmacSecretKey", []string{}, "hmacTimestamp", []string{}, "hmacSignature", []string{})}
	}
	panic("unknown auth kind " + string(k))
}

var authNote = map[httpapi.AuthKind]string{
	httpapi.AuthLogin:      "**Auth:** none (e-mail and password in the body).",
	httpapi.AuthJWT:        "**Auth:** JWT — `Authorization: Bearer <accessToken>` from login.",
	httpapi.AuthWidget:     "**Auth:** Widget — `X-Partner-Key: pk_…` only, no signature.",
	httpapi.AuthHMAC:       "**Auth:** HMAC — `X-Partner-Key` (`sk_…`, or a signed `pk_…`), `X-Timestamp`, `X-Signature`.",
	httpapi.AuthHMACSecret: "**Auth:** HMAC, secret key — signed request with an `sk_…` key; a `pk_…` key gets 403.",
}

// responseName names the shared error responses in components.responses.
var responseName = map[int]string{
	400: "BadRequest", 401: "Unauthorized", 402: "PaymentRequired", 403: "Forbidden", 404: "NotFound",
	409: "Conflict", 413: "PayloadTooLarge", 422: "Unprocessable", 429: "TooManyRequests", 500: "InternalError",
	501: "NotImplemented", 503: "Unavailable",
}

// errorResponses returns the shared error responses that used (the $refs
// of the document) names, in status order.
func errorResponses(used map[string]bool) O {
	codes := make([]int, 0, len(responseName))
	for c := range responseName {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	out := O{}
	for _, c := range codes {
		if used["#/components/responses/"+responseName[c]] {
			out = append(out, KV{responseName[c], errorResponse(c, errText[c], true)})
		}
	}
	return out
}

// refsIn returns every "$ref" target found in v, however deep.
func refsIn(v any) map[string]bool {
	refs := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case O:
			for _, kv := range x {
				if s, ok := kv.V.(string); ok && kv.K == "$ref" {
					refs[s] = true
				}
				walk(kv.V)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return refs
}

func errorResponse(status int, text string, authed bool) O {
	h := obj("X-Request-Id", ref2("headers", "X-Request-Id"))
	if authed {
		// Optional: a request rejected before its caller is known has none.
		h = h.with("X-RateLimit-Limit", ref2("headers", "X-RateLimit-Limit-Optional"),
			"X-RateLimit-Remaining", ref2("headers", "X-RateLimit-Remaining-Optional"),
			"X-RateLimit-Reset", ref2("headers", "X-RateLimit-Reset-Optional"))
	}
	if status == 429 {
		h = h.with("Retry-After", ref2("headers", "Retry-After"))
	}
	if status == 503 {
		h = h.with("Retry-After", ref2("headers", "Retry-After-Optional"))
	}
	return obj("description", fmt.Sprintf("%s — %s", http.StatusText(status), text), "headers", h,
		"content", obj("application/json", obj("schema", ref("Error"))))
}

func paths() O {
	routes := map[httpapi.RouteKey]httpapi.Route{}
	for _, r := range httpapi.Routes() {
		routes[r.Key()] = r
	}
	byPath := map[string]O{}
	var order []string
	for _, o := range operations() {
		rt, ok := routes[httpapi.RouteKey{Method: o.method, Path: o.path}]
		if !ok {
			panic("operation without route: " + o.method + " " + o.path)
		}
		p := OpenAPIPath(o.path)
		if _, seen := byPath[p]; !seen {
			order = append(order, p)
			var params []any
			for _, name := range pathParams(o.path) {
				params = append(params, obj("name", name, "in", "path", "required", true, "description", pathParamDesc(name),
					"schema", obj("type", "string", "minLength", 1, "maxLength", 255)))
			}
			byPath[p] = obj("parameters", params)
		}
		byPath[p] = append(byPath[p], KV{strings.ToLower(o.method), operation(o, rt)})
	}
	out := O{}
	for _, p := range order {
		out = append(out, KV{p, byPath[p]})
	}
	return out
}

func operation(o op, rt httpapi.Route) O {
	authed := rt.Auth != httpapi.AuthLogin
	desc := authNote[rt.Auth]
	if o.desc != "" {
		desc = o.desc + "\n\n" + desc
	}
	var params []any
	if o.paged {
		params = append(params, ref2("parameters", "page"), ref2("parameters", "limit"))
	}
	for _, q := range o.query {
		params = append(params, q)
	}
	var body O
	if o.body != "" {
		body = obj("required", !o.bodyOptional, "content", obj("application/json", obj("schema", ref(o.body))))
	}

	status := o.status
	if status == 0 {
		status = 200
	}
	okHeaders := obj("X-Request-Id", ref2("headers", "X-Request-Id"))
	if authed {
		okHeaders = okHeaders.with("X-RateLimit-Limit", ref2("headers", "X-RateLimit-Limit"),
			"X-RateLimit-Remaining", ref2("headers", "X-RateLimit-Remaining"),
			"X-RateLimit-Reset", ref2("headers", "X-RateLimit-Reset"))
	}
	responses := O{}
	if o.result != "" {
		okDesc := "Success."
		if status == 201 {
			okDesc = "Created."
		} else if status == 202 {
			okDesc = "Accepted: queued for delivery."
		}
		responses = append(responses, KV{strconv.Itoa(status), obj("description", okDesc, "headers", okHeaders,
			"content", obj("application/json", obj("schema", ref(o.result))))})
	} else if status == 204 {
		responses = append(responses, KV{"204", obj("description", "Done; no body.", "headers", okHeaders)})
	}

	codes := []int{401, 429, 500, 501, 503}
	if authed {
		codes = append(codes, 403)
	}
	if o.body != "" || o.paged || len(o.query) > 0 || len(pathParams(o.path)) > 0 {
		codes = append(codes, 400)
	}
	// Signed requests are buffered, whatever their method, to hash the body.
	if o.body != "" || rt.Auth == httpapi.AuthHMAC || rt.Auth == httpapi.AuthHMACSecret {
		codes = append(codes, 413)
	}
	for c := range o.errs {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for i, c := range codes {
		if i > 0 && codes[i-1] == c {
			continue
		}
		text := errText[c]
		if _, ok := o.errs[c]; !ok {
			responses = append(responses, KV{strconv.Itoa(c), ref2("responses", responseName[c])})
			continue
		}
		if t, ok := o.errs[c]; ok {
			if c == 400 || (c == 401 && authed) || c == 403 {
				text = text + " " + t
			} else {
				text = t
			}
		}
		responses = append(responses, KV{strconv.Itoa(c), errorResponse(c, text, authed)})
	}
	if o.extra != nil {
		responses = o.extra(responses)
		sort.SliceStable(responses, func(i, j int) bool { return responses[i].K < responses[j].K })
	}

	out := obj("tags", []string{o.tag}, "summary", rt.Purpose, "description", desc, "operationId", o.id)
	if o.deprecated {
		out = out.with("deprecated", true)
	}
	if o.noSuccess != "" {
		out = out.with("x-sir-no-success-response", o.noSuccess)
	}
	out = out.with("x-sir-auth", string(rt.Auth), "security", securityFor(rt.Auth), "parameters", params)
	if body != nil {
		out = out.with("requestBody", body)
	}
	return out.with("responses", responses)
}
