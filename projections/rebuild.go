package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
)

// RebuildProgress is reported while a rebuild replays the event store.
type RebuildProgress struct {
	Projection string
	Position   int64
	Head       int64
	Elapsed    time.Duration
}

// Rebuild replays the whole PostgreSQL event store (never JetStream) into a
// fresh schema, then, in one transaction that excludes the live projector,
// applies the events committed meanwhile and swaps the fresh schema in for
// the live one. Queries keep being served from the old tables until the
// swap commits. Side effects are suppressed throughout (Replaying).
// It returns the position the rebuilt model is at.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, p Projection, progress func(RebuildProgress)) (int64, error) {
	if err := checkName(p); err != nil {
		return 0, err
	}
	if err := ensureSchema(ctx, pool, p); err != nil {
		return 0, err
	}
	// One rebuild per projection at a time: a second would drop the first's
	// scratch schema under it.
	guard, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer guard.Release()
	key := applyLockKey("rebuild:" + p.Name())
	var got bool
	if err := guard.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return 0, err
	}
	if !got {
		return 0, fmt.Errorf("projections: a rebuild of %s is already running", p.Name())
	}
	defer guard.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key) //nolint:errcheck
	start := time.Now()
	live := Schema(p.Name())
	fresh := live + "_rebuild"
	freshID := pgx.Identifier{fresh}.Sanitize()
	rctx := withReplay(ctx)

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+freshID+` CASCADE`); err != nil {
			return err
		}
		return createSchema(ctx, tx, p, fresh)
	})
	if err != nil {
		return 0, err
	}

	// Bulk phase, outside the swap lock: one transaction per page keeps
	// transactions short while live traffic continues.
	var pos int64
	for {
		var n int
		hctx, hooks := withCommitHooks(rctx)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			*hooks = nil
			// A crash loses only scratch tables a new rebuild drops, so
			// the bulk phase need not wait for each page's fsync; the swap
			// below commits synchronously.
			if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+freshID+`, public; SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
			var err error
			pos, n, err = replayPage(hctx, tx, p, fresh, pos)
			return err
		})
		if err != nil {
			return 0, err
		}
		runHooks(hooks)
		if progress != nil {
			head, _ := ledger.ReadHead(ctx, pool)
			progress(RebuildProgress{Projection: p.Name(), Position: pos, Head: head, Elapsed: time.Since(start)})
		}
		if n < rebuildPage {
			break
		}
	}

	// Swap phase: exclude the live projector, catch up the tail, rename.
	hctx, hooks := withCommitHooks(rctx)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		*hooks = nil
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLockKey(p.Name())); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+freshID+`, public`); err != nil {
			return err
		}
		for {
			var n int
			var err error
			if pos, n, err = replayPage(hctx, tx, p, fresh, pos); err != nil {
				return err
			}
			if n < rebuildPage {
				break
			}
		}
		liveID := pgx.Identifier{live}.Sanitize()
		oldID := pgx.Identifier{live + "_old"}.Sanitize()
		for _, stmt := range []string{
			`DROP SCHEMA IF EXISTS ` + oldID + ` CASCADE`,
			`ALTER SCHEMA ` + liveID + ` RENAME TO ` + pgx.Identifier{live + "_old"}.Sanitize(),
			`ALTER SCHEMA ` + freshID + ` RENAME TO ` + pgx.Identifier{live}.Sanitize(),
			`DROP SCHEMA ` + oldID + ` CASCADE`,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, checkpointSQL, p.Name(), pos)
		return err
	})
	if err != nil {
		return 0, err
	}
	runHooks(hooks)
	if progress != nil {
		progress(RebuildProgress{Projection: p.Name(), Position: pos, Head: pos, Elapsed: time.Since(start)})
	}
	return pos, nil
}

// rebuildPage is how many events one rebuild transaction reads and
// applies: large, so set-based projections write each table a few times
// per tens of thousands of events.
const rebuildPage = 20000

// replayPage applies up to one page of events after pos and returns the
// new position and how many events it applied.
func replayPage(ctx context.Context, tx pgx.Tx, p Projection, schema string, pos int64) (int64, int, error) {
	evs, err := ledger.ReadFrom(ctx, tx, pos, rebuildPage)
	if err != nil {
		return pos, 0, err
	}
	if err := replayEvents(ctx, tx, p, schema, pos, evs); err != nil {
		return pos, 0, err
	}
	if len(evs) > 0 {
		pos = evs[len(evs)-1].Position
	}
	return pos, len(evs), nil
}

// replayEvents applies evs, the events right after pos, to schema.
// In-memory state a projection publishes after commit is published when
// the caller's transaction commits (see commitHooks).
func replayEvents(ctx context.Context, tx pgx.Tx, p Projection, schema string, pos int64, evs []events.Event) error {
	b := &Batch{Events: evs, From: pos, Schema: schema, Queue: &pgx.Batch{}}
	if err := applyEvents(ctx, tx, p, b); err != nil {
		return fmt.Errorf("projections: rebuild: %w", err)
	}
	if err := sendQueued(ctx, tx, p, b); err != nil {
		return fmt.Errorf("projections: rebuild: %w", err)
	}
	if hooks := commitHooksFrom(ctx); hooks != nil {
		*hooks = append(*hooks, b.afterCommit...)
	}
	return nil
}

type commitHooksKey struct{}

// withCommitHooks gives a transaction's replays a place to leave their
// after-commit functions; the caller runs them once it committed.
func withCommitHooks(ctx context.Context) (context.Context, *[]func()) {
	var hooks []func()
	return context.WithValue(ctx, commitHooksKey{}, &hooks), &hooks
}

func commitHooksFrom(ctx context.Context) *[]func() {
	h, _ := ctx.Value(commitHooksKey{}).(*[]func())
	return h
}

// runHooks runs after-commit functions, then forgets them.
func runHooks(hooks *[]func()) {
	for _, fn := range *hooks {
		fn()
	}
	*hooks = nil
}

// Status is one projection's position and lag, and, while it cannot
// advance, why and since when.
type Status struct {
	Name      string
	Position  int64
	Head      int64
	Lag       int64
	UpdatedAt time.Time
	// LastError is empty unless the latest attempt to advance failed.
	LastError    string
	FailingSince *time.Time
}

// Statuses reports every projection that has a checkpoint.
func Statuses(ctx context.Context, q ledger.Querier) ([]Status, error) {
	head, err := ledger.ReadHead(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT name, position, updated_at, coalesce(last_error, ''), failing_since
		FROM projection_checkpoints ORDER BY name`)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Status, error) {
		var s Status
		err := row.Scan(&s.Name, &s.Position, &s.UpdatedAt, &s.LastError, &s.FailingSince)
		s.Head, s.Lag = head, head-s.Position
		return s, err
	})
	return out, err
}
