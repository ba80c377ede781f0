package eventstore

import (
	"context"
	"encoding/binary"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/pgbin"
)

// appendSQL appends one group commit.
const appendSQL = `SELECT append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`

// appendOIDs are the types of append_events' arguments, and appendFormats
// their format: every one is sent in binary.
var (
	appendOIDs = []uint32{oidInt8, oidInt8Array, oidTextArray, oidInt8Array, oidUUIDArray, oidTextArray, oidInt4Array,
		oidTextArray, oidTextArray, oidTextArray, oidTextArray, oidTimestamptzArray, oidByteaArray, oidByteaArray}
	appendFormats = []int16{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
)

// maxKeptAppendBuf bounds the encoding buffer a store keeps between group
// commits; a rare larger one is let go after its use.
const maxKeptAppendBuf = 4 << 20

// execAppend appends evs, which continue the chain at the store's known
// head, with append_events on conn, or on a connection of the pool when
// conn is nil. The arguments are encoded straight from the events into
// one buffer the committer reuses: through pgx's generic encoding, a group
// commit's arrays were built as Go slices first, then encoded into buffers
// grown from 256 bytes by doubling, which made this statement the largest
// allocator on the committer's path. The statement is sent unnamed, with
// its types, in the same single round trip: no prepared statement a
// connection could lose (a pooler, DISCARD ALL) or hold across a migration
// that redefines the function.
func (s *Store) execAppend(ctx context.Context, conn *pgx.Conn, evs []events.Event) error {
	if conn == nil {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer c.Release()
		conn = c.Conn()
	}
	var params [][]byte
	s.appendBuf, params = appendParams(s.appendBuf[:0], s.knownHead, evs)
	_, err := conn.PgConn().ExecParams(ctx, appendSQL, params, appendOIDs, appendFormats, nil).Close()
	if cap(s.appendBuf) > maxKeptAppendBuf {
		s.appendBuf = nil
	}
	return err
}

// PostgreSQL type oids of append_events' arguments and their elements.
const (
	oidBytea            = 17
	oidInt8             = 20
	oidInt4             = 23
	oidText             = 25
	oidTimestamptz      = 1184
	oidUUID             = 2950
	oidByteaArray       = 1001
	oidInt4Array        = 1007
	oidTextArray        = 1009
	oidInt8Array        = 1016
	oidTimestamptzArray = 1185
	oidUUIDArray        = 2951
)

// appendParams encodes the arguments of append_events for evs into buf,
// in PostgreSQL's binary format: expected_head, then one one-dimensional
// array per column, in evs' order. It returns buf and the arguments,
// slices of it.
func appendParams(buf []byte, expectedHead int64, evs []events.Event) ([]byte, [][]byte) {
	var ends [14]int
	buf = binary.BigEndian.AppendUint64(buf, uint64(expectedHead))
	ends[0] = len(buf)
	// header starts a one-dimensional array of n elements of type oid and
	// returns where its has-NULLs flag is.
	header := func(oid uint32) int {
		buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
		flags := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, 0) // no NULLs
		buf = binary.BigEndian.AppendUint32(buf, oid)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(evs)))
		buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
		return flags
	}
	column := func(i int, oid uint32, elem func(b []byte, e *events.Event) []byte) {
		header(oid)
		for j := range evs {
			at := len(buf)
			buf = append(buf, 0, 0, 0, 0) // the element's length, set below
			buf = elem(buf, &evs[j])
			binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
		}
		ends[i] = len(buf)
	}
	// A nil hash is sent as NULL, as pgx sends a nil []byte, so the
	// columns' NOT NULL refuses it rather than storing an empty hash that
	// the chain check would take for the link to the next event.
	hashes := func(i int, hash func(e *events.Event) []byte) {
		flags := header(oidBytea)
		for j := range evs {
			h := hash(&evs[j])
			if h == nil {
				binary.BigEndian.PutUint32(buf[flags:], 1) // has NULLs
				buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(h)))
			buf = append(buf, h...)
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
		return binary.BigEndian.AppendUint64(b, uint64(pgbin.Timestamptz(e.RecordedAt)))
	})
	hashes(12, func(e *events.Event) []byte { return e.PrevHash })
	hashes(13, func(e *events.Event) []byte { return e.Hash })
	params := make([][]byte, len(ends))
	from := 0
	for i, end := range ends {
		params[i] = buf[from:end]
		from = end
	}
	return buf, params
}
