// Package bus names the JetStream stream and subjects that carry events from
// the relay to projectors, and creates the stream with the settings the
// promises rely on.
package bus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sirgiving/ledger/events"
)

// Config names the stream. Tests use distinct names to share one server.
type Config struct {
	Stream        string // default "LEDGER"
	SubjectPrefix string // default "ledger.events"
	// Replicas is 1 embedded, 3 in a cluster.
	Replicas int
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values to
	// drop re-publishes (default 10 minutes).
	DuplicateWindow time.Duration
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Stream == "" {
		c.Stream = "LEDGER"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "ledger.events"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	return c
}

// Header names carried on every published event.
const (
	HeaderPosition = "Ledger-Position"
	HeaderType     = "Ledger-Type"
)

// Subject is where e is published: prefix.partner.environment.type, so a
// consumer can filter by tenant or type. Tokens are made subject-safe.
func (c Config) Subject(e events.Event) string {
	return fmt.Sprintf("%s.%s.%s.%s", c.SubjectPrefix, token(e.PartnerID), token(e.Environment), token(e.Type))
}

func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\n', '\r':
			return '_'
		}
		return r
	}, s)
}

// EnsureStream creates or updates the event stream. It uses only settings
// that nats-server 2.9 understands, so an older external server works.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c Config) (jetstream.Stream, error) {
	c = c.WithDefaults()
	return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       c.Stream,
		Subjects:   []string{c.SubjectPrefix + ".>"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Replicas:   c.Replicas,
		Duplicates: c.DuplicateWindow,
		Discard:    jetstream.DiscardOld,
	})
}
