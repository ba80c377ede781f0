package projections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// WebhooksName is the name of the webhook fan-out projection.
const WebhooksName = "webhooks"

// WebhookNotifyChannel is the PostgreSQL NOTIFY channel the fan-out signals
// on when it commits new deliveries, so dispatchers in any process wake
// without waiting for their poll.
const WebhookNotifyChannel = "webhook_deliveries"

// Webhooks is the webhook read model and fan-out. It keeps the partner's
// subscriptions (proj_webhooks.subscriptions, rebuildable), and turns each
// partner-facing domain event into one delivery per matching active
// subscription of the same partner and environment, written to
// public.webhook_deliveries in the same transaction as the checkpoint.
// The delivery log lives outside the projection schema so a rebuild neither
// drops it nor, since fan-out is suppressed while replaying, re-sends.
type Webhooks struct{}

// NewWebhooks returns the webhook projection.
func NewWebhooks() *Webhooks { return &Webhooks{} }

// Name implements Projection.
func (*Webhooks) Name() string { return WebhooksName }

// HasSideEffects implements SideEffecter.
func (*Webhooks) HasSideEffects() bool { return true }

// Setup implements Projection.
func (*Webhooks) Setup() string {
	return `
CREATE TABLE subscriptions (
    id              text        PRIMARY KEY,
    partner_id      text        NOT NULL,
    environment     text        NOT NULL,
    url             text        NOT NULL,
    description     text        NOT NULL,
    event_types     text[]      NOT NULL,
    receive_all     boolean     NOT NULL,
    secret_sealed   bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    created_pos     bigint      NOT NULL,
    deleted_at      timestamptz,
    disabled_at     timestamptz,
    disabled_reason text
);
CREATE INDEX subscriptions_tenant_idx ON subscriptions (partner_id, environment, created_pos);
`
}

