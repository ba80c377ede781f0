package openapigen

const infoDescription = `The SIR Giving partner API: reward your users with SIR tokens for purchases, donations and
volunteering, manage token pools and campaigns, and receive webhooks.

Interactive reference: ` + "`/partner-api`" + `; this document: ` + "`/partner-api/openapi.json`" + `.

## Environments

Two environments, chosen by the key: ` + "`sandbox`" + ` keys are ` + "`pk_test_…`/`sk_test_…`" + `, ` + "`production`" + ` keys are
` + "`pk_live_…`/`sk_live_…`" + `. Every resource (users, actions, pools, campaigns, webhooks, transactions) belongs to
one partner and one environment; a sandbox key never sees or moves production data, and another
environment's resource answers 404. Sandbox works for a new partner at once, with a provisioned
sandbox pool; production rewards need an approved partner and an approved production pool.

## Keys

` + "`POST /v1/partner/keys`" + ` (JWT) returns three secrets: a publishable key ` + "`pk_…`" + ` (browser-safe), a secret key
` + "`sk_…`" + ` (backend only) and an ` + "`hmacSecret`" + ` that signs requests. Key bodies are the prefix plus 64 lowercase hex
characters; ` + "`hmacSecret`" + ` is 64 lowercase hex characters. The secret key and the ` + "`hmacSecret`" + ` are shown once,
at creation, and never again.

## Authentication

| kind | headers | notes |
|---|---|---|
| JWT | ` + "`Authorization: Bearer <token>`" + ` | portal user token from ` + "`POST /v1/partner/auth/login`" + ` |
| Widget | ` + "`X-Partner-Key: pk_…`" + ` | no signature; browser use; a secret key here is refused with 403 |
| HMAC | ` + "`X-Partner-Key`, `X-Timestamp`, `X-Signature`" + ` | key may be ` + "`sk_…`" + ` or a signed ` + "`pk_…`" + ` |
| HMAC, secret key | same | a ` + "`pk_…`" + ` key gets **403** |

Each operation states its kind in its description and in the extension ` + "`x-sir-auth`" + `.

### Request signing (HMAC)

` + "```" + `
bodyHash      = lowercase hex of SHA-256 over the raw request body bytes (empty body: hash of "")
signedPayload = X-Timestamp + METHOD + pathWithQuery + bodyHash      -- plain concatenation
X-Signature   = lowercase hex of HMAC-SHA256(key = hmacSecret, message = signedPayload)
` + "```" + `

- ` + "`X-Timestamp`" + ` is Unix time in seconds, as a decimal string; it must be within ±300 s of the server clock.
- ` + "`METHOD`" + ` is upper case; ` + "`pathWithQuery`" + ` is the path and raw query string exactly as sent (no scheme, no host,
  no re-ordering).
- The HMAC key is the ` + "`hmacSecret`" + ` string's own bytes (its 64 ASCII characters), not the bytes its hex decodes to.
- Comparison is constant-time. A signature that was already accepted is refused if it is presented again
  inside the window (replay).
- Missing or wrong credentials, bad signature, stale timestamp or replay → 401, with a ` + "`code`" + ` that says which
  (` + "`MISSING_CREDENTIALS`, `INVALID_KEY`, `INVALID_SIGNATURE`, `TIMESTAMP_OUT_OF_RANGE`, `REPLAYED_REQUEST`" + `).

Example: ` + "`X-Timestamp: 1767225600`" + `, ` + "`GET /v1/partner/users?page=2`" + `, empty body →
signedPayload = ` + "`1767225600GET/v1/partner/users?page=2e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`" + `.

## Errors

Every non-2xx answer has the body ` + "`Error`" + `:
` + "`{\"statusCode\": 402, \"code\": \"INSUFFICIENT_POOL\", \"error\": \"Payment Required\", \"message\": \"…\", \"requestId\": \"req_…\"}`" + `;
validation errors (400, code ` + "`VALIDATION_ERROR`" + `) add ` + "`\"details\": [{\"field\": \"amount\", \"issue\": \"…\"}]`" + `.
Branch on ` + "`code`" + `, never on ` + "`message`" + `. Every operation may answer 501 ` + "`NOT_IMPLEMENTED`" + ` where a server does not offer
it yet, 503 while the service is briefly unable to answer, and 500 on an unexpected failure.

## Donations and the embeddable button

A partner page holding only its publishable key calls the Widget operations: ` + "`GET /v1/partner/organizations/{slug}`" + `,
` + "`POST /v1/partner/donations/create-link`" + ` (amounts in integer cents), then sends the donor to ` + "`donationLink`" + ` and polls
` + "`GET /v1/partner/donations/status/{partnerDonationId}`" + ` when the donor comes back (or listens for ` + "`donation.completed`" + `).
A completed donation rewards the donor once, as a DONATION action of the amount without the tip.

` + "`GET /widget.js`" + ` is a script that does all of it on a page:
` + "`<script src=\"https://API_HOST/widget.js\" data-partner-key=\"pk_…\" data-nonprofit=\"american-red-cross\" data-amount=\"2500\" data-provider=\"stripe\" async></script>`" + `.
It loads nothing else and writes no inline script or style: a page's Content-Security-Policy needs only this origin in
` + "`script-src`" + ` and ` + "`connect-src`" + `. With sandbox keys, checkout is this server's test page ` + "`/checkout/{id}`" + `.
Providers notify this server at ` + "`POST /providers/stripe/webhook`" + ` (Stripe-Signature verified) and
` + "`POST /providers/every.org/webhook`" + `; those are for the providers, not for partners.

## Rate limits and request ids

Every authenticated response carries ` + "`X-RateLimit-Limit`" + ` (requests per minute for your tier),
` + "`X-RateLimit-Remaining`" + ` and ` + "`X-RateLimit-Reset`" + ` (Unix seconds when the window resets). Over the limit: 429
` + "`RATE_LIMITED`" + ` with ` + "`Retry-After`" + ` (seconds). Every response carries ` + "`X-Request-Id`" + ` (` + "`req_…`" + `), also found as
` + "`requestId`" + ` in error bodies.

## Pagination

Lists take ` + "`page`" + ` (from 1, default 1) and ` + "`limit`" + ` (default 20, max 100) and answer
` + "`{\"data\": [...], \"pagination\": {\"page\", \"limit\", \"total\", \"hasMore\"}}`" + `. A page past the end has empty ` + "`data`" + `.

## Money and tokens

Action amounts are decimals in major units with a currency (` + "`\"49.99\"`, `\"USD\"`" + `): send them as strings (exact) or
JSON numbers; responses always use strings. Donation-link money is integer cents (` + "`2500`" + `). Tokens are always whole
integers. Without a campaign one currency unit earns one token, rounded half up (` + "`49.99 USD → 50`" + `); several
stakeholders share a reward so that the parts add up exactly to the whole.

## Idempotency

` + "`idempotencyKey`" + ` is per partner and environment. Repeating a submit with the same key answers **409** with the
original 200 body, byte for byte, and ` + "`Idempotent-Replayed: true`" + `; the same key with a different body is 422
` + "`IDEMPOTENCY_KEY_REUSED`" + `. A key whose action FAILED may be sent again, and the action is attempted again.

## Reading your writes

After a 2xx on a write, your next read reflects it. In the rare case the read models are still behind after a short
wait, the read answers 503 ` + "`READ_MODEL_LAGGING`" + `: retry.

## Conventions

JSON field names are camelCase; timestamps are RFC 3339 in UTC; ids are prefixed (` + "`act_`, `txn_`, `pool_`, `cmp_`, `wh_`, …" + `
plus 32 lowercase hex). Fields documented as nullable may also be omitted. Request bodies refuse unknown members.`

