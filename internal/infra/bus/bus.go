// Package bus names the JetStream stream and subjects that carry events from
// the relay to projectors, and creates the stream with the settings the
// promises rely on.
package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// Header names carried on every published message.
const (
	// HeaderPosition is the position of the message's last event: where a
	// relay resumes after it.
	HeaderPosition = "Ledger-Position"
	// HeaderFirstPosition is the position of the message's first event;
	// the message holds every event from there to HeaderPosition.
	HeaderFirstPosition = "Ledger-First-Position"
	// HeaderCount is how many events the message carries.
	HeaderCount = "Ledger-Count"
	// HeaderType lists the distinct event types the message carries,
	// comma-separated, in order of first appearance, so tools can select
	// messages without decoding them.
	HeaderType = "Ledger-Type"
	// HeaderEncoding names the body's encoding: EncodingRun, or
	// EncodingBinary or absent (JSON) for the one-event messages of earlier
	// releases, which a stream may still hold.
	HeaderEncoding = "Ledger-Encoding"
)

// EncodingBinary marks a body that is one envelope encoded by
// events.Event.MarshalBinary (earlier releases).
const EncodingBinary = "binary/1"

// EncodingRun marks a body that is a run of binary envelopes, each
// preceded by its length as a uvarint: consecutive events of one tenant,
// in position order. One message per run instead of per event is what
// keeps the broker's cost per event small under load.
const EncodingRun = "run/1"

// RunSubject is where a run of events of one tenant is published:
// prefix.partner.environment.run, so a consumer can filter by tenant
// (prefix.partner.environment.>). Event types are in HeaderType. Tokens
// are made subject-safe.
func (c Config) RunSubject(partnerID, environment string) string {
	return fmt.Sprintf("%s.%s.%s.run", c.SubjectPrefix, token(partnerID), token(environment))
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

// ensureMu serialises stream creation and updates within a process: two
// concurrent updates of one stream race inside an embedded nats-server.
var ensureMu sync.Mutex

// EnsureStream creates the event stream, or updates it when its settings
// have drifted from ours (the relay calls it once per leadership). When it
// raised the stream's replicas it returns once a quorum of them is current
// (see awaitQuorum). It uses only settings that nats-server 2.9
// understands, so an older external server works.
//
// A stream whose settings already match is left alone rather than
// re-submitted: nats-server (2.15) rewrites a file store's configuration on
// every update without the lock that consumer creation reads it under, so a
// needless update racing a projector's consumer create is a data race in the
// server, and it was one in our CI.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c Config) (jetstream.Stream, error) {
	st, raised, err := ensureStream(ctx, js, c)
	if err != nil || !raised {
		return st, err
	}
	return st, awaitQuorum(ctx, st, replicaCatchUpBound)
}

// ensureStream is EnsureStream's part under ensureMu; it reports whether it
// raised the stream's replicas.
func ensureStream(ctx context.Context, js jetstream.JetStream, c Config) (jetstream.Stream, bool, error) {
	ensureMu.Lock()
	defer ensureMu.Unlock()
	want := streamConfig(c)
	st, err := js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		st, err = js.CreateOrUpdateStream(ctx, want)
		return st, false, err
	case err != nil:
		return nil, false, err
	}
	have := st.CachedInfo().Config
	if !drifted(have, want) {
		return st, false, nil
	}
	// Overlay our settings on the live ones so an operator's additions
	// survive; storage and retention cannot change in place, and the
	// server's refusal says so.
	upd := have
	upd.Subjects, upd.Storage, upd.Retention = want.Subjects, want.Storage, want.Retention
	upd.Replicas, upd.Duplicates, upd.Discard = max(have.Replicas, want.Replicas), want.Duplicates, want.Discard
	st, err = js.UpdateStream(ctx, upd)
	return st, err == nil && upd.Replicas > have.Replicas, err
}

// replicaCatchUpBound is how long EnsureStream waits for a quorum of
// current replicas.
const replicaCatchUpBound = 30 * time.Second

// awaitQuorum waits, at most within, until st has a leader and a quorum of
// its replicas (the leader and replicas/2 followers) is current, and
// refreshes st's cached info meanwhile. A stream of one replica has
// nothing to wait for.
//
// Raising a stream's replicas re-forms its raft group. nats-server (2.15,
// measured on loopback) drops a publish proposed before the new followers
// have caught up, without an acknowledgement, and once in our CI it left
// the leader's expected-sequence check one message ahead of what it stored
// until the next election: every publish of the relay then failed with
// "wrong last sequence". Waiting the ~1 s catch-up before the relay's first
// publish avoids both. A quorum, not every replica: a follower's "current"
// flag flickers under load.
//
// Only the call that raised the replicas waits. Waiting on every call would
// also cover a relay that raised them and died mid-wait, but it would put a
// wait on the relay's way back after every stream leader failover, when a
// new leader may not yet report its followers current; such a relay's
// successor at worst loses its first publish to the acknowledgement
// timeout and re-syncs.
func awaitQuorum(ctx context.Context, st jetstream.Stream, within time.Duration) error {
	info := st.CachedInfo()
	if info == nil || info.Config.Replicas <= 1 || quorumCurrent(info) {
		return nil // a server refuses more than one replica outside a cluster
	}
	name := info.Config.Name
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if info, err := st.Info(ctx); err == nil && quorumCurrent(info) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s: no leader with a quorum of current replicas within %s (JetStream nodes down, or new replicas still catching up)",
				name, within)
		case <-tick.C:
		}
	}
}

