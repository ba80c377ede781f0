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
		} else if u, ok := p.(Upgrader); ok {
			if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+pgx.Identifier{Schema(p.Name())}.Sanitize()+`, public`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, u.Upgrade()); err != nil {
				return fmt.Errorf("projections: upgrade %s: %w", p.Name(), err)
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
	_, cp, err := applyBatchFrom(ctx, pool, p, evs)
	return cp, err
}

// applyBatchFrom is applyBatch that also returns the checkpoint the batch
// started from, so the caller can tell first applications from skips.
func applyBatchFrom(ctx context.Context, pool *pgxpool.Pool, p Projection, evs []events.Event) (from, cp int64, err error) {
	// One round trip opens the transaction, takes the apply lock
	// (serialises with a rebuild's swap, which takes the same lock) before
	// the checkpoint row, in that order, and sets the schema; one more
	// sends the writes, the checkpoint move and COMMIT (pipeTx).
	pro := &pgx.Batch{}
	pro.Queue("BEGIN")
	pro.Queue(`SELECT pg_advisory_xact_lock($1)`, applyLockKey(p.Name()))
	pro.Queue(`SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, p.Name()).QueryRow(func(row pgx.Row) error {
		return row.Scan(&cp)
	})
	pro.Queue(`SET LOCAL search_path TO ` + pgx.Identifier{Schema(p.Name())}.Sanitize() + `, public`)
	tx, err := beginPiped(ctx, pool, pro)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, 0, fmt.Errorf("projections: no checkpoint for %s", p.Name())
		}
		return 0, 0, err
	}
	defer tx.end()
	start := cp
	from = cp
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
				return from, start, err
			}
			if int64(len(missing)) != min(gap, maxGap) {
				return from, start, fmt.Errorf("projections: %s: event store has no position %d", p.Name(), cp+int64(len(missing))+1)
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
	if cp == start {
		return from, cp, tx.commitWith(ctx, &pgx.Batch{})
	}
	b := &Batch{Events: todo, From: start, Schema: Schema(p.Name()), Queue: &pgx.Batch{}}
	if err := applyEvents(ctx, tx, p, b); err != nil {
		return from, start, err
	}
	// The checkpoint moves in the same round trip as the last writes, and
	// the commit with them.
	b.Queue.Queue(checkpointSQL, p.Name(), cp)
	if err := tx.commitWith(ctx, b.Queue); err != nil {
		return from, start, fmt.Errorf("projections: %s apply positions %d..%d: %w", p.Name(), todo[0].Position, todo[len(todo)-1].Position, err)
	}
	for _, fn := range b.afterCommit {
		fn()
	}
	return from, cp, nil
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

// BatchApplier is implemented by projections that fold a whole batch of
// events with a few set-based statements per table instead of statements
// per event. The runtime then calls ApplyBatch, never Apply, for every
// batch it applies (live deliveries, hole fills, rebuild pages); the tables
// must end up exactly as Apply called event by event would leave them.
type BatchApplier interface {
	ApplyBatch(ctx context.Context, tx pgx.Tx, b *Batch) error
}

// Batch is what one transaction applies to one projection's schema.
type Batch struct {
	// Events are in position order, gap-free, the first right after From.
	Events []events.Event
	// From is the position the schema's tables reflect before Events (the
	// live checkpoint, read under its row lock, or a rebuild's progress).
	// In-memory state derived from the events up to exactly From describes
	// these tables, whichever process or schema derived it.
	From int64
	// Schema is the schema search_path points at while the batch applies.
	Schema string
	// Queue collects the batch's writes. The runtime sends them, in queue
	// order, after ApplyBatch returns, in one round trip together with the
	// checkpoint move; so a read on tx during ApplyBatch does not see them.
	Queue *pgx.Batch

	afterCommit []func()
}

// AfterCommit registers fn to run once the transaction that applies the
// batch has committed, and never if it rolls back: the place to publish
// in-memory state that must describe only committed tables.
func (b *Batch) AfterCommit(fn func()) { b.afterCommit = append(b.afterCommit, fn) }

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

// applyEvents applies b.Events, in order, inside tx: set-based when the
// projection can, else event by event. Writes may be left in b.Queue for
// the caller to send (sendQueued).
func applyEvents(ctx context.Context, tx pgx.Tx, p Projection, b *Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	if ba, ok := p.(BatchApplier); ok {
		if err := ba.ApplyBatch(ctx, tx, b); err != nil {
			return fmt.Errorf("projections: %s apply positions %d..%d: %w", p.Name(), b.Events[0].Position, b.Events[len(b.Events)-1].Position, err)
		}
		return nil
	}
	q, ok := p.(Queuer)
	if !ok {
		for _, e := range b.Events {
			if err := p.Apply(ctx, tx, e); err != nil {
				return fmt.Errorf("projections: %s apply position %d: %w", p.Name(), e.Position, err)
			}
		}
		return nil
	}
	for _, e := range b.Events {
		if err := q.Queue(ctx, b.Queue, e); err != nil {
			return fmt.Errorf("projections: %s queue position %d: %w", p.Name(), e.Position, err)
		}
		if b.Queue.Len() >= maxQueued {
			if err := sendQueued(ctx, tx, p, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendQueued sends b's queued statements in one round trip.
func sendQueued(ctx context.Context, tx pgx.Tx, p Projection, b *Batch) error {
	if b.Queue.Len() == 0 {
		return nil
	}
	q := b.Queue
	b.Queue = &pgx.Batch{}
	if err := tx.SendBatch(ctx, q).Close(); err != nil {
		first, last := b.From, b.From
		if len(b.Events) > 0 {
			first, last = b.Events[0].Position, b.Events[len(b.Events)-1].Position
		}
		return fmt.Errorf("projections: %s apply positions %d..%d: %w", p.Name(), first, last, err)
	}
	return nil
}
