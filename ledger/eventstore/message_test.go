package eventstore_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Consumers read both envelopes: the binary one the relay publishes, and
// the JSON one earlier releases published, which a stream may still hold.
func TestEventOfReadsBothEnvelopes(t *testing.T) {
	t.Parallel()
	e := events.Event{Position: 7, StreamID: "note-x", StreamVersion: 1, ID: uuid.New(), Type: "test.note", SchemaVersion: 1,
		PartnerID: "p1", Environment: "sandbox", Payload: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(`{}`),
		RecordedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), PrevHash: events.GenesisHash}
	e.Hash = events.ComputeHash(&e)

	msg, err := eventstore.Message(bus.Config{}, e)
	require.NoError(t, err)
	require.Equal(t, bus.EncodingBinary, msg.Header.Get(bus.HeaderEncoding))
	require.Equal(t, "7", msg.Header.Get(bus.HeaderPosition))
	got, err := eventstore.EventOf(msg.Header, msg.Data)
	require.NoError(t, err)
	require.Equal(t, e, got)

	old, err := json.Marshal(e)
	require.NoError(t, err)
	got, err = eventstore.EventOf(nats.Header{}, old)
	require.NoError(t, err)
	require.Equal(t, e.Hash, events.ComputeHash(&got), "a JSON envelope still verifies")
}
