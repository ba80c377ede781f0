package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// The binary envelope carries every stored field exactly: what a consumer
// decodes from the broker re-hashes to the stored hash, as the JSON
// envelope did.
func TestBinaryEnvelopeRoundTripsEveryField(t *testing.T) {
	t.Parallel()
	e := Event{
		Position: 42, StreamID: "action-act_é", StreamVersion: 3, ID: uuid.New(), Type: "action.completed", SchemaVersion: 2,
		PartnerID: "ptr_1", Environment: "sandbox", Payload: json.RawMessage(`{"a":"<b>"}`), Metadata: json.RawMessage(`{"actor":"x"}`),
		RecordedAt: time.Date(2026, 12, 3, 7, 30, 1, 123456000, time.UTC), PrevHash: GenesisHash,
	}
	e.Hash = ComputeHash(&e)
	b, err := e.MarshalBinary()
	require.NoError(t, err)
	var got Event
	require.NoError(t, got.UnmarshalBinary(b))
	require.Equal(t, e, got)
	require.Equal(t, e.Hash, ComputeHash(&got))

	for i := 0; i < len(b); i++ {
		require.Error(t, new(Event).UnmarshalBinary(b[:i]), "a truncated envelope (%d of %d bytes) is refused", i, len(b))
	}
	require.Error(t, new(Event).UnmarshalBinary(append(b, 0)), "trailing bytes are refused")
}

// FuzzBinaryEnvelope: no input makes the decoder panic.
func FuzzBinaryEnvelope(f *testing.F) {
	e := Event{Position: 1, StreamID: "s", ID: uuid.New(), Type: "t", Payload: json.RawMessage(`{}`), RecordedAt: time.Unix(0, 0)}
	b, _ := e.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		_ = e.UnmarshalBinary(b)
	})
}
