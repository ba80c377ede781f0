package projections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
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
//
// Most events concern no subscription. So that they cost no SQL, nor the
// work of building an envelope, the projection keeps in memory the active
// subscriptions per tenant (subView), derived from the webhook events it
// applies itself.
type Webhooks struct {
	mu sync.Mutex
	// views holds, per schema (live, rebuild), the active subscriptions
	// after the last batch this process committed there.
	views map[string]*subView
}

// subView is the active subscriptions (neither deleted nor disabled) that
// a subscriptions table holds once the events up to pos are applied. Only
// webhook.* events, applied by this projection alone, change that table,
// and deterministically; so a view derived from the events up to pos
// describes any copy of the table at pos, whichever process, schema or
// rebuild produced it. A batch uses a view only when the view's pos is the
// batch's From (the checkpoint it read under its row lock), and otherwise
// reads the table: a restart, another process having applied meanwhile, or
// a rebuild swap each cost one query, never a wrong fan-out. A published
// view is never modified: a batch that changes subscriptions copies it.
type subView struct {
	pos     int64
	tenants map[eventstore.Tenant][]fanOutSub
}

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

// Apply implements Projection, for one event outside the runtime: it reads
// the tenant's subscriptions from the table and writes at once.
func (w *Webhooks) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	b := &Batch{Events: []events.Event{e}, From: -1, Queue: &pgx.Batch{}}
	if err := w.applyBatch(ctx, tx, b, false); err != nil {
		return err
	}
	return tx.SendBatch(ctx, b.Queue).Close()
}

// ApplyBatch implements BatchApplier: subscription changes one statement
// each (they are rare), and every delivery of the batch in one insert. An
// event no active subscription of its tenant wants costs nothing.
func (w *Webhooks) ApplyBatch(ctx context.Context, tx pgx.Tx, b *Batch) error {
	return w.applyBatch(ctx, tx, b, true)
}

func (w *Webhooks) applyBatch(ctx context.Context, tx pgx.Tx, b *Batch, cache bool) error {
	if len(b.Events) == 0 {
		return nil
	}
	var tenants map[eventstore.Tenant][]fanOutSub
	if cache {
		var err error
		if tenants, err = w.view(ctx, tx, b.Schema, b.From); err != nil {
			return err
		}
	} else {
		var err error
		if tenants, err = loadSubscriptions(ctx, tx, &eventstore.Tenant{PartnerID: b.Events[0].PartnerID, Environment: b.Events[0].Environment}); err != nil {
			return err
		}
	}
	copied := false
	change := func() {
		if !copied {
			tenants, copied = maps.Clone(tenants), true
			if tenants == nil {
				tenants = map[eventstore.Tenant][]fanOutSub{}
			}
		}
	}
	var fan fanOut
	var live *int64 // the live checkpoint, read once per batch while replaying
	for _, e := range b.Events {
		sc := eventstore.Tenant{PartnerID: e.PartnerID, Environment: e.Environment}
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
			b.Queue.Queue(`INSERT INTO subscriptions (id, partner_id, environment, url, description, event_types, receive_all, secret_sealed, created_at, created_pos)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				p.WebhookID, e.PartnerID, e.Environment, p.URL, p.Description, types, p.ReceiveAllEvents, p.SecretSealed, e.RecordedAt, e.Position)
			change()
			tenants[sc] = append(slices.Clip(tenants[sc]), newFanOutSub(p.WebhookID, types, p.ReceiveAllEvents))
			continue
		case "webhook.deleted":
			var p events.WebhookDeleted
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				return err
			}
			b.Queue.Queue(`UPDATE subscriptions SET deleted_at = $2 WHERE id = $1`, p.WebhookID, e.RecordedAt)
			change()
			dropSubscription(tenants, sc, p.WebhookID)
			continue
		case "webhook.disabled":
			var p events.WebhookDisabled
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				return err
			}
			b.Queue.Queue(`UPDATE subscriptions SET disabled_at = $2, disabled_reason = $3 WHERE id = $1`, p.WebhookID, e.RecordedAt, p.Reason)
			change()
			dropSubscription(tenants, sc, p.WebhookID)
			continue
		}
		subs := tenants[sc]
		if !anyWants(subs, e.Type) {
			continue
		}
		msgs, err := WebhookMessages(e)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			continue
		}
		if Replaying(ctx) {
			// A rebuild re-applies history: never re-send. The one exception
			// is an event the live projector has not reached yet (the tail a
			// rebuild applies before it moves the checkpoint past it): that
			// event was never fanned out, and skipping it would lose it.
			if live == nil {
				var pos int64
				if err := tx.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = $1`, w.Name()).Scan(&pos); err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				live = &pos
			}
			if e.Position <= *live {
				continue
			}
		}
		fan.add(e, msgs, subs)
	}
	fan.queue(b.Queue)
	if cache {
		schema, pos := b.Schema, b.Events[len(b.Events)-1].Position
		b.AfterCommit(func() { w.publish(schema, &subView{pos: pos, tenants: tenants}) })
	}
	return nil
}

// Skips implements Skipper: a batch that changes no subscription and
// that no active subscription of its tenants wants, judged with the view
// this process published for exactly position from (without one it
// answers false, and the full apply reads the table). Nothing between
// from and the batch's last event changes the subscriptions, so the same
// view is published for that position too.
func (w *Webhooks) Skips(from int64, evs []events.Event) bool {
	schema := Schema(w.Name())
	w.mu.Lock()
	v := w.views[schema]
	w.mu.Unlock()
	if v == nil || v.pos != from {
		return false
	}
	for _, e := range evs {
		if changesSubscriptions(e.Type) || anyWants(v.tenants[eventstore.Tenant{PartnerID: e.PartnerID, Environment: e.Environment}], e.Type) {
			return false
		}
	}
	w.publish(schema, &subView{pos: evs[len(evs)-1].Position, tenants: v.tenants})
	return true
}