// Apply implements Projection.
func (w *Webhooks) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	fan := fanOutFor(ctx)
	switch e.Type {
	case "webhook.registered":
		var p events.WebhookRegistered
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return err
		}
		types := p.EventTypes
		if types == nil {
			types = []string{}
		}
		fan.forget()
		_, err := tx.Exec(ctx, `INSERT INTO subscriptions (id, partner_id, environment, url, description, event_types, receive_all, secret_sealed, created_at, created_pos)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			p.WebhookID, e.PartnerID, e.Environment, p.URL, p.Description, types, p.ReceiveAllEvents, p.SecretSealed, e.RecordedAt, e.Position)
		return err
	case "webhook.deleted":
		var p events.WebhookDeleted
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return err
		}
		fan.forget()
		_, err := tx.Exec(ctx, `UPDATE subscriptions SET deleted_at = $2 WHERE id = $1`, p.WebhookID, e.RecordedAt)
		return err
	case "webhook.disabled":
		var p events.WebhookDisabled
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return err
		}
		fan.forget()
		_, err := tx.Exec(ctx, `UPDATE subscriptions SET disabled_at = $2, disabled_reason = $3 WHERE id = $1`, p.WebhookID, e.RecordedAt, p.Reason)
		return err
	}
	msgs, err := WebhookMessages(e)
	if err != nil || len(msgs) == 0 {
		return err
	}
	if Replaying(ctx) {
		// A rebuild re-applies history: never re-send. The one exception
		// is an event the live projector has not reached yet (the tail a
		// rebuild applies before it moves the checkpoint past it): that
		// event was never fanned out, and skipping it would lose it.
		live, err := fan.livePosition(ctx, tx, w.Name())
		if err != nil {
			return err
		}
		if e.Position <= live {
			return nil
		}
	}
	if err := fan.add(ctx, tx, e, msgs); err != nil {
		return err
	}
	if txBatchFrom(ctx) == nil {
		return fan.flush(ctx, tx) // no batch to join: write now
	}
	return nil
}

type fanOutKey struct{}

// fanOutFor returns the fan-out of the transaction ctx applies in: shared
// by the transaction's events when the runtime batches them, else one for
// this event alone.
func fanOutFor(ctx context.Context) *fanOut {
	b := txBatchFrom(ctx)
	if b == nil {
		return newFanOut()
	}
	return b.part(fanOutKey{}, func() batchPart { return newFanOut() }).(*fanOut)
}

// WebhookMessage is one webhook envelope derived from a domain event.
type WebhookMessage struct {
	Type    string // webhook event type
	EventID string // evt_…, stable for the source event, type and index
	Body    []byte // the exact envelope JSON sent on every attempt
	OnlyTo  string // when set, the only subscription that gets it (webhook.test)
}

var webhookTypeOf = map[string]string{
	"action.completed":        "action.completed",
	"action.failed":           "action.failed",
	"action.reversed":         "action.reversed",
	"pool.low_balance":        "token_pool.low_balance",
	"campaign.status_changed": "campaign.status_changed",
}

// WebhookEventID is the envelope id of the index-th webhook of type typ
// derived from the domain event sourceID: the same on every attempt, after
// any replay and in every process.
func WebhookEventID(sourceID, typ string, index int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("sirgiving-webhook-event:%s:%s:%d", sourceID, typ, index)))
	return "evt_" + hex.EncodeToString(h[:16])
}

// WebhookDeliveryID is the id of the delivery of envelope eventID to
// subscription webhookID.
func WebhookDeliveryID(webhookID, eventID string) string {
	h := sha256.Sum256([]byte("sirgiving-webhook-delivery:" + webhookID + ":" + eventID))
	return "whd_" + hex.EncodeToString(h[:16])
}

type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt string          `json:"createdAt"`
	Data      json.RawMessage `json:"data"`
}

func message(e events.Event, typ string, index int, data []byte, only string) (WebhookMessage, error) {
	id := WebhookEventID(e.ID.String(), typ, index)
	body, err := json.Marshal(envelope{ID: id, Type: typ, CreatedAt: e.RecordedAt.UTC().Format(time.RFC3339Nano), Data: data})
	if err != nil {
		return WebhookMessage{}, fmt.Errorf("webhooks: %s payload is not a JSON object: %w", e.Type, err)
	}
	return WebhookMessage{Type: typ, EventID: id, Body: body, OnlyTo: only}, nil
}

// WebhookMessages returns the webhooks a domain event produces (CONTRACT
// §6), none for event types partners are not told about. Each carries its
// public payload (webhook_payloads.go), never the event's own encoding.
func WebhookMessages(e events.Event) ([]WebhookMessage, error) {
	if e.Type == "webhook.test_requested" {
		var p events.WebhookTestRequested
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return nil, err
		}
		data, _ := json.Marshal(WebhookTestData{Message: webhookTestMessage, WebhookID: p.WebhookID})
		m, err := message(e, "webhook.test", 0, data, p.WebhookID)
		return []WebhookMessage{m}, err
	}
	typ, data, txids, ok, err := webhookData(e)
	if !ok || err != nil {
		return nil, err
	}
	body, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	m, err := message(e, typ, 0, body, "")
	if err != nil {
		return nil, err
	}
	out := []WebhookMessage{m}
	for i, id := range txids {
		// The transaction's webhook carries the action it came from, with
		// the one transaction id it is about.
		d := data.(ActionCompletedData)
		d.TransactionID = id
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		m, err := message(e, "transaction.completed", i, b, "")
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// fanOut collects the deliveries of one transaction's events and inserts
// them in one statement when the transaction's batch is flushed (before
// its checkpoint moves, so they commit together). Subscriptions are read
// once per tenant and transaction; any webhook.* event forgets them, so
// every event still fans out to exactly the subscriptions active at its
// position.
type fanOut struct {
	subs map[eventstore.Tenant][]fanOutSub
	live *int64 // the live checkpoint, read once per transaction while replaying

	ids, subIDs, partners, envs, evtIDs, types []string
	positions                                  []int64
	createdAt                                  []time.Time
	bodies                                     [][]byte
}

type fanOutSub struct {
	id    string
	types map[string]bool
	all   bool
}

func newFanOut() *fanOut { return &fanOut{subs: map[eventstore.Tenant][]fanOutSub{}} }

// forget drops cached subscriptions after one changed.
func (f *fanOut) forget() { clear(f.subs) }

func (f *fanOut) livePosition(ctx context.Context, tx pgx.Tx, name string) (int64, error) {
	if f.live == nil {
		var live int64
		if err := tx.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = $1`, name).Scan(&live); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return 0, err
		}
		f.live = &live
	}
	return *f.live, nil
}