// quorumCurrent reports whether info shows a leader and at least
// replicas/2 followers that are current and online: enough for a publish
// to commit.
func quorumCurrent(info *jetstream.StreamInfo) bool {
	if info == nil || info.Cluster == nil || info.Cluster.Leader == "" {
		return false
	}
	current := 0
	for _, p := range info.Cluster.Replicas {
		if p != nil && p.Current && !p.Offline {
			current++
		}
	}
	return current >= info.Config.Replicas/2
}

// drifted reports whether the live stream differs from want in a setting
// we own. Replicas only count when the stream has fewer than we want: a
// replica started with a lower NATS_REPLICAS (the default is 1) must not
// take the redundancy of a clustered stream away when it wins the relay. Fields we leave at the server's default are not compared, so an
// operator's additions (limits, placement) are not fought over.
func drifted(have, want jetstream.StreamConfig) bool {
	if len(have.Subjects) != len(want.Subjects) {
		return true
	}
	for i := range want.Subjects {
		if have.Subjects[i] != want.Subjects[i] {
			return true
		}
	}
	return have.Storage != want.Storage || have.Retention != want.Retention ||
		have.Replicas < want.Replicas || have.Duplicates != want.Duplicates ||
		have.Discard != want.Discard
}

// OpenStream returns the event stream, creating it if it does not exist
// but never updating it: consumers call this, the relay owns the settings.
func OpenStream(ctx context.Context, js jetstream.JetStream, c Config) (jetstream.Stream, error) {
	c = c.WithDefaults()
	st, err := js.Stream(ctx, c.Stream)
	if err == nil || !errors.Is(err, jetstream.ErrStreamNotFound) {
		return st, err
	}
	ensureMu.Lock()
	defer ensureMu.Unlock()
	if st, err := js.Stream(ctx, c.Stream); err == nil {
		return st, nil
	}
	return js.CreateStream(ctx, streamConfig(c))
}

func streamConfig(c Config) jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:       c.Stream,
		Subjects:   []string{c.SubjectPrefix + ".>"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Replicas:   c.Replicas,
		Duplicates: c.DuplicateWindow,
		Discard:    jetstream.DiscardOld,
	}
}

// MinClusterReplicas is the replication a stream needs on a cluster to
// survive the loss of one node without losing availability or data.
const MinClusterReplicas = 3

// ReplicaAdvice explains, for an operator, what is wrong with the
// replication of a stream described by info when configured is the
// NATS_REPLICAS this process runs with, and how to fix it; it is empty
// when nothing is wrong. A stream on a single server (no cluster) is
// fine with one replica: there is nothing to replicate to.
func ReplicaAdvice(info *jetstream.StreamInfo, configured int) string {
	if info == nil || info.Cluster == nil || info.Cluster.Name == "" {
		return ""
	}
	have := info.Config.Replicas
	switch {
	case have < MinClusterReplicas && configured < MinClusterReplicas:
		return fmt.Sprintf("stream %s has %d replica(s) on JetStream cluster %q: losing the node that holds it stops the relay and the projectors "+
			"until that node returns, and losing its disk loses the copy. Fix: set NATS_REPLICAS=%d on every ledgerd and restart them; "+
			"the relay raises the stream's replicas in place (or run `nats stream edit %s --replicas %d`)",
			info.Config.Name, have, info.Cluster.Name, MinClusterReplicas, info.Config.Name, MinClusterReplicas)
	case have < configured:
		return fmt.Sprintf("stream %s has %d replica(s) on JetStream cluster %q but NATS_REPLICAS=%d: the relay raises it to %d when it leads; "+
			"if this warning persists, the cluster refused (too few nodes up?): run `nats stream edit %s --replicas %d`",
			info.Config.Name, have, info.Cluster.Name, configured, configured, info.Config.Name, configured)
	case configured < MinClusterReplicas:
		return fmt.Sprintf("NATS_REPLICAS=%d but NATS is a cluster (%q) and stream %s has %d replicas: set NATS_REPLICAS=%d so that a new "+
			"deployment creates the stream replicated (this process never lowers an existing stream's replicas)",
			configured, info.Cluster.Name, info.Config.Name, have, MinClusterReplicas)
	}
	return ""
}
