// Package events defines the event envelope stored in the event store, the
// versioned payload types of every domain event, and the hash chain that
// makes the log tamper-evident. It is the leaf of the module: it imports
// nothing of ours, so every other package can depend on it.
package events

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Event is one immutable fact as stored in the event store. Position is
// global, gap-free and increases in commit order; StreamVersion counts from 1
// within StreamID.
type Event struct {
	Position      int64           `json:"position"`
	StreamID      string          `json:"streamId"`
	StreamVersion int64           `json:"streamVersion"`
	ID            uuid.UUID       `json:"eventId"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schemaVersion"`
	PartnerID     string          `json:"partnerId"`
	Environment   string          `json:"environment"`
	Payload       json.RawMessage `json:"payload"`
	Metadata      json.RawMessage `json:"metadata"`
	RecordedAt    time.Time       `json:"recordedAt"`
	PrevHash      []byte          `json:"prevHash"`
	Hash          []byte          `json:"hash"`
}

// Metadata travels with every event: who asked, under which request, and
// which earlier message caused it. It is part of the hashed record.
type Metadata struct {
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	Actor         string `json:"actor,omitempty"`
	RequestID     string `json:"requestId,omitempty"`
}

// GenesisHash is the PrevHash of the first event.
var GenesisHash = make([]byte, sha256.Size)

// ComputeHash returns the chained hash of e: SHA-256 over e.PrevHash followed
// by every other stored field in a fixed, length-prefixed binary layout. Any
// change to a stored field, or to the order of events, changes the hash.
// RecordedAt is hashed at microsecond precision, the precision PostgreSQL
// keeps.
func ComputeHash(e *Event) []byte {
	h := sha256.New()
	var num [8]byte
	writeInt := func(v int64) {
		binary.BigEndian.PutUint64(num[:], uint64(v))
		h.Write(num[:])
	}
	writeBytes := func(b []byte) {
		writeInt(int64(len(b)))
		h.Write(b)
	}
	writeBytes(e.PrevHash)
	writeInt(e.Position)
	writeBytes([]byte(e.StreamID))
	writeInt(e.StreamVersion)
	writeBytes(e.ID[:])
	writeBytes([]byte(e.Type))
	writeInt(int64(e.SchemaVersion))
	writeBytes([]byte(e.PartnerID))
	writeBytes([]byte(e.Environment))
	writeBytes(e.Payload)
	writeBytes(e.Metadata)
	writeInt(e.RecordedAt.UnixMicro())
	return h.Sum(nil)
}
