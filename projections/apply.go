package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func applyLockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("projection-apply:" + name))
	return int64(h.Sum64())
}

// ensureSchema creates the projection's live schema and checkpoint row the
// first time it runs.
func ensureSchema(ctx context.Context, pool *pgxpool.Pool, p Projection) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLockKey(p.Name())); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, Schema(p.Name())).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if err := createSchema(ctx, tx, p, Schema(p.Name())); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT DO NOTHING`, p.Name())
		return err
	})
}

func createSchema(ctx context.Context, tx pgx.Tx, p Projection, schema string) error {
	id := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE SCHEMA `+id); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+id+`, public`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, p.Setup()); err != nil {
		return fmt.Errorf("projections: setup %s: %w", p.Name(), err)
	}
	return nil
}

// applyBatch applies evs (any order, possibly redelivered, possibly with
// holes) to the live read model in one transaction, filling holes from the
// event store, and returns the new checkpoint. Events at or below the
// checkpoint are skipped: that is what makes redelivery harmless.
func applyBatch(ctx context.Context, pool *pgxpool.Pool, p Projection, evs []events.Event) (int64, error) {
	var cp int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Serialises with a rebuild's swap, which takes the same lock.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLockKey(p.Name())); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, p.Name()).Scan(&cp); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("projections: no checkpoint for %s", p.Name())
			}
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+pgx.Identifier{Schema(p.Name())}.Sanitize()+`, public`); err != nil {
			return err
		}
		start := cp
		// The events to apply, in order: new ones, with any hole (JetStream
		// lost or re-ordered something) filled from PostgreSQL, the source
		// of truth.
		var todo []events.Event
		for _, e := range evs {
			if e.Position <= cp {
				continue
			}
			if gap := e.Position - cp - 1; gap > 0 {
				missing, err := eventstore.ReadFrom(ctx, tx, cp, int(min(gap, maxGap)))
				if err != nil {
					return err
				}
				if int64(len(missing)) != min(gap, maxGap) {
					return fmt.Errorf("projections: %s: event store has no position %d", p.Name(), cp+int64(len(missing))+1)
				}
				todo = append(todo, missing...)
				cp = missing[len(missing)-1].Position
				if gap > maxGap {
					// A huge hole (a new projection, a purged stream): fill
					// it a page per transaction; the events after it are
					// read from PostgreSQL by the next rounds.
					break
				}
			}
			todo = append(todo, e)
			cp = e.Position
		}
		if err := applyEvents(ctx, tx, p, todo); err != nil {
			return err
		}
		if cp == start {
			return nil
		}
		_, err := tx.Exec(ctx, checkpointSQL, p.Name(), cp)
		return err
	})
	return cp, err
}

// checkpointSQL moves a projection's checkpoint and, since it moved,
// clears any failure recorded by recordFailure.
const checkpointSQL = `UPDATE projection_checkpoints
	SET position = $2, updated_at = now(), last_error = NULL, failing_since = NULL WHERE name = $1`

// recordFailure notes, outside the failed transaction, why a projection
// could not advance, so `ledgerctl projections status` shows a stall and
// its cause rather than only a growing lag. Best effort: the failure is
// also logged and counted.
func recordFailure(ctx context.Context, pool *pgxpool.Pool, name string, cause error) {
	msg := cause.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	_, _ = pool.Exec(ctx, `UPDATE projection_checkpoints
		SET last_error = $2, failing_since = coalesce(failing_since, now()) WHERE name = $1`, name, msg)
}

// Queuer is implemented by projections whose Apply only writes (no reads
// of their own tables): they queue an event's statements into a shared
// batch, and the runtime sends a whole delivery's or rebuild page's worth
// in one round trip instead of one per event. Statements run in queue
// order, so the result is the same as calling Apply event by event.
type Queuer interface {
	Queue(ctx context.Context, b *pgx.Batch, e events.Event) error
}

// maxGap bounds how many missing events one transaction reads to fill a
// hole in what JetStream delivered.
const maxGap = 5000

// maxQueued bounds one round trip's statements.
const maxQueued = 2000

// applyEvents applies evs, in order, inside tx, then writes what the
// projection deferred to the end of the transaction (txBatch).
func applyEvents(ctx context.Context, tx pgx.Tx, p Projection, evs []events.Event) error {
	ctx, deferred := withTxBatch(ctx)
	if err := applyEach(ctx, tx, p, evs); err != nil {
		return err
	}
	if err := deferred.flush(ctx, tx); err != nil {
		return fmt.Errorf("projections: %s: %w", p.Name(), err)
	}
	return nil
}

func applyEach(ctx context.Context, tx pgx.Tx, p Projection, evs []events.Event) error {
	q, ok := p.(Queuer)
	if !ok {
		for _, e := range evs {
			if err := p.Apply(ctx, tx, e); err != nil {
				return fmt.Errorf("projections: %s apply position %d: %w", p.Name(), e.Position, err)
			}
		}
		return nil
	}
	b := &pgx.Batch{}
	// The positions in the batch, so a failed round trip names the events
	// an operator must look at.
	var first, last int64
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		err := tx.SendBatch(ctx, b).Close()
		b = &pgx.Batch{}
		if err != nil {
			return fmt.Errorf("projections: %s apply positions %d..%d: %w", p.Name(), first, last, err)
		}
		first = 0
		return nil
	}
	for _, e := range evs {
		if first == 0 {
			first = e.Position
		}
		last = e.Position
		if err := q.Queue(ctx, b, e); err != nil {
			return fmt.Errorf("projections: %s queue position %d: %w", p.Name(), e.Position, err)
		}
		if b.Len() >= maxQueued {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