// license states the terms the API is offered under. The document is
// SIR Giving's own, published to partners under their partner agreement,
// not an open-source work, so it names that rather than an SPDX licence.
var license = obj("name", "Proprietary: use under the SIR Giving partner agreement", "url", "https://sirgiving.org")

func build() O {
	ps := paths()
	return obj(
		"openapi", "3.1.0",
		"info", obj(
			"title", "SIR Giving Partner API",
			"version", "1.0.0",
			"summary", "Reward users with SIR tokens; manage pools, campaigns and webhooks.",
			"description", infoDescription,
			"contact", obj("name", "SIR Giving partner support", "url", "https://sirgiving.org"),
			"license", license,
		),
		"servers", []any{
			obj("url", "https://devapi.sirgiving.org", "description", "Sandbox"),
			obj("url", "https://api.sirgiving.org", "description", "Production"),
		},
		"tags", []any{
			obj("name", "Partner keys", "description", "Signed-in portal users managing their own partner credentials (JWT)."),
			obj("name", "Partner auth", "description", "Partner portal sign-in."),
			obj("name", "Widget", "description", "Browser-safe endpoints for the embeddable widget (publishable key)."),
			obj("name", "Users", "description", "Your end users, known by your own id (`partnerUserId`)."),
			obj("name", "Actions", "description", "Reward actions: submit, bulk, inspect, reverse."),
			obj("name", "Token pools", "description", "Pre-allocated tokens that rewards are drawn from."),
			obj("name", "Campaigns", "description", "Multipliers, tiers, splits, schedule and budget."),
			obj("name", "Transactions", "description", "Every token movement."),
			obj("name", "Dashboard", "description", "Aggregates for the partner dashboard."),
			obj("name", "Webhooks", "description", "Endpoints receiving signed event POSTs (see the top-level `webhooks` for payloads)."),
		},
		"paths", ps,
		"webhooks", webhooks(),
		"components", obj(
			"schemas", schemas(),
			"parameters", obj(
				"page", obj("name", "page", "in", "query", "required", false, "description", "Page number, from 1.",
					"schema", obj("type", "integer", "minimum", 1, "maximum", 100000, "default", 1)),
				"limit", obj("name", "limit", "in", "query", "required", false, "description", "Page size.",
					"schema", obj("type", "integer", "minimum", 1, "maximum", 100, "default", 20)),
			),
			"headers", headers(),
			// Only the shared responses some operation refers to: an unused
			// component is noise to readers and a lint warning.
			"responses", errorResponses(refsIn(ps)),
			"securitySchemes", obj(
				"bearerJWT", obj("type", "http", "scheme", "bearer", "bearerFormat", "JWT",
					"description", "Portal user token from `POST /v1/partner/auth/login`: `Authorization: Bearer <accessToken>`."),
				"partnerKey", obj("type", "apiKey", "in", "header", "name", "X-Partner-Key",
					"description", "Widget endpoints: a publishable key `pk_test_…`/`pk_live_…`, no signature. A secret key here is refused with 403."),
				"hmacKey", obj("type", "apiKey", "in", "header", "name", "X-Partner-Key",
					"description", "HMAC endpoints: `sk_…`, or a `pk_…` key, with `X-Timestamp` and `X-Signature` (see Request signing in the description)."),
				"hmacSecretKey", obj("type", "apiKey", "in", "header", "name", "X-Partner-Key",
					"description", "HMAC, secret key endpoints: a secret key `sk_test_…`/`sk_live_…` (a `pk_…` key gets 403), with `X-Timestamp` and `X-Signature`."),
				"hmacTimestamp", obj("type", "apiKey", "in", "header", "name", "X-Timestamp",
					"description", "Unix time in seconds, as a decimal string, within ±300 s of the server clock."),
				"hmacSignature", obj("type", "apiKey", "in", "header", "name", "X-Signature",
					"description", "lowercase hex of HMAC-SHA256(key = hmacSecret, message = X-Timestamp + METHOD + pathWithQuery + bodyHash), bodyHash = lowercase hex of SHA-256 over the raw request body bytes (empty body: hash of \"\"). The key is the hmacSecret string's own 64 ASCII bytes."),
			),
		),
	)
}

