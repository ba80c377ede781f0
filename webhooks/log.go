package webhooks

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// Attempt is one entry of a delivery's log.
type Attempt struct {
	Attempt      int       `json:"attempt"`
	AttemptedAt  time.Time `json:"attemptedAt"`
	Success      bool      `json:"success"`
	StatusCode   *int      `json:"statusCode"`
	LatencyMs    int       `json:"latencyMs"`
	Reason       string    `json:"reason,omitempty"`
	Error        string    `json:"error,omitempty"`
	ResponseBody string    `json:"responseBody"`
}

// Delivery is one webhook envelope's delivery to one subscription.
type Delivery struct {
	ID            string     `json:"id"`
	WebhookID     string     `json:"webhookId"`
	EventID       string     `json:"eventId"`
	EventType     string     `json:"eventType"`
	Status        string     `json:"status"` // PENDING, SUCCEEDED or FAILED
	AttemptCount  int        `json:"attemptCount"`
	CreatedAt     time.Time  `json:"createdAt"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
	LastAttemptAt *time.Time `json:"lastAttemptAt"`
	CompletedAt   *time.Time `json:"completedAt"`
	LastError     string     `json:"lastError,omitempty"`
	Attempts      []Attempt  `json:"attempts"`
}

// ErrDeliveryNotFound is returned for a delivery that is not the webhook's.
var ErrDeliveryNotFound = eventstore.Errorf(eventstore.KindNotFound, "DELIVERY_NOT_FOUND", "no such delivery for this webhook")

const deliveryColumns = `id, subscription_id, event_id, event_type, status, attempts, created_at,
	CASE WHEN status = 'PENDING' THEN greatest(next_attempt_at, coalesce(lease_until, next_attempt_at)) END,
	last_attempt_at, completed_at, coalesce(last_error, '')`

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func scanDelivery(row pgx.CollectableRow) (Delivery, error) {
	var d Delivery
	err := row.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Status, &d.AttemptCount, &d.CreatedAt,
		&d.NextAttemptAt, &d.LastAttemptAt, &d.CompletedAt, &d.LastError)
	d.CreatedAt = d.CreatedAt.UTC()
	d.NextAttemptAt, d.LastAttemptAt, d.CompletedAt = utc(d.NextAttemptAt), utc(d.LastAttemptAt), utc(d.CompletedAt)
	d.Attempts = []Attempt{}
	return d, err
}

// ListDeliveries returns scope's webhook's deliveries, newest first, each
// with its attempts, and their total.
func ListDeliveries(ctx context.Context, q eventstore.Querier, scope eventstore.Tenant, webhookID string, offset, limit int) ([]Delivery, int64, error) {
	if _, err := projections.GetWebhook(ctx, q, scope, webhookID); err != nil {
		return nil, 0, err
	}
	var total int64
	if err := q.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND partner_id = $2 AND environment = $3`,
		webhookID, scope.PartnerID, scope.Environment).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE subscription_id = $1 AND partner_id = $2 AND environment = $3
		ORDER BY source_position DESC, event_id LIMIT $4 OFFSET $5`, webhookID, scope.PartnerID, scope.Environment, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil || len(out) == 0 {
		return out, total, err
	}
	if err := attachAttempts(ctx, q, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

func attachAttempts(ctx context.Context, q eventstore.Querier, ds []Delivery) error {
	ids := make([]string, len(ds))
	at := map[string]int{}
	for i, d := range ds {
		ids[i], at[d.ID] = d.ID, i
	}
	rows, err := q.Query(ctx, `SELECT delivery_id, attempt, attempted_at, success, status_code, latency_ms,
		coalesce(reason, ''), coalesce(error, ''), coalesce(response_body, '')
		FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a Attempt
		if err := rows.Scan(&id, &a.Attempt, &a.AttemptedAt, &a.Success, &a.StatusCode, &a.LatencyMs, &a.Reason, &a.Error, &a.ResponseBody); err != nil {
			return err
		}
		a.AttemptedAt = a.AttemptedAt.UTC()
		ds[at[id]].Attempts = append(ds[at[id]].Attempts, a)
	}
	return rows.Err()
}

