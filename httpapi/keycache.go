package httpapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// keyEventTypes are the events that change what authentication knows of a
// key or of its partner. The accounts revision is the highest position
// among them; the key cache is their fold.
var keyEventTypes = []string{
	events.PartnerRegistered{}.EventType(),
	events.PartnerApproved{}.EventType(),
	events.PartnerSuspended{}.EventType(),
	events.PartnerTierChanged{}.EventType(),
	events.APIKeyCreated{}.EventType(),
	events.APIKeyUpdated{}.EventType(),
	events.APIKeyRevoked{}.EventType(),
}

// keyCache holds every API key and partner standing in process memory,
// as a fold of the key events of the event store (not of the accounts read
// model, which lags the store and may stall: the cache must be exactly as
// current as the revision a request observed, without waiting for a
// projector). Requests never read it without first knowing the accounts
// revision is not ahead of it (see KeyAuth).
//
// Entries are immutable once published: an update replaces the entry, so
// a lookup hands out a consistent value without holding the lock.
type keyCache struct {
	db        eventstore.Querier
	masterKey []byte

	// refreshMu makes one reader of the event store at a time; the others
	// find the revision they need already reached when they get it.
	refreshMu sync.Mutex

	mu       sync.RWMutex
	rev      int64 // position of the last key event folded; -1 before the first load
	byPublic map[string]*cachedKey
	bySecret map[string]*cachedKey // by SHA-256 hex of the secret key
	byID     map[string]*cachedKey
	partners map[string]cachedPartner
}

type cachedKey struct {
	keyID, partnerID, env string
	publicKey, secretHash string
	// hmacSecret is opened once, when the key is folded: opening it on
	// every request would cost an AES-GCM decryption each time, and the
	// process holds the master key anyway.
	hmacSecret string
	openErr    error
	isActive   bool
	expiresAt  time.Time // zero: never expires
	revoked    bool
}

type cachedPartner struct{ status, tier string }

// authKey is a consistent snapshot of a key and its partner's standing.
type authKey struct {
	cachedKey
	partnerStatus, tier string
}

// usable reports whether the key may authenticate at now. Expiry is
// checked here, against the clock, on every request.
func (k *authKey) usable(now time.Time) bool {
	return k.isActive && !k.revoked && (k.expiresAt.IsZero() || now.Before(k.expiresAt))
}

func newKeyCache(db eventstore.Querier, masterKey []byte) *keyCache {
	return &keyCache{
		db: db, masterKey: masterKey, rev: -1,
		byPublic: map[string]*cachedKey{}, bySecret: map[string]*cachedKey{},
		byID: map[string]*cachedKey{}, partners: map[string]cachedPartner{},
	}
}