func headers() O {
	intHeader := func(desc string, required bool) O {
		return obj("description", desc, "required", required, "schema", obj("type", "integer", "minimum", 0))
	}
	const (
		lim = "Requests allowed per minute for your tier."
		rem = "Requests left in the current window."
		rst = "Unix time (seconds) when the window resets."
	)
	return obj(
		"X-Request-Id", obj("description", "This request's id (`req_…`); quote it to support.", "required", true,
			"schema", obj("type", "string", "pattern", "^req_[0-9a-f]+$")),
		"X-RateLimit-Limit", intHeader(lim, true),
		"X-RateLimit-Remaining", intHeader(rem, true),
		"X-RateLimit-Reset", intHeader(rst, true),
		"X-RateLimit-Limit-Optional", intHeader(lim+" Present when the caller was identified.", false),
		"X-RateLimit-Remaining-Optional", intHeader(rem+" Present when the caller was identified.", false),
		"X-RateLimit-Reset-Optional", intHeader(rst+" Present when the caller was identified.", false),
		"Retry-After", intHeader("Seconds to wait before retrying.", true),
		"Retry-After-Optional", intHeader("Seconds to wait before retrying, when known.", false),
	)
}

func webhooks() O {
	hdr := func(name, desc string, schema O) O {
		return obj("name", name, "in", "header", "required", true, "description", desc, "schema", schema)
	}
	params := []any{
		hdr("Content-Type", "Always `application/json`.", obj("type", "string", "const", "application/json")),
		hdr("User-Agent", "Always `SIRGiving-Webhooks/1.0`.", obj("type", "string", "const", "SIRGiving-Webhooks/1.0")),
		hdr("X-SIR-Timestamp", "Unix time in seconds of this attempt, as a decimal string.", obj("type", "string", "pattern", "^[0-9]+$")),
		hdr("X-SIR-Signature", "`sha256=` + lowercase hex HMAC-SHA256(key = the whole secret string, `whsec_` prefix included, message = X-SIR-Timestamp + \".\" + raw body).",
			obj("type", "string", "pattern", "^sha256=[0-9a-f]{64}$")),
	}
	const rules = "\n\nDelivery: a JSON POST with the headers below. Verify `X-SIR-Signature` = `sha256=` + lowercase hex of " +
		"HMAC-SHA256(key = the webhook's whole `secret` string including the `whsec_` prefix, message = `X-SIR-Timestamp` + \".\" + raw body), " +
		"compare in constant time, and reject stale timestamps. Answer 2xx within 10 s; anything else is retried with backoff for about a day, " +
		"each attempt recorded in the delivery log. Retries reuse the event `id`: drop duplicates by it."
	one := func(typ, summary, dataRef string) O {
		body := obj("allOf", []any{ref("WebhookEvent"), obj("type", "object",
			"properties", obj("type", obj("const", typ), "data", ref(dataRef)))})
		return obj("post", obj(
			"summary", summary,
			"description", "Sent as `type: \""+typ+"\"`."+rules,
			"operationId", "webhook_"+typ,
			"tags", []string{"Webhooks"},
			"parameters", params,
			"requestBody", obj("required", true, "content", obj("application/json", obj("schema", body))),
			// Explicitly none of the API's schemes: we call the partner, who
			// authenticates the call by X-SIR-Signature (a parameter above),
			// not by any credential of ours.
			"security", []any{},
			"responses", obj("2XX", obj("description", "Received. Any 2xx within 10 s counts as delivered.")),
		))
	}
	return obj(
		"action.completed", one("action.completed", "An action was rewarded.", "ActionEventData"),
		"action.failed", one("action.failed", "An action was recorded as FAILED (e.g. INSUFFICIENT_POOL).", "ActionEventData"),
		"action.reversed", one("action.reversed", "An action was reversed.", "ActionEventData"),
		"transaction.completed", one("transaction.completed", "A token movement was recorded.", "Transaction"),
		"token_pool.low_balance", one("token_pool.low_balance", "A pool's available tokens fell below its threshold.", "LowBalanceEventData"),
		"campaign.status_changed", one("campaign.status_changed", "A campaign changed status.", "CampaignStatusEventData"),
		"webhook.test", one("webhook.test", "Sent by POST /v1/partner/webhooks/{id}/test.", "TestEventData"),
		"donation.completed", one("donation.completed", "A donation was paid (the provider confirmed it) and its donor rewarded; sent once however often the provider repeats itself.", "DonationEventData"),
		"donation.failed", one("donation.failed", "The provider refused a donation's payment.", "DonationEventData"),
		"donation.refunded", one("donation.refunded", "A completed donation was paid back; its reward was reversed.", "DonationEventData"),
	)
}
