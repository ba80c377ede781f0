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

// BinarySize is the envelope's exact length, whatever the varints take
// (zero, one byte, nine; negative times), so a relay message body sized
// with it is never reallocated or short; AppendBinary appends exactly
// MarshalBinary's bytes after what the buffer held.
func TestBinarySizeIsExact(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, 300))
	for _, e := range []Event{
		{},
		{Position: 1, StreamID: "s", Type: "t", SchemaVersion: 1, Payload: json.RawMessage(`{}`), RecordedAt: time.Unix(0, 0)},
		{Position: 1<<62 + 5, StreamID: long, StreamVersion: 1 << 40, ID: uuid.New(), Type: long, SchemaVersion: 300,
			PartnerID: long, Environment: "sandbox", Payload: json.RawMessage(long + long), Metadata: json.RawMessage(long),
			RecordedAt: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), PrevHash: GenesisHash, Hash: GenesisHash},
		{Position: -64, StreamVersion: -1, SchemaVersion: -65, RecordedAt: time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		b, err := e.MarshalBinary()
		require.NoError(t, err)
		require.Len(t, b, e.BinarySize())
		require.Equal(t, len(b), cap(b), "MarshalBinary allocates exactly")
		prefix := []byte("xyz")
		got, err := e.AppendBinary(prefix)
		require.NoError(t, err)
		require.Equal(t, append([]byte("xyz"), b...), got)
	}
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
