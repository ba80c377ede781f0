package eventstore

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
)

// appendParams writes append_events' arguments by hand; each must be
// byte for byte what pgx's own binary encoding of the same Go values is
// (the form the store sent before), for the edge cases of every column:
// empty and non-ASCII text, escaped NUL in JSON, nil metadata, values past
// 32 bits, a time before 1970 in another zone, and a nil hash (NULL).
func TestAppendParamsEncodeAsPgxDoes(t *testing.T) {
	t.Parallel()
	evs := []events.Event{
		{Position: 1, StreamID: "a-é", StreamVersion: 1, ID: uuid.New(), Type: "T", SchemaVersion: 1, PartnerID: "",
			Environment: "sandbox", Payload: []byte(`{"x":"\u0000"}`), Metadata: nil,
			RecordedAt: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), PrevHash: make([]byte, 32), Hash: nil},
		{Position: 1 << 40, StreamID: "b", StreamVersion: 1 << 33, ID: uuid.New(), Type: "U", SchemaVersion: 70000,
			PartnerID: "p", Environment: "", Payload: []byte(`{}`), Metadata: []byte(`{"a":1}`),
			RecordedAt: time.Date(2026, 12, 3, 1, 2, 3, 456789000, time.FixedZone("x", 3600)), PrevHash: []byte{1, 2}, Hash: make([]byte, 32)},
	}
	_, params := appendParams(nil, 12345, evs)

	var pos, ver []int64
	var sid, typ, pid, env, pl, md []string
	var id []pgtype.UUID
	var sv []int32
	var rec []time.Time
	var ph, h [][]byte
	for _, e := range evs {
		pos, ver, sid = append(pos, e.Position), append(ver, e.StreamVersion), append(sid, e.StreamID)
		typ, pid, env = append(typ, e.Type), append(pid, e.PartnerID), append(env, e.Environment)
		pl, md = append(pl, string(e.Payload)), append(md, string(e.Metadata))
		id, sv = append(id, pgtype.UUID{Bytes: e.ID, Valid: true}), append(sv, int32(e.SchemaVersion))
		rec, ph, h = append(rec, e.RecordedAt), append(ph, e.PrevHash), append(h, e.Hash)
	}
	want := []any{int64(12345), pos, sid, ver, id, typ, sv, pid, env, pl, md, rec, ph, h}
	require.Len(t, params, len(want))
	m := pgtype.NewMap()
	for i, v := range want {
		b, err := m.Encode(appendOIDs[i], pgtype.BinaryFormatCode, v, nil)
		require.NoError(t, err)
		require.Equal(t, b, params[i], "argument $%d", i+1)
	}
}
