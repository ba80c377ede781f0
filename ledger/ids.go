package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// idNamespace seeds the name-based UUIDs of ids that must be derived from
// partner input (so that a retry finds the same stream).
var idNamespace = uuid.MustParse("5d1f6f0e-2b8a-4c51-9c1e-7a0c4b9e3f21")

func derivedID(prefix string, parts ...string) string {
	return prefix + "_" + eventstore.HexUUID(uuid.NewSHA1(idNamespace, []byte(strings.Join(parts, "|"))))
}

// ActionID is the id of the action a partner submits with idempotencyKey in
// one environment: the same key always names the same action stream, which
// is what makes idempotency hold under any concurrency.
func ActionID(s eventstore.Tenant, idempotencyKey string) string {
	return derivedID("act", s.PartnerID, s.Environment, idempotencyKey)
}

// ActionStream is the stream of one action.
func ActionStream(actionID string) string { return "action-" + actionID }

// DefaultPoolID is the pool an action draws from when it names none: one
// per partner and environment. The sandbox one is provisioned with the
// partner; the production one by the first approved allocation request.
func DefaultPoolID(s eventstore.Tenant) string {
	if id, ok := defaultPools.Load(s); ok {
		return id.(string)
	}
	id := derivedID("pool", s.PartnerID, s.Environment, "default")
	defaultPools.Store(s, id)
	return id
}

// defaultPools memoizes DefaultPoolID: every submit asks for it at least
// twice, and each answer is a SHA-1. Tenants are few (a partner's two
// environments) and only authenticated keys name them.
var defaultPools sync.Map // eventstore.Tenant -> string

// EndUserID is the id of the end user a partner knows as externalID.
func EndUserID(s eventstore.Tenant, externalID string) string {
	return derivedID("pusr", s.PartnerID, s.Environment, externalID)
}

// EndUserStream is the stream of an end user, derived from the partner's
// external id so commands find it without an index.
func EndUserStream(s eventstore.Tenant, externalID string) string {
	h := sha256.Sum256([]byte(externalID))
	return "enduser-" + s.PartnerID + "-" + s.Environment + "-" + hex.EncodeToString(h[:])
}

func transactionID(actionID, kind string, i int) string {
	return derivedID("txn", actionID, kind, itoa(i))
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for i > 0 {
		b = append([]byte{digits[i%10]}, b...)
		i /= 10
	}
	return string(b)
}