// revision is the position of the last key event folded (-1: none yet).
func (c *keyCache) revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// lookup finds a key by its publishable key, or by its secret key when
// secret is set. It also returns the revision the answer is true at: a
// caller comparing it with an accounts revision must use this one, not a
// later c.revision(), which may have moved since.
func (c *keyCache) lookup(key string, secret bool) (authKey, bool, int64) {
	var hash string
	if secret {
		hash = ledger.HashSecretKey(key) // outside the lock
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	var k *cachedKey
	if secret {
		k = c.bySecret[hash]
	} else {
		k = c.byPublic[key]
	}
	if k == nil {
		return authKey{}, false, c.rev
	}
	p := c.partners[k.partnerID]
	return authKey{cachedKey: *k, partnerStatus: p.status, tier: p.tier}, true, c.rev
}

// selectKeyEvents names the key event types as literals, as revisionSQL
// does: only then can the planner prove they fall inside the predicate of
// events_rare_type_position_idx, a partial index (migration 010).
var selectKeyEvents = `SELECT position, event_type, schema_version, payload::text FROM events
	WHERE event_type IN (` + keyEventTypeList() + `) AND position > $1 ORDER BY position`

// ensure makes the cache reflect every key event up to position want at
// least, reading the ones it has not folded from the event store.
func (c *keyCache) ensure(ctx context.Context, want int64) error {
	if c.revision() >= want {
		return nil
	}
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	from := c.revision()
	if from >= want {
		return nil
	}
	rows, err := c.db.Query(ctx, selectKeyEvents, from)
	if err != nil {
		return err
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (events.Event, error) {
		var e events.Event
		var payload string
		var schema int32
		err := row.Scan(&e.Position, &e.Type, &schema, &payload)
		e.SchemaVersion, e.Payload = int(schema), []byte(payload)
		return e, err
	})
	if err != nil {
		return err
	}
	payloads := make([]events.Payload, len(evs))
	for i, e := range evs {
		if payloads[i], err = events.Decode(e); err != nil {
			return fmt.Errorf("key cache: position %d: %w", e.Position, err)
		}
	}
	// Secrets are opened before taking the write lock: requests keep
	// reading the cache meanwhile.
	opened := map[string]*cachedKey{}
	for _, pl := range payloads {
		if v, ok := pl.(events.APIKeyCreated); ok {
			k := &cachedKey{keyID: v.KeyID, partnerID: v.PartnerID, env: v.Environment,
				publicKey: v.PublicKey, secretHash: v.SecretKeyHash, isActive: true}
			if v.ExpiresAt != nil {
				k.expiresAt = *v.ExpiresAt
			}
			k.hmacSecret, k.openErr = ledger.OpenSecret(c.masterKey, v.KeyID, v.HMACSecretSealed)
			opened[v.KeyID] = k
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, pl := range payloads {
		c.apply(pl, opened)
		c.rev = evs[i].Position
	}
	if c.rev < 0 {
		c.rev = 0 // loaded: an empty store has revision 0
	}
	if c.rev < want {
		// Positions are gap-free in commit order and want was read from
		// a committed state, so this read must have seen it.
		return fmt.Errorf("key cache: accounts revision %d not visible (read up to %d)", want, c.rev)
	}
	return nil
}

// apply folds one key event, as the accounts projection does; c.mu is held.
func (c *keyCache) apply(pl events.Payload, opened map[string]*cachedKey) {
	switch v := pl.(type) {
	case events.PartnerRegistered:
		if _, ok := c.partners[v.PartnerID]; !ok {
			c.partners[v.PartnerID] = cachedPartner{status: v.Status, tier: v.Tier}
		}
	case events.PartnerApproved:
		p := c.partners[v.PartnerID]
		p.status = ledger.PartnerActive
		c.partners[v.PartnerID] = p
	case events.PartnerSuspended:
		p := c.partners[v.PartnerID]
		p.status = ledger.PartnerSuspended
		c.partners[v.PartnerID] = p
	case events.PartnerTierChanged:
		p := c.partners[v.PartnerID]
		p.tier = v.To
		c.partners[v.PartnerID] = p
	case events.APIKeyCreated:
		if c.byID[v.KeyID] == nil {
			c.put(opened[v.KeyID])
		}
	case events.APIKeyUpdated:
		if old := c.byID[v.KeyID]; old != nil {
			k := *old
			if v.IsActive != nil {
				k.isActive = *v.IsActive
			}
			switch {
			case v.ClearExpiry:
				k.expiresAt = time.Time{}
			case v.ExpiresAt != nil:
				k.expiresAt = *v.ExpiresAt
			}
			c.put(&k)
		}
	case events.APIKeyRevoked:
		// Kept, marked, rather than dropped: a request naming a revoked
		// key still counts in its tenant's API usage.
		if old := c.byID[v.KeyID]; old != nil {
			k := *old
			k.isActive, k.revoked = false, true
			k.hmacSecret = "" // never needed again: do not keep it in memory
			c.put(&k)
		}
	}
}

func (c *keyCache) put(k *cachedKey) {
	c.byID[k.keyID] = k
	c.byPublic[k.publicKey] = k
	c.bySecret[k.secretHash] = k
}
