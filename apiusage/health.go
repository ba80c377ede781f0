package apiusage

import (
	"context"
	"fmt"
	"time"

	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
	"github.com/sirgiving/ledger/webhooks"
)

// Overall states of an integration, worst last.
const (
	StatusHealthy  = "HEALTHY"
	StatusDegraded = "DEGRADED"
	StatusFailing  = "FAILING"
)

// Thresholds of the integration-health rules.
const (
	// NoticeHorizon is how far ahead expiring keys and pools are reported.
	NoticeHorizon = 14 * 24 * time.Hour
	// MinRequestsForRate is the request count under which an error rate
	// is too noisy to judge.
	MinRequestsForRate = 10
	// FailingErrorRate and DegradedErrorRate judge the API error rate.
	FailingErrorRate  = 0.5
	DegradedErrorRate = 0.1
	// DegradedWebhookSuccess is the webhook success rate under which the
	// integration is degraded.
	DegradedWebhookSuccess = 0.95
)

// Reason is one finding behind a non-healthy status.
type Reason struct {
	Code     string `json:"code"`
	Severity string `json:"severity"` // DEGRADED or FAILING
	Message  string `json:"message"`
}

// IntegrationHealth is a partner engineer's one-page view of an
// environment's integration: requests, signing, keys, webhooks and pools,
// judged into one status with the reasons for it.
type IntegrationHealth struct {
	Status      string                  `json:"status"`
	Reasons     []Reason                `json:"reasons"`
	Environment string                  `json:"environment"`
	CheckedAt   time.Time               `json:"checkedAt"`
	API         APIHealth               `json:"api"`
	Keys        projections.KeysHealth  `json:"keys"`
	Webhooks    webhooks.Health         `json:"webhooks"`
	Pools       projections.PoolsHealth `json:"pools"`
}

// CheckIntegration gathers the tenant's integration health at now.
// callerKeyID is the key of the request asking: it is evidently in use
// even if its lastUsedAt has not been written yet.
func CheckIntegration(ctx context.Context, q eventstore.Querier, sc eventstore.Tenant, callerKeyID string, now time.Time) (IntegrationHealth, error) {
	h := IntegrationHealth{Environment: sc.Environment, CheckedAt: now.UTC(), Reasons: []Reason{}}
	t := sc
	horizon := now.Add(NoticeHorizon)
	var err error
	if h.API, err = Health(ctx, q, sc, now); err != nil {
		return h, err
	}
	if h.Keys, err = projections.TenantKeysHealth(ctx, q, t, now, horizon, callerKeyID); err != nil {
		return h, err
	}
	if h.Webhooks, err = webhooks.GetHealth(ctx, q, sc, now); err != nil {
		return h, err
	}
	if h.Pools, err = projections.TenantPoolsHealth(ctx, q, t, now, horizon); err != nil {
		return h, err
	}
	h.Reasons = judge(h)
	h.Status = StatusHealthy
	for _, r := range h.Reasons {
		if r.Severity == StatusFailing {
			h.Status = StatusFailing
		} else if h.Status == StatusHealthy {
			h.Status = StatusDegraded
		}
	}
	return h, nil
}

// judge applies the health rules; the order of the reasons is fixed
// (API, signing, keys, webhooks, pools).
func judge(h IntegrationHealth) []Reason {
	out := []Reason{}
	add := func(code, sev, format string, args ...any) {
		out = append(out, Reason{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	pct := func(r *float64) float64 { return *r * 100 }

	lh, ld := h.API.LastHour, h.API.Last24h
	switch {
	case lh.Requests >= MinRequestsForRate && *lh.ErrorRate >= FailingErrorRate:
		add("API_ERROR_RATE_HIGH", StatusFailing, "%.1f%% of the last hour's %d requests failed; see topErrorCodes", pct(lh.ErrorRate), lh.Requests)
	case lh.Requests >= MinRequestsForRate && *lh.ErrorRate >= DegradedErrorRate:
		add("API_ERROR_RATE_ELEVATED", StatusDegraded, "%.1f%% of the last hour's %d requests failed; see topErrorCodes", pct(lh.ErrorRate), lh.Requests)
	case ld.Requests >= MinRequestsForRate && *ld.ErrorRate >= DegradedErrorRate:
		add("API_ERROR_RATE_ELEVATED", StatusDegraded, "%.1f%% of the last 24 h's %d requests failed; see topErrorCodes", pct(ld.ErrorRate), ld.Requests)
	}
	if lh.ServerErrors > 0 {
		add("SERVER_ERRORS", StatusDegraded, "%d requests in the last hour got a 5xx answer; retry them with the same idempotency key", lh.ServerErrors)
	}
	if sf := h.API.SignatureFailures; sf.Total > 0 {
		add("SIGNATURE_FAILURES", StatusDegraded,
			"%d requests in the last 24 h failed request signing (INVALID_SIGNATURE %d, TIMESTAMP_OUT_OF_RANGE %d, REPLAYED_REQUEST %d): check the signed string, your clock and that each request is signed afresh",
			sf.Total, sf.ByCode["INVALID_SIGNATURE"], sf.ByCode["TIMESTAMP_OUT_OF_RANGE"], sf.ByCode["REPLAYED_REQUEST"])
	}
	if n := len(h.Keys.ExpiringSoon); n > 0 {
		add("KEYS_EXPIRING", StatusDegraded, "%d active key(s) expire within 14 days (first: %s at %s); create replacements", n,
			h.Keys.ExpiringSoon[0].ID, h.Keys.ExpiringSoon[0].ExpiresAt.Format(time.RFC3339))
	}
	w := h.Webhooks
	if n := len(w.DisabledEndpoints); n > 0 {
		add("WEBHOOKS_DISABLED", StatusFailing, "%d webhook endpoint(s) were disabled after repeated failures and receive nothing; fix them and register again", n)
	}
	if w.SuccessRate != nil && *w.SuccessRate < DegradedWebhookSuccess {
		add("WEBHOOK_FAILURES", StatusDegraded, "%.1f%% of webhook delivery attempts in the last 24 h succeeded; see failuresByReason", *w.SuccessRate*100)
	}
	if w.FailedDeliveries > 0 {
		add("WEBHOOK_DELIVERIES_FAILED", StatusDegraded, "%d webhook deliveries failed for good; retry them from the delivery log", w.FailedDeliveries)
	}
	p := h.Pools
	if p.Usable == 0 {
		if p.Total == 0 {
			add("NO_TOKEN_POOL", StatusFailing, "no token pool is provisioned in this environment: rewards fail; request an allocation")
		} else {
			add("NO_USABLE_TOKEN_POOL", StatusFailing, "every token pool is depleted or expired: rewards fail with INSUFFICIENT_POOL; request an allocation")
		}
	}
	var low, expiring int
	for _, n := range p.Attention {
		if n.LowBalance && n.Status == "ACTIVE" {
			low++
		}
		if n.ExpiringSoon {
			expiring++
		}
	}
	if low > 0 {
		add("POOL_LOW_BALANCE", StatusDegraded, "%d token pool(s) are under their low-balance threshold; request more allocation", low)
	}
	if expiring > 0 {
		add("POOL_EXPIRING", StatusDegraded, "%d token pool(s) expire within 14 days", expiring)
	}
	return out
}
