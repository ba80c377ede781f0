package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/pgbin"
)

// Head returns the position of the last committed event (0 when empty).
func (s *Store) Head(ctx context.Context) (int64, error) {
	return ReadHead(ctx, s.pool)
}

// Querier is what read helpers need from a pool, a connection or a tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadHead returns the position of the last committed event.
func ReadHead(ctx context.Context, q Querier) (int64, error) {
	var p int64
	err := q.QueryRow(ctx, `SELECT position FROM event_head`).Scan(&p)
	return p, err
}

// ReadFrom returns up to limit committed events with position > after, in
// position order. Because positions are gap-free in commit order, a reader
// that resumes from the last position it saw never skips an event.
func ReadFrom(ctx context.Context, q Querier, after int64, limit int) ([]events.Event, error) {
	rows, err := q.Query(ctx, selectEvents+` WHERE position > $1 ORDER BY position LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanEvent)
}

// ReadStream returns every event of one stream in version order.
func ReadStream(ctx context.Context, q Querier, streamID string) ([]events.Event, error) {
	rows, err := q.Query(ctx, selectEvents+` WHERE stream_id = $1 ORDER BY stream_version`, streamID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanEvent)
}

// Filter selects events for export. Zero fields do not filter.
type Filter struct {
	PartnerID    string
	Environment  string
	StreamID     string
	FromPosition int64 // inclusive
	ToPosition   int64 // inclusive; 0 means the head
}

// Export calls fn for each event matching f, in position order, reading in
// pages so memory stays flat on any size of log.
func Export(ctx context.Context, q Querier, f Filter, fn func(events.Event) error) (int, error) {
	after := f.FromPosition - 1
	if after < 0 {
		after = 0
	}
	n := 0
	for {
		sql := selectEvents + ` WHERE position > $1 AND ($2 = '' OR partner_id = $2) AND ($3 = '' OR environment = $3)
			AND ($4 = '' OR stream_id = $4) AND ($5 = 0 OR position <= $5) ORDER BY position LIMIT 5000`
		rows, err := q.Query(ctx, sql, after, f.PartnerID, f.Environment, f.StreamID, f.ToPosition)
		if err != nil {
			return n, err
		}
		page, err := pgx.CollectRows(rows, scanEvent)
		if err != nil {
			return n, err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return n, err
			}
			n++
		}
		if len(page) < 5000 {
			return n, nil
		}
		after = page[len(page)-1].Position
	}
}

// VerifyReport is the outcome of walking the hash chain.
type VerifyReport struct {
	Checked int64
	Head    int64
	// FirstBad is the position of the first event that fails, 0 if none.
	FirstBad int64
	Reason   string
}

// OK reports whether the whole chain verified.
func (r VerifyReport) OK() bool { return r.FirstBad == 0 }

// Verify walks the whole log in position order and checks, for each event,
// that its position follows the previous one, that its prev_hash is the
// previous event's hash, and that its hash matches its content; finally that
// the head row points at the last event. It stops at the first failure.
func Verify(ctx context.Context, q Querier, progress func(checked int64)) (VerifyReport, error) {
	var rep VerifyReport
	var headHash []byte
	if err := q.QueryRow(ctx, `SELECT position, hash FROM event_head`).Scan(&rep.Head, &headHash); err != nil {
		return rep, err
	}
	prev := events.GenesisHash
	var last int64
	for {
		page, err := ReadFrom(ctx, q, last, 5000)
		if err != nil {
			return rep, err
		}
		for _, e := range page {
			switch {
			case e.Position != last+1:
				rep.FirstBad, rep.Reason = last+1, fmt.Sprintf("event at position %d is missing (next found: %d)", last+1, e.Position)
			case !bytes.Equal(e.PrevHash, prev):
				rep.FirstBad, rep.Reason = e.Position, "prev_hash does not match the previous event's hash"
			case !bytes.Equal(events.ComputeHash(&e), e.Hash):
				rep.FirstBad, rep.Reason = e.Position, "content does not match its hash (event was modified)"
			}
			if rep.FirstBad != 0 {
				return rep, nil
			}
			prev, last = e.Hash, e.Position
			rep.Checked++
		}
		if progress != nil {
			progress(rep.Checked)
		}
		if len(page) < 5000 {
			break
		}
	}
	if last != rep.Head {
		rep.FirstBad, rep.Reason = last+1, fmt.Sprintf("head says %d events but the log ends at %d (events removed)", rep.Head, last)
	} else if !bytes.Equal(prev, headHash) && last > 0 {
		rep.FirstBad, rep.Reason = last, "head hash does not match the last event"
	}
	return rep, nil
}

// ReadForReplay is ReadFrom for a rebuild's bulk phase, which reads the
// whole log once: it returns the same events with position, stream,
// id, type, schema version, tenant, payload and time, and leaves Metadata,
// PrevHash and Hash nil, which no read model derives anything from. It
// reads them in binary and shares the few distinct type and tenant strings
// across the page, so a million-event replay spends its time applying
// rather than decoding.
func ReadForReplay(ctx context.Context, q Querier, after int64, limit int) ([]events.Event, error) {
	rows, err := q.Query(ctx, `SELECT position, stream_id, stream_version, event_id, event_type, schema_version,
		partner_id, environment, payload, recorded_at FROM events WHERE position > $1 ORDER BY position LIMIT $2`,
		pgx.QueryResultFormats{pgx.BinaryFormatCode}, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]events.Event, 0, limit)
	intern := map[string]string{}
	str := func(b []byte) string {
		if s, ok := intern[string(b)]; ok {
			return s
		}
		s := string(b)
		intern[s] = s
		return s
	}
	// Payloads share large buffers rather than taking an allocation each.
	var arena []byte
	for rows.Next() {
		v := rows.RawValues()
		if len(v) != 10 || len(v[0]) != 8 || len(v[2]) != 8 || len(v[3]) != 16 || len(v[5]) != 4 || len(v[9]) != 8 {
			return nil, fmt.Errorf("eventstore: replay read: unexpected row shape")
		}
		var e events.Event
		e.Position = int64(binary.BigEndian.Uint64(v[0]))
		e.StreamID = string(v[1])
		e.StreamVersion = int64(binary.BigEndian.Uint64(v[2]))
		copy(e.ID[:], v[3])
		e.Type = str(v[4])
		e.SchemaVersion = int(int32(binary.BigEndian.Uint32(v[5])))
		e.PartnerID, e.Environment = str(v[6]), str(v[7])
		if len(arena)+len(v[8]) > cap(arena) {
			arena = make([]byte, 0, max(1<<20, len(v[8])))
		}
		start := len(arena)
		arena = append(arena, v[8]...)
		e.Payload = arena[start:len(arena):len(arena)]
		e.RecordedAt = pgbin.Time(int64(binary.BigEndian.Uint64(v[9])))
		out = append(out, e)
	}
	return out, rows.Err()
}

// InsideCommit reports whether the event at position is followed by
// another event of the same append, and if so the first position of that
// append. A state folded up to such a position is one no reader could
// ever have seen: commits are atomic. One append's events are contiguous
// and share their recorded_at; two appends recorded at the same
// microsecond would be taken for one, which can only widen what an audit
// excuses to a neighbouring commit.
func InsideCommit(ctx context.Context, q Querier, position int64) (int64, bool, error) {
	var at time.Time
	err := q.QueryRow(ctx, `SELECT a.recorded_at FROM events a JOIN events b ON b.position = a.position + 1
		AND b.recorded_at = a.recorded_at WHERE a.position = $1`, position).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	first := position
	for {
		rows, err := q.Query(ctx, `SELECT position, recorded_at FROM events WHERE position < $1 ORDER BY position DESC LIMIT 1000`, first)
		if err != nil {
			return 0, false, err
		}
		n, stop := 0, false
		for rows.Next() {
			var p int64
			var rec time.Time
			if err := rows.Scan(&p, &rec); err != nil {
				rows.Close()
				return 0, false, err
			}
			n++
			if stop || p != first-1 || !rec.Equal(at) {
				stop = true
				continue
			}
			first = p
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, false, err
		}
		if stop || n < 1000 {
			return first, true, nil
		}
	}
}
