package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/secretbox"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// WebhookTypes are the webhook event types a subscription may ask for
// (CONTRACT §6).
var WebhookTypes = []string{
	"action.completed", "action.failed", "action.reversed", "transaction.completed",
	"token_pool.low_balance", "campaign.status_changed", "webhook.test",
	"donation.completed", "donation.failed", "donation.refunded",
}

// WebhookStreamID is the stream of one webhook subscription.
func WebhookStreamID(webhookID string) string { return "webhook-" + webhookID }

// webhookState is the aggregate of a webhook-wh_… stream.
type webhookState struct {
	Exists   bool
	Scope    eventstore.Tenant
	Deleted  bool
	Disabled bool
}

func (w *webhookState) Apply(e events.Event) error {
	switch e.Type {
	case "webhook.registered":
		w.Exists = true
		w.Scope = eventstore.Tenant{PartnerID: e.PartnerID, Environment: e.Environment}
	case "webhook.deleted":
		w.Deleted = true
	case "webhook.disabled":
		w.Disabled = true
	}
	return nil
}

func init() {
	eventstore.RegisterAggregate("webhook-", func() eventstore.Aggregate { return &webhookState{} })
}

// RegisterWebhook is a registration request.
type RegisterWebhook struct {
	URL              string
	Description      string
	EventTypes       []string
	ReceiveAllEvents bool
}

// RegisteredWebhook is what registration returns; Secret is the only time
// the plaintext signing secret is ever available.
type RegisteredWebhook struct {
	Event    events.WebhookRegistered
	Secret   string
	Position int64
	// RecordedAt is when the registration was recorded (its createdAt).
	RecordedAt time.Time
}

// ErrWebhookNotFound is returned for unknown, deleted or other tenants' webhooks.
var ErrWebhookNotFound = eventstore.Errorf(eventstore.KindNotFound, "WEBHOOK_NOT_FOUND", "no such webhook")

// Register validates req, checks that its host is allowed, and records a
// new subscription with a fresh whsec_ secret.
func (s *Service) RegisterWebhook(ctx context.Context, scope eventstore.Tenant, meta events.Metadata, req RegisterWebhook) (RegisteredWebhook, error) {
	if err := s.validateWebhook(ctx, scope, &req); err != nil {
		return RegisteredWebhook{}, err
	}
	id := "wh_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return RegisteredWebhook{}, err
	}
	secret := "whsec_" + hex.EncodeToString(raw)
	sealed, err := secretbox.Seal(s.opts.MasterKey, id, []byte(secret))
	if err != nil {
		return RegisteredWebhook{}, err
	}
	ev := events.WebhookRegistered{
		WebhookID: id, URL: req.URL, Description: req.Description,
		EventTypes: req.EventTypes, ReceiveAllEvents: req.ReceiveAllEvents, SecretSealed: sealed,
	}
	res, err := s.appendNew(ctx, scope, meta, WebhookStreamID(id), ev)
	if err != nil {
		return RegisteredWebhook{}, err
	}
	return RegisteredWebhook{Event: ev, Secret: secret, Position: res.Position, RecordedAt: res.Events[0].RecordedAt}, nil
}