// GetDelivery returns one of scope's webhook's deliveries with its attempts.
func GetDelivery(ctx context.Context, q eventstore.Querier, scope eventstore.Tenant, webhookID, deliveryID string) (Delivery, error) {
	rows, err := q.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE id = $1 AND subscription_id = $2 AND partner_id = $3 AND environment = $4`, deliveryID, webhookID, scope.PartnerID, scope.Environment)
	if err != nil {
		return Delivery{}, err
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
	if errors.Is(err, pgx.ErrNoRows) {
		return Delivery{}, ErrDeliveryNotFound
	}
	if err != nil {
		return Delivery{}, err
	}
	ds := []Delivery{d}
	err = attachAttempts(ctx, q, ds)
	return ds[0], err
}

// Retry schedules one of scope's webhook's deliveries for an attempt now,
// whatever its state (a FAILED delivery gets one more attempt). A
// delivery being attempted right now is left to that attempt.
func Retry(ctx context.Context, pool *pgxpool.Pool, scope eventstore.Tenant, webhookID, deliveryID string) (Delivery, error) {
	w, err := projections.GetWebhook(ctx, pool, scope, webhookID)
	if err != nil {
		return Delivery{}, err
	}
	if !w.IsActive {
		return Delivery{}, eventstore.Errorf(eventstore.KindConflict, "WEBHOOK_DISABLED", "this webhook was disabled after failing repeatedly; register it again")
	}
	// The database's clock, as for leases (see Dispatcher.claim).
	tag, err := pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'PENDING', next_attempt_at = statement_timestamp(), completed_at = NULL
		WHERE id = $1 AND subscription_id = $2 AND partner_id = $3 AND environment = $4
		  AND (lease_until IS NULL OR lease_until <= statement_timestamp())`,
		deliveryID, webhookID, scope.PartnerID, scope.Environment)
	if err != nil {
		return Delivery{}, err
	}
	if tag.RowsAffected() > 0 {
		_, _ = pool.Exec(ctx, `SELECT pg_notify($1, '')`, projections.WebhookNotifyChannel)
	}
	return GetDelivery(ctx, pool, scope, webhookID, deliveryID)
}

// Latency is a pair of latency percentiles in milliseconds.
type Latency struct {
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
}

// DisabledEndpoint is a webhook the dispatcher disabled.
type DisabledEndpoint struct {
	ID         string    `json:"id"`
	URL        string    `json:"url"`
	DisabledAt time.Time `json:"disabledAt"`
	Reason     string    `json:"reason"`
}

// Health summarises a tenant's webhook deliveries over a recent window.
type Health struct {
	Window            string             `json:"window"`
	Since             time.Time          `json:"since"`
	Attempts          int64              `json:"attempts"`
	Successes         int64              `json:"successes"`
	Failures          int64              `json:"failures"`
	SuccessRate       *float64           `json:"successRate"` // 0..1, null without attempts
	LatencyMs         Latency            `json:"latencyMs"`
	FailuresByReason  map[string]int64   `json:"failuresByReason"`
	LastSuccessAt     *time.Time         `json:"lastSuccessAt"`
	PendingDeliveries int64              `json:"pendingDeliveries"`
	FailedDeliveries  int64              `json:"failedDeliveries"`
	DisabledEndpoints []DisabledEndpoint `json:"disabledEndpoints"`
}

// HealthWindow is the period Health covers.
const HealthWindow = 24 * time.Hour

// GetHealth reports scope's webhook health over the last HealthWindow.
func GetHealth(ctx context.Context, q eventstore.Querier, scope eventstore.Tenant, now time.Time) (Health, error) {
	since := now.Add(-HealthWindow).UTC()
	h := Health{Window: "24h", Since: since, FailuresByReason: map[string]int64{}, DisabledEndpoints: []DisabledEndpoint{}}
	err := q.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE success),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)
		FROM webhook_attempts WHERE partner_id = $1 AND environment = $2 AND attempted_at >= $3`,
		scope.PartnerID, scope.Environment, since).Scan(&h.Attempts, &h.Successes, &h.LatencyMs.P50, &h.LatencyMs.P99)
	if err != nil {
		return h, err
	}
	h.Failures = h.Attempts - h.Successes
	if h.Attempts > 0 {
		r := math.Round(float64(h.Successes)/float64(h.Attempts)*10000) / 10000
		h.SuccessRate = &r
	}
	rows, err := q.Query(ctx, `SELECT reason, count(*) FROM webhook_attempts
		WHERE partner_id = $1 AND environment = $2 AND attempted_at >= $3 AND NOT success GROUP BY reason`, scope.PartnerID, scope.Environment, since)
	if err != nil {
		return h, err
	}
	for rows.Next() {
		var r string
		var n int64
		if err := rows.Scan(&r, &n); err != nil {
			rows.Close()
			return h, err
		}
		h.FailuresByReason[r] = n
	}
	rows.Close()
	if err := q.QueryRow(ctx, `SELECT max(last_success_at) FROM webhook_endpoints WHERE partner_id = $1 AND environment = $2`,
		scope.PartnerID, scope.Environment).Scan(&h.LastSuccessAt); err != nil {
		return h, err
	}
	h.LastSuccessAt = utc(h.LastSuccessAt)
	if err := q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'PENDING'), count(*) FILTER (WHERE status = 'FAILED')
		FROM webhook_deliveries WHERE partner_id = $1 AND environment = $2`, scope.PartnerID, scope.Environment).Scan(&h.PendingDeliveries, &h.FailedDeliveries); err != nil {
		return h, err
	}
	disabled, err := projections.DisabledWebhooks(ctx, q, scope)
	if err != nil {
		return h, err
	}
	for _, w := range disabled {
		h.DisabledEndpoints = append(h.DisabledEndpoints, DisabledEndpoint{ID: w.ID, URL: w.URL, DisabledAt: *w.DisabledAt, Reason: w.DisabledReason})
	}
	return h, nil
}