func (f *fanOut) subscriptions(ctx context.Context, tx pgx.Tx, scope eventstore.Tenant) ([]fanOutSub, error) {
	if subs, ok := f.subs[scope]; ok {
		return subs, nil
	}
	rows, err := tx.Query(ctx, `SELECT id, event_types, receive_all FROM subscriptions
		WHERE partner_id = $1 AND environment = $2 AND deleted_at IS NULL AND disabled_at IS NULL`, scope.PartnerID, scope.Environment)
	if err != nil {
		return nil, err
	}
	subs := []fanOutSub{}
	for rows.Next() {
		var s fanOutSub
		var types []string
		if err := rows.Scan(&s.id, &types, &s.all); err != nil {
			rows.Close()
			return nil, err
		}
		s.types = map[string]bool{}
		for _, t := range types {
			s.types[t] = true
		}
		subs = append(subs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	f.subs[scope] = subs
	return subs, nil
}

// add records one delivery per message and matching active subscription
// of the event's tenant, to be inserted by flush.
func (f *fanOut) add(ctx context.Context, tx pgx.Tx, e events.Event, msgs []WebhookMessage) error {
	subs, err := f.subscriptions(ctx, tx, eventstore.Tenant{PartnerID: e.PartnerID, Environment: e.Environment})
	if err != nil {
		return err
	}
	for _, m := range msgs {
		for _, s := range subs {
			if m.OnlyTo != "" {
				if s.id != m.OnlyTo {
					continue
				}
			} else if !s.all && !s.types[m.Type] {
				continue
			}
			f.ids = append(f.ids, WebhookDeliveryID(s.id, m.EventID))
			f.subIDs = append(f.subIDs, s.id)
			f.partners = append(f.partners, e.PartnerID)
			f.envs = append(f.envs, e.Environment)
			f.evtIDs = append(f.evtIDs, m.EventID)
			f.types = append(f.types, m.Type)
			f.positions = append(f.positions, e.Position)
			f.createdAt = append(f.createdAt, e.RecordedAt)
			f.bodies = append(f.bodies, m.Body)
		}
	}
	return nil
}

// flush inserts the collected deliveries (a redelivered one is a no-op)
// and wakes dispatchers if any is new.
func (f *fanOut) flush(ctx context.Context, tx pgx.Tx) error {
	if len(f.ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `WITH ins AS (
		INSERT INTO public.webhook_deliveries (id, subscription_id, partner_id, environment, event_id, event_type, source_position, body, created_at, next_attempt_at)
		SELECT d.id, d.sub, d.partner, d.env, d.evt, d.typ, d.pos, d.body, d.created, now()
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bytea[], $9::timestamptz[])
			AS d(id, sub, partner, env, evt, typ, pos, body, created)
		ON CONFLICT (subscription_id, event_id) DO NOTHING
		RETURNING 1)
	SELECT pg_notify($10, '') FROM (SELECT count(*) AS n FROM ins) c WHERE c.n > 0`,
		f.ids, f.subIDs, f.partners, f.envs, f.evtIDs, f.types, f.positions, f.bodies, f.createdAt, WebhookNotifyChannel)
	if err != nil {
		return err
	}
	f.ids, f.subIDs, f.partners, f.envs, f.evtIDs, f.types = nil, nil, nil, nil, nil, nil
	f.positions, f.createdAt, f.bodies = nil, nil, nil
	return nil
}

// Webhook is a subscription as partners see it (never its secret).
type Webhook struct {
	ID               string     `json:"id"`
	URL              string     `json:"url"`
	Description      string     `json:"description"`
	EventTypes       []string   `json:"eventTypes"`
	ReceiveAllEvents bool       `json:"receiveAllEvents"`
	IsActive         bool       `json:"isActive"`
	CreatedAt        time.Time  `json:"createdAt"`
	DisabledAt       *time.Time `json:"disabledAt,omitempty"`
	DisabledReason   string     `json:"disabledReason,omitempty"`
}

const webhookColumns = `id, url, description, event_types, receive_all, created_at, disabled_at, coalesce(disabled_reason, '')`

func scanWebhook(row pgx.CollectableRow) (Webhook, error) {
	var w Webhook
	err := row.Scan(&w.ID, &w.URL, &w.Description, &w.EventTypes, &w.ReceiveAllEvents, &w.CreatedAt, &w.DisabledAt, &w.DisabledReason)
	w.IsActive = w.DisabledAt == nil
	w.CreatedAt = w.CreatedAt.UTC()
	if w.DisabledAt != nil {
		t := w.DisabledAt.UTC()
		w.DisabledAt = &t
	}
	if w.EventTypes == nil {
		w.EventTypes = []string{}
	}
	return w, err
}

// ListWebhooks returns scope's undeleted webhooks, oldest first, and their total.
func ListWebhooks(ctx context.Context, q eventstore.Querier, scope eventstore.Tenant, offset, limit int) ([]Webhook, int64, error) {
	t := Table(WebhooksName, "subscriptions")
	var total int64
	if err := q.QueryRow(ctx, `SELECT count(*) FROM `+t+` WHERE partner_id = $1 AND environment = $2 AND deleted_at IS NULL`,
		scope.PartnerID, scope.Environment).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, `SELECT `+webhookColumns+` FROM `+t+` WHERE partner_id = $1 AND environment = $2 AND deleted_at IS NULL
		ORDER BY created_pos LIMIT $3 OFFSET $4`, scope.PartnerID, scope.Environment, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanWebhook)
	return out, total, err
}

// WebhookFromRegistration is the view of a webhook just registered by ev,
// recorded at at: what GetWebhook shows once the read model has applied
// it, so registration can answer (with the one-time secret) without it.
func WebhookFromRegistration(ev events.WebhookRegistered, at time.Time) Webhook {
	types := ev.EventTypes
	if types == nil {
		types = []string{}
	}
	return Webhook{
		ID: ev.WebhookID, URL: ev.URL, Description: ev.Description, EventTypes: types,
		ReceiveAllEvents: ev.ReceiveAllEvents, IsActive: true, CreatedAt: at.UTC(),
	}
}

// ErrWebhookNotFound is what reads answer for an unknown, deleted or other
// tenant's webhook: the same code the domain's commands answer.
var ErrWebhookNotFound = eventstore.Errorf(eventstore.KindNotFound, "WEBHOOK_NOT_FOUND", "no such webhook")

// GetWebhook returns scope's undeleted webhook id, or ErrWebhookNotFound.
func GetWebhook(ctx context.Context, q eventstore.Querier, scope eventstore.Tenant, id string) (Webhook, error) {
	rows, err := q.Query(ctx, `SELECT `+webhookColumns+` FROM `+Table(WebhooksName, "subscriptions")+`
		WHERE id = $1 AND partner_id = $2 AND environment = $3 AND deleted_at IS NULL`, id, scope.PartnerID, scope.Environment)
	if err != nil {
		return Webhook{}, err
	}
	w, err := pgx.CollectExactlyOneRow(rows, scanWebhook)
	if errors.Is(err, pgx.ErrNoRows) {
		return Webhook{}, ErrWebhookNotFound
	}
	return w, err
}

// DisabledWebhooks returns scope's disabled (and undeleted) webhooks.
func DisabledWebhooks(ctx context.Context, q eventstore.Querier, scope eventstore.Tenant) ([]Webhook, error) {
	rows, err := q.Query(ctx, `SELECT `+webhookColumns+` FROM `+Table(WebhooksName, "subscriptions")+`
		WHERE partner_id = $1 AND environment = $2 AND deleted_at IS NULL AND disabled_at IS NOT NULL ORDER BY disabled_at`, scope.PartnerID, scope.Environment)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanWebhook)
}