// changesSubscriptions reports whether applyBatch may write the
// subscriptions table for events of type t: any webhook.* event, so that
// a subscription event added to applyBatch later is never skipped.
func changesSubscriptions(t string) bool { return strings.HasPrefix(t, "webhook.") }

// view returns the active subscriptions of schema's table at position
// from: the view this process published for exactly that position, else
// the table's.
func (w *Webhooks) view(ctx context.Context, tx pgx.Tx, schema string, from int64) (map[eventstore.Tenant][]fanOutSub, error) {
	w.mu.Lock()
	v := w.views[schema]
	w.mu.Unlock()
	if v != nil && v.pos == from {
		return v.tenants, nil
	}
	return loadSubscriptions(ctx, tx, nil)
}

func (w *Webhooks) publish(schema string, v *subView) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.views == nil {
		w.views = map[string]*subView{}
	}
	w.views[schema] = v
}

// loadSubscriptions reads the active subscriptions, of one tenant or all.
func loadSubscriptions(ctx context.Context, tx pgx.Tx, only *eventstore.Tenant) (map[eventstore.Tenant][]fanOutSub, error) {
	sql := `SELECT id, partner_id, environment, event_types, receive_all FROM subscriptions
		WHERE deleted_at IS NULL AND disabled_at IS NULL`
	var args []any
	if only != nil {
		sql += ` AND partner_id = $1 AND environment = $2`
		args = []any{only.PartnerID, only.Environment}
	}
	rows, err := tx.Query(ctx, sql+` ORDER BY created_pos, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[eventstore.Tenant][]fanOutSub{}
	for rows.Next() {
		var id string
		var sc eventstore.Tenant
		var types []string
		var all bool
		if err := rows.Scan(&id, &sc.PartnerID, &sc.Environment, &types, &all); err != nil {
			return nil, err
		}
		out[sc] = append(out[sc], newFanOutSub(id, types, all))
	}
	return out, rows.Err()
}

// dropSubscription removes subscription id from the view, as the UPDATE
// by id alone does from the table: the event's own tenant first, where it
// always is, then any other.
func dropSubscription(tenants map[eventstore.Tenant][]fanOutSub, sc eventstore.Tenant, id string) {
	drop := func(sc eventstore.Tenant) bool {
		subs := tenants[sc]
		i := slices.IndexFunc(subs, func(s fanOutSub) bool { return s.id == id })
		if i < 0 {
			return false
		}
		rest := slices.Delete(slices.Clone(subs), i, i+1)
		if len(rest) == 0 {
			delete(tenants, sc)
		} else {
			tenants[sc] = rest
		}
		return true
	}
	if drop(sc) {
		return
	}
	for other := range tenants {
		if drop(other) {
			return
		}
	}
}

// anyWants reports whether any of subs could get a webhook from an event
// of type eventType: a necessary condition for fanOut.add to deliver
// anything, cheap enough to check before building envelopes.
func anyWants(subs []fanOutSub, eventType string) bool {
	if len(subs) == 0 {
		return false
	}
	if eventType == "webhook.test_requested" {
		return true // addressed to one subscription by id; add decides
	}
	typ, ok := webhookTypeOf[eventType]
	if !ok {
		return false
	}
	for _, s := range subs {
		if s.all || s.types[typ] || (eventType == "action.completed" && s.types["transaction.completed"]) {
			return true
		}
	}
	return false
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
	"donation.completed":      "donation.completed",
	"donation.failed":         "donation.failed",
	"donation.refunded":       "donation.refunded",
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

// fanOut collects the deliveries of one batch's events, to be inserted
// in one statement queued after the batch's other writes, so they commit
// with its checkpoint.
type fanOut struct {
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

func newFanOutSub(id string, types []string, all bool) fanOutSub {
	s := fanOutSub{id: id, types: make(map[string]bool, len(types)), all: all}
	for _, t := range types {
		s.types[t] = true
	}
	return s
}

// add records one delivery per message and matching subscription of
// subs, the event's tenant's active subscriptions at its position.
func (f *fanOut) add(e events.Event, msgs []WebhookMessage, subs []fanOutSub) {
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
}

// queue queues the insert of the collected deliveries (a redelivered one
// is a no-op), which wakes dispatchers if any is new.
func (f *fanOut) queue(q *pgx.Batch) {
	if len(f.ids) == 0 {
		return
	}
	q.Queue(`WITH ins AS (
		INSERT INTO public.webhook_deliveries (id, subscription_id, partner_id, environment, event_id, event_type, source_position, body, created_at, next_attempt_at)
		SELECT d.id, d.sub, d.partner, d.env, d.evt, d.typ, d.pos, d.body, d.created, now()
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bytea[], $9::timestamptz[])
			AS d(id, sub, partner, env, evt, typ, pos, body, created)
		ON CONFLICT (subscription_id, event_id) DO NOTHING
		RETURNING 1)
	SELECT pg_notify($10, '') FROM (SELECT count(*) AS n FROM ins) c WHERE c.n > 0`,
		f.ids, f.subIDs, f.partners, f.envs, f.evtIDs, f.types, f.positions, f.bodies, f.createdAt, WebhookNotifyChannel)
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
