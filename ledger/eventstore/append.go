package eventstore

import (
	"context"
	"encoding/binary"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
)

// appendSQL appends one group commit; appendStmt is its prepared name on
// each connection.
const (
	appendSQL  = `SELECT append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`
	appendStmt = "ledger_append_events"
)

// appendFormats: every argument of append_events is sent in binary.
var appendFormats = []int16{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

// maxKeptAppendBuf bounds the encoding buffer a store keeps between group
// commits; a rare larger one is let go after its use.
const maxKeptAppendBuf = 4 << 20

// execAppend appends evs, which continue the chain at the store's known
// head, with append_events on conn, or on a connection of the pool when
// conn is nil. The arguments are encoded straight from the events into
// one buffer the committer reuses: through pgx's generic encoding, a group
// commit's arrays were built as Go slices first, then encoded into buffers
// grown from 256 bytes by doubling, which made this statement the largest
// allocator on the committer's path.
func (s *Store) execAppend(ctx context.Context, conn *pgx.Conn, evs []events.Event) error {
	if conn == nil {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer c.Release()
		conn = c.Conn()
	}
	if _, err := conn.Prepare(ctx, appendStmt, appendSQL); err != nil {
		return err
	}
	var params [][]byte
	s.appendBuf, params = appendParams(s.appendBuf[:0], s.knownHead, evs)
	_, err := conn.PgConn().ExecPrepared(ctx, appendStmt, params, appendFormats, nil).Close()
	if cap(s.appendBuf) > maxKeptAppendBuf {
		s.appendBuf = nil
	}
	return err
}

// PostgreSQL type oids of append_events' array elements.
const (
	oidBytea       = 17
	oidInt8        = 20
	oidInt4        = 23
	oidText        = 25
	oidTimestamptz = 1184
	oidUUID        = 2950
)

// appendParams encodes the arguments of append_events for evs into buf,
// in PostgreSQL's binary format: expected_head, then one one-dimensional
// array per column, in evs' order. It returns buf and the arguments,
// slices of it.
func appendParams(buf []byte, expectedHead int64, evs []events.Event) ([]byte, [][]byte) {
	var ends [14]int
	buf = binary.BigEndian.AppendUint64(buf, uint64(expectedHead))
	ends[0] = len(buf)
	column := func(i int, oid uint32, elem func(b []byte, e *events.Event) []byte) {
		buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
		buf = binary.BigEndian.AppendUint32(buf, 0) // no NULLs
		buf = binary.BigEndian.AppendUint32(buf, oid)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(evs)))
		buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
		for j := range evs {
			at := len(buf)
			buf = append(buf, 0, 0, 0, 0) // the element's length, set below
			buf = elem(buf, &evs[j])
			binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
		}
		ends[i] = len(buf)
	}
	column(1, oidInt8, func(b []byte, e *events.Event) []byte { return binary.BigEndian.AppendUint64(b, uint64(e.Position)) })
	column(2, oidText, func(b []byte, e *events.Event) []byte { return append(b, e.StreamID...) })
	column(3, oidInt8, func(b []byte, e *events.Event) []byte {
		return binary.BigEndian.AppendUint64(b, uint64(e.StreamVersion))
	})
	column(4, oidUUID, func(b []byte, e *events.Event) []byte { return append(b, e.ID[:]...) })
	column(5, oidText, func(b []byte, e *events.Event) []byte { return append(b, e.Type...) })
	column(6, oidInt4, func(b []byte, e *events.Event) []byte {
		return binary.BigEndian.AppendUint32(b, uint32(e.SchemaVersion))
	})
	column(7, oidText, func(b []byte, e *events.Event) []byte { return append(b, e.PartnerID...) })
	column(8, oidText, func(b []byte, e *events.Event) []byte { return append(b, e.Environment...) })
	column(9, oidText, func(b []byte, e *events.Event) []byte { return append(b, e.Payload...) })
	column(10, oidText, func(b []byte, e *events.Event) []byte { return append(b, e.Metadata...) })
	column(11, oidTimestamptz, func(b []byte, e *events.Event) []byte {
		const unixToY2K = 946684800 * 1000000 // microseconds from 1970 to 2000, PostgreSQL's epoch
		return binary.BigEndian.AppendUint64(b, uint64(e.RecordedAt.UnixMicro()-unixToY2K))
	})
	column(12, oidBytea, func(b []byte, e *events.Event) []byte { return append(b, e.PrevHash...) })
	column(13, oidBytea, func(b []byte, e *events.Event) []byte { return append(b, e.Hash...) })
	params := make([][]byte, len(ends))
	from := 0
	for i, end := range ends {
		params[i] = buf[from:end]
		from = end
	}
	return buf, params
}
