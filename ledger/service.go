// Package ledger is the reward domain: the aggregates rebuilt from events
// (partners and keys, pools, actions, campaigns, end users, webhook
// subscriptions), the decisions that turn a command and current state into
// events or a typed refusal, and the money and token arithmetic. Every
// command is a method of Service.
//
// The package does no I/O of its own: it imports no database, broker, HTTP
// or metrics package. Its commands run through an Executor — the
// PostgreSQL event store (ledger/eventstore) in the service, an in-memory
// one in unit tests — and anything else it needs from the outside world
// (resolving a webhook host) is handed in through Options.
package ledger

import (
	"context"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Executor runs commands: it decides each against current state and appends
// what it emits, atomically. ExecuteAll decides a bundle in order, each
// command seeing the ones before it, and commits it as one.
// *eventstore.Store and *eventstore.Memory are Executors.
type Executor interface {
	Execute(ctx context.Context, cmd eventstore.Command) (eventstore.Result, error)
	ExecuteAll(ctx context.Context, cmds []eventstore.Command) ([]eventstore.Outcome, error)
}

// HostChecker decides whether a webhook URL's host may be called.
type HostChecker interface {
	// RefuseHost says why host may not receive webhooks, or "" when it
	// may; an error means it could not decide (a DNS outage), which is an
	// outage, not a refusal.
	RefuseHost(ctx context.Context, host string) (string, error)
}

// Options configures a Service. MasterKey is required for commands that
// seal secrets (keys, portal users, webhooks).
type Options struct {
	// MasterKey (32 bytes) encrypts HMAC secrets, webhook signing secrets
	// and password hashes at rest.
	MasterKey []byte
	// WebhookRequireHTTPS refuses http:// webhook URLs in every environment
	// (production deployments); a partner's production environment always
	// requires https.
	WebhookRequireHTTPS bool
	// WebhookHosts decides which webhook hosts registration accepts; nil
	// accepts every host (unit tests).
	WebhookHosts HostChecker
	// Checkout opens donation checkouts with the configured providers;
	// nil refuses every donation link as PROVIDER_NOT_CONFIGURED.
	Checkout Checkout
	// MaxDonationAmount bounds a donation link's amount in cents (zero:
	// DefaultMaxDonationAmount).
	MaxDonationAmount int64
}

// Service holds every command of the reward domain. It is safe for
// concurrent use: all state lives in the event store behind the Executor.
type Service struct {
	store Executor
	opts  Options
}

// NewService returns the domain's commands, executed through store.
func NewService(store Executor, opts Options) *Service {
	return &Service{store: store, opts: opts}
}

// appendNew appends payloads to a stream that must not exist yet; a stream
// that does is a concurrency conflict (ids are fresh, so it never is).
func (s *Service) appendNew(ctx context.Context, tenant eventstore.Tenant, meta events.Metadata, streamID string, payloads ...events.Payload) (eventstore.Result, error) {
	return s.store.Execute(ctx, eventstore.Command{Tenant: tenant, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		st, err := ss.Load(streamID)
		if err != nil {
			return err
		}
		if st.Version != 0 {
			return eventstore.ErrConcurrency
		}
		for _, p := range payloads {
			ss.Emit(streamID, p)
		}
		return nil
	}})
}
