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
	"github.com/sirgiving/ledger/internal/netguard"
	"github.com/sirgiving/ledger/internal/secretbox"
)

// WebhookTypes are the webhook event types a subscription may ask for
// (CONTRACT §6).
var WebhookTypes = []string{
	"action.completed", "action.failed", "action.reversed", "transaction.completed",
	"token_pool.low_balance", "campaign.status_changed", "webhook.test",
}

// WebhookStreamID is the stream of one webhook subscription.
func WebhookStreamID(webhookID string) string { return "webhook-" + webhookID }

// webhookState is the aggregate of a webhook-wh_… stream.
type webhookState struct {
	Exists   bool
	Scope    Scope
	Deleted  bool
	Disabled bool
}

func (w *webhookState) Apply(e events.Event) error {
	switch e.Type {
	case "webhook.registered":
		w.Exists = true
		w.Scope = Scope{PartnerID: e.PartnerID, Environment: e.Environment}
	case "webhook.deleted":
		w.Deleted = true
	case "webhook.disabled":
		w.Disabled = true
	}
	return nil
}

func init() {
	RegisterAggregate("webhook-", func() Aggregate { return &webhookState{} })
}

// WebhooksOptions configures the webhook commands.
type WebhooksOptions struct {
	// MasterKey (32 bytes) encrypts signing secrets at rest.
	MasterKey []byte
	// RequireHTTPS refuses http:// URLs for every environment (production
	// deployments). Partners' production environment always requires https.
	RequireHTTPS bool
	// Addresses decides which hosts registration accepts.
	Addresses netguard.Policy
}

// Webhooks holds the webhook subscription commands.
type Webhooks struct {
	store *Store
	opts  WebhooksOptions
}

// NewWebhooks returns the webhook commands writing through store.
func NewWebhooks(store *Store, opts WebhooksOptions) *Webhooks {
	return &Webhooks{store: store, opts: opts}
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
var ErrWebhookNotFound = Errorf(KindNotFound, "WEBHOOK_NOT_FOUND", "no such webhook")

// Register validates req, checks that its host is allowed, and records a
// new subscription with a fresh whsec_ secret.
func (w *Webhooks) Register(ctx context.Context, scope Scope, meta events.Metadata, req RegisterWebhook) (RegisteredWebhook, error) {
	if err := w.validate(ctx, scope, &req); err != nil {
		return RegisteredWebhook{}, err
	}
	id := "wh_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return RegisteredWebhook{}, err
	}
	secret := "whsec_" + hex.EncodeToString(raw)
	sealed, err := secretbox.Seal(w.opts.MasterKey, id, []byte(secret))
	if err != nil {
		return RegisteredWebhook{}, err
	}
	ev := events.WebhookRegistered{
		WebhookID: id, URL: req.URL, Description: req.Description,
		EventTypes: req.EventTypes, ReceiveAllEvents: req.ReceiveAllEvents, SecretSealed: sealed,
	}
	res, err := w.store.Append(ctx, scope, meta, WebhookStreamID(id), 0, ev)
	if err != nil {
		return RegisteredWebhook{}, err
	}
	return RegisteredWebhook{Event: ev, Secret: secret, Position: res.Position, RecordedAt: res.Events[0].RecordedAt}, nil
}

func (w *Webhooks) validate(ctx context.Context, scope Scope, req *RegisterWebhook) error {
	var issues []FieldIssue
	u, err := url.Parse(req.URL)
	switch {
	case req.URL == "":
		issues = append(issues, FieldIssue{Field: "url", Issue: "is required"})
	case len(req.URL) > 2048:
		issues = append(issues, FieldIssue{Field: "url", Issue: "must be at most 2048 characters"})
	case err != nil || u.Host == "" || u.Hostname() == "":
		issues = append(issues, FieldIssue{Field: "url", Issue: "must be an absolute URL"})
	case u.Scheme != "https" && u.Scheme != "http":
		issues = append(issues, FieldIssue{Field: "url", Issue: "must use https"})
	case u.Scheme == "http" && (w.opts.RequireHTTPS || scope.Environment == "production"):
		issues = append(issues, FieldIssue{Field: "url", Issue: "must use https"})
	case u.User != nil:
		issues = append(issues, FieldIssue{Field: "url", Issue: "must not contain credentials"})
	case u.Fragment != "":
		issues = append(issues, FieldIssue{Field: "url", Issue: "must not contain a fragment"})
	}
	if len(req.Description) > 500 {
		issues = append(issues, FieldIssue{Field: "description", Issue: "must be at most 500 characters"})
	}
	known := map[string]bool{}
	for _, t := range WebhookTypes {
		known[t] = true
	}
	seen := map[string]bool{}
	types := make([]string, 0, len(req.EventTypes))
	for _, t := range req.EventTypes {
		if !known[t] {
			issues = append(issues, FieldIssue{Field: "eventTypes", Issue: "unknown event type " + t + "; known: " + strings.Join(WebhookTypes, ", ")})
			continue
		}
		if !seen[t] {
			seen[t] = true
			types = append(types, t)
		}
	}
	req.EventTypes = types
	if !req.ReceiveAllEvents && len(req.EventTypes) == 0 && len(issues) == 0 {
		issues = append(issues, FieldIssue{Field: "eventTypes", Issue: "name at least one event type, or set receiveAllEvents"})
	}
	if len(issues) > 0 {
		return Invalid("the webhook registration is invalid", issues...)
	}
	if err := w.opts.Addresses.CheckHost(ctx, u.Hostname()); err != nil {
		if errors.Is(err, netguard.ErrBlocked) {
			return Invalid("the webhook URL is not allowed", FieldIssue{Field: "url", Issue: "must resolve to a public internet address: " + err.Error()})
		}
		return err
	}
	return nil
}

// loadOwned loads a webhook stream and refuses it unless scope owns it and
// it is not deleted.
func loadOwned(s *Session, scope Scope, id string) (*webhookState, error) {
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
func (w *Webhooks) Delete(ctx context.Context, scope Scope, meta events.Metadata, id string) (Result, error) {
	return w.store.Execute(ctx, Command{Scope: scope, Metadata: meta, Decide: func(s *Session) error {
		if _, err := loadOwned(s, scope, id); err != nil {
			return err
		}
		s.Emit(WebhookStreamID(id), events.WebhookDeleted{WebhookID: id})
		return nil
	}})
}

// RequestTest records a request for one webhook.test delivery to scope's
// webhook id. The returned event's id determines the delivery's id.
func (w *Webhooks) RequestTest(ctx context.Context, scope Scope, meta events.Metadata, id string) (Result, error) {
	return w.store.Execute(ctx, Command{Scope: scope, Metadata: meta, Decide: func(s *Session) error {
		ws, err := loadOwned(s, scope, id)
		if err != nil {
			return err
		}
		if ws.Disabled {
			return Errorf(KindConflict, "WEBHOOK_DISABLED", "this webhook was disabled after failing repeatedly; register it again")
		}
		s.Emit(WebhookStreamID(id), events.WebhookTestRequested{WebhookID: id})
		return nil
	}})
}

// Disable records that the dispatcher disabled scope's webhook id. It is
// a no-op for a webhook already disabled or deleted.
func (w *Webhooks) Disable(ctx context.Context, scope Scope, id string, d events.WebhookDisabled) (Result, error) {
	return w.store.Execute(ctx, Command{Scope: scope, Metadata: events.Metadata{Actor: "system:webhook-dispatcher"}, Decide: func(s *Session) error {
		ws, err := loadOwned(s, scope, id)
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
		s.Emit(WebhookStreamID(id), d)
		return nil
	}})
}