func (s *Service) validateWebhook(ctx context.Context, scope eventstore.Tenant, req *RegisterWebhook) error {
	var issues []eventstore.FieldIssue
	u, err := url.Parse(req.URL)
	switch {
	case req.URL == "":
		issues = append(issues, eventstore.FieldIssue{Field: "url", Issue: "is required"})
	case len(req.URL) > 2048:
		issues = append(issues, eventstore.FieldIssue{Field: "url", Issue: "must be at most 2048 characters"})
	case err != nil || u.Host == "" || u.Hostname() == "":
		issues = append(issues, eventstore.FieldIssue{Field: "url", Issue: "must be an absolute URL"})
	case u.Scheme != "https" && u.Scheme != "http":
		issues = append(issues, eventstore.FieldIssue{Field: "url", Issue: "must use https"})
	case u.Scheme == "http" && (s.opts.WebhookRequireHTTPS || scope.Environment == "production"):
		issues = append(issues, eventstore.FieldIssue{Field: "url", Issue: "must use https"})
	case u.User != nil:
		issues = append(issues, eventstore.FieldIssue{Field: "url", Issue: "must not contain credentials"})
	case u.Fragment != "":
		issues = append(issues, eventstore.FieldIssue{Field: "url", Issue: "must not contain a fragment"})
	}
	if len(req.Description) > 500 {
		issues = append(issues, eventstore.FieldIssue{Field: "description", Issue: "must be at most 500 characters"})
	}
	known := map[string]bool{}
	for _, t := range WebhookTypes {
		known[t] = true
	}
	seen := map[string]bool{}
	types := make([]string, 0, len(req.EventTypes))
	for _, t := range req.EventTypes {
		if !known[t] {
			issues = append(issues, eventstore.FieldIssue{Field: "eventTypes", Issue: "unknown event type " + t + "; known: " + strings.Join(WebhookTypes, ", ")})
			continue
		}
		if !seen[t] {
			seen[t] = true
			types = append(types, t)
		}
	}
	req.EventTypes = types
	if !req.ReceiveAllEvents && len(req.EventTypes) == 0 && len(issues) == 0 {
		issues = append(issues, eventstore.FieldIssue{Field: "eventTypes", Issue: "name at least one event type, or set receiveAllEvents"})
	}
	if len(issues) > 0 {
		return eventstore.Invalid("the webhook registration is invalid", issues...)
	}
	if s.opts.WebhookHosts == nil {
		return nil
	}
	refusal, err := s.opts.WebhookHosts.RefuseHost(ctx, u.Hostname())
	if err != nil {
		return err
	}
	if refusal != "" {
		return eventstore.Invalid("the webhook URL is not allowed", eventstore.FieldIssue{Field: "url", Issue: "must resolve to a public internet address: " + refusal})
	}
	return nil
}

// loadOwned loads a webhook stream and refuses it unless scope owns it and
// it is not deleted.
func loadOwned(s *eventstore.Session, scope eventstore.Tenant, id string) (*webhookState, error) {
	st, err := s.Load(WebhookStreamID(id))
	if err != nil {
		return nil, err
	}
	ws, _ := st.State.(*webhookState)
	if ws == nil || !ws.Exists || ws.Deleted || ws.Scope != scope {
		return nil, ErrWebhookNotFound
	}
	return ws, nil
}

// Delete records that scope's webhook id is deleted.
func (s *Service) DeleteWebhook(ctx context.Context, scope eventstore.Tenant, meta events.Metadata, id string) (eventstore.Result, error) {
	return s.store.Execute(ctx, eventstore.Command{Tenant: scope, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		if _, err := loadOwned(ss, scope, id); err != nil {
			return err
		}
		ss.Emit(WebhookStreamID(id), events.WebhookDeleted{WebhookID: id})
		return nil
	}})
}

// RequestTest records a request for one webhook.test delivery to scope's
// webhook id. The returned event's id determines the delivery's id.
func (s *Service) RequestWebhookTest(ctx context.Context, scope eventstore.Tenant, meta events.Metadata, id string) (eventstore.Result, error) {
	return s.store.Execute(ctx, eventstore.Command{Tenant: scope, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		ws, err := loadOwned(ss, scope, id)
		if err != nil {
			return err
		}
		if ws.Disabled {
			return eventstore.Errorf(eventstore.KindConflict, "WEBHOOK_DISABLED", "this webhook was disabled after failing repeatedly; register it again")
		}
		ss.Emit(WebhookStreamID(id), events.WebhookTestRequested{WebhookID: id})
		return nil
	}})
}

// Disable records that the dispatcher disabled scope's webhook id. It is
// a no-op for a webhook already disabled or deleted.
func (s *Service) DisableWebhook(ctx context.Context, scope eventstore.Tenant, id string, d events.WebhookDisabled) (eventstore.Result, error) {
	return s.store.Execute(ctx, eventstore.Command{Tenant: scope, Metadata: events.Metadata{Actor: "system:webhook-dispatcher"}, Decide: func(ss *eventstore.Session) error {
		ws, err := loadOwned(ss, scope, id)
		if err != nil {
			if errors.Is(err, ErrWebhookNotFound) {
				return nil
			}
			return err
		}
		if ws.Disabled {
			return nil
		}
		d.WebhookID = id
		ss.Emit(WebhookStreamID(id), d)
		return nil
	}})
}
