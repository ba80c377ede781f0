package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
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
	return rebuildPaged(ctx, pool, p, progress, rebuildPage)
}

// rebuildPaged is Rebuild with the bulk phase reading page events at a
// time (tests make pages small to cross page boundaries everywhere).
func rebuildPaged(ctx context.Context, pool *pgxpool.Pool, p Projection, progress func(RebuildProgress), page int) (int64, error) {
	if err := checkName(p); err != nil {
		return 0, err
	}
	if err := ensureSchema(ctx, pool, p); err != nil {
		return 0, err
	}
	release, err := lockRebuild(ctx, pool, p)
	if err != nil {
		return 0, err
	}
	defer release()
	live := Schema(p.Name())
	rb := &rebuild{ctx: ctx, rctx: withReplay(ctx), pool: pool, p: p, progress: progress, start: time.Now(), page: page,
		live: live, fresh: live + "_rebuild", freshID: pgx.Identifier{live + "_rebuild"}.Sanitize()}
	deferred, err := rb.prepare()
	if err != nil {
		return 0, err
	}
	var pos int64
	if bl, ok := p.(BulkLoader); ok {
		pos, err = rb.bulkLoad(bl)
	} else {
		pos, err = rb.bulk()
	}
	if err != nil {
		return 0, err
	}
	if err := rb.buildIndexes(deferred); err != nil {
		return 0, err
	}
	if pos, err = rb.swap(pos); err != nil {
		return 0, err
	}
	if progress != nil {
		progress(RebuildProgress{Projection: p.Name(), Position: pos, Head: pos, Elapsed: time.Since(rb.start)})
	}
	return pos, nil
}

// lockRebuild allows one rebuild per projection at a time: a second would
// drop the first's scratch schema under it.
func lockRebuild(ctx context.Context, pool *pgxpool.Pool, p Projection) (release func(), err error) {
	guard, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	key := applyLockKey("rebuild:" + p.Name())
	var got bool
	if err := guard.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		guard.Release()
		return nil, err
	}
	if !got {
		guard.Release()
		return nil, fmt.Errorf("projections: a rebuild of %s is already running", p.Name())
	}
	return func() {
		_, _ = guard.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
		guard.Release()
	}, nil
}

// rebuild is one rebuild in progress: the live schema, the scratch one it
// fills, and how to report.
type rebuild struct {
	ctx, rctx            context.Context // rctx marks the replay for side-effecting projections
	pool                 *pgxpool.Pool
	p                    Projection
	progress             func(RebuildProgress)
	start                time.Time
	page                 int // events per bulk page
	live, fresh, freshID string
}

// prepare creates the scratch schema, and returns the CREATE INDEX
// statements of the secondary indexes a BulkRebuilder builds after the
// bulk phase instead of row by row.
func (rb *rebuild) prepare() (deferred []string, err error) {
	ctx, p, fresh, freshID := rb.ctx, rb.p, rb.fresh, rb.freshID
	err = pgx.BeginFunc(ctx, rb.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+freshID+` CASCADE`); err != nil {
			return err
		}
		if err := createSchema(ctx, tx, p, fresh); err != nil {
			return err
		}
		if cd, ok := p.(ConstraintDeferrer); ok {
			var err error
			if deferred, err = dropConstraints(ctx, tx, fresh, cd.RebuildDeferredConstraints()); err != nil {
				return err
			}
		}
		if br, ok := p.(BulkRebuilder); ok && br.RebuildWithoutIndexes() {
			defs, err := dropSecondaryIndexes(ctx, tx, fresh)
			deferred = append(deferred, defs...)
			return err
		}
		return nil
	})
	return deferred, err
}

// bulk replays the event store into the scratch schema, outside the swap
// lock: one transaction per page keeps transactions short while live
// traffic continues. The next page is read on another connection while
// this one applies, so reading the store overlaps writing the tables.
func (rb *rebuild) bulk() (int64, error) {
	ctx, pool, p, fresh, freshID := rb.ctx, rb.pool, rb.p, rb.fresh, rb.freshID
	pages, stopReading := readAhead(ctx, pool, eventstore.ReadFrom, rb.page)
	defer stopReading()
	var pos int64
	for {
		pg, ok := <-pages
		if !ok {
			return 0, ctx.Err()
		}
		if pg.err != nil {
			return 0, pg.err
		}
		hctx, hooks := withCommitHooks(rb.rctx)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			*hooks = nil
			// A crash loses only scratch tables a new rebuild drops, so
			// the bulk phase need not wait for each page's fsync; the swap
			// commits synchronously.
			if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+freshID+`, public; SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
			return replayEvents(hctx, tx, p, fresh, pos, pg.evs)
		})
		if err != nil {
			return 0, err
		}
		runHooks(hooks)
		if len(pg.evs) > 0 {
			pos = pg.evs[len(pg.evs)-1].Position
		}
		if rb.progress != nil {
			head, _ := eventstore.ReadHead(ctx, pool)
			rb.progress(RebuildProgress{Projection: p.Name(), Position: pos, Head: head, Elapsed: time.Since(rb.start)})
		}
		if len(pg.evs) < rb.page {
			return pos, nil
		}
	}
}

// BulkLoader is implemented by projections that fill a rebuild's fresh
// tables faster than ApplyBatch can, by exploiting what only a rebuild
// has: tables nobody else reads or writes until the swap, and the whole
// log in order. The tail the swap applies goes through ApplyBatch as
// usual, so the tables must end up exactly as ApplyBatch (and Apply)
// would leave them. A bulk load may cause no side effect and register no
// after-commit hook.
type BulkLoader interface {
	NewBulkLoad() BulkLoad
}

// BulkLoad is one rebuild's bulk phase of a BulkLoader. Fold is called on
// one goroutine with each page in order (events from
// eventstore.ReadForReplay: no metadata or hashes) and may keep state
// across pages; it does no I/O. The writes it returns run in page order on
// another goroutine, each in its own transaction with search_path at the
// fresh schema, while Fold takes the next page: writes may not rely on
// state Fold changes later. Finish returns the writes of whatever Fold
// still holds; they run after the last page's.
type BulkLoad interface {
	Fold(evs []events.Event) (BulkWrites, error)
	Finish() (BulkWrites, error)
}

// BulkWrite writes what a BulkLoad folded, inside tx.
type BulkWrite func(ctx context.Context, tx pgx.Tx) error

// BulkWrites are one page's writes. Side, when set, runs on a second
// connection, in its own transaction, while Main runs: it may only write
// what no statement of Main (of any page) reads or changes, such as rows
// only ever appended to a table without unique indexes, so that the two
// commute. Either failing fails the rebuild.
type BulkWrites struct {
	Main, Side BulkWrite
}

// bulkLoad is bulk for a BulkLoader: reading page N+2, folding page N+1
// and writing page N overlap, on two connections (three with side writes)
// and two goroutines.
func (rb *rebuild) bulkLoad(bl BulkLoader) (int64, error) {
	ctx, cancel := context.WithCancel(rb.ctx)
	defer cancel()
	pages, stopReading := readAhead(ctx, rb.pool, eventstore.ReadForReplay, rb.page)
	defer stopReading()
	type folded struct {
		writes BulkWrites
		pos    int64
		last   bool
		err    error
	}
	writes := make(chan folded, 1)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		load := bl.NewBulkLoad()
		var pos int64
		for {
			var f folded
			select {
			case pg, ok := <-pages:
				switch {
				case !ok:
					// The reader stops early only when cancelled.
					if f.err = ctx.Err(); f.err == nil {
						f.err = errors.New("event reader stopped")
					}
				case pg.err != nil:
					f.err = pg.err
				default:
					f.writes, f.err = load.Fold(pg.evs)
					if len(pg.evs) > 0 {
						pos = pg.evs[len(pg.evs)-1].Position
					}
					f.pos, f.last = pos, len(pg.evs) < rb.page
					if f.last && f.err == nil {
						var rest BulkWrites
						rest, f.err = load.Finish()
						f.writes = BulkWrites{Main: thenWrite(f.writes.Main, rest.Main), Side: thenWrite(f.writes.Side, rest.Side)}
					}
				}
			case <-ctx.Done():
				return
			}
			select {
			case writes <- f:
			case <-ctx.Done():
				return
			}
			if f.last || f.err != nil {
				return
			}
		}
	}()
	for f := range writes {
		if f.err != nil {
			return 0, fmt.Errorf("projections: rebuild %s: %w", rb.p.Name(), f.err)
		}
		run := func(w BulkWrite) error {
			return pgx.BeginFunc(ctx, rb.pool, func(tx pgx.Tx) error {
				// As in bulk: a crash loses only scratch tables.
				if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+rb.freshID+`, public; SET LOCAL synchronous_commit = off`); err != nil {
					return err
				}
				if w == nil {
					return nil
				}
				return w(ctx, tx)
			})
		}
		var side chan error
		if f.writes.Side != nil {
			side = make(chan error, 1)
			go func() { side <- run(f.writes.Side) }()
		}
		err := run(f.writes.Main)
		if side != nil {
			if serr := <-side; err == nil {
				err = serr
			}
		}
		if err != nil {
			return 0, fmt.Errorf("projections: rebuild %s: %w", rb.p.Name(), err)
		}
		if rb.progress != nil {
			head, _ := eventstore.ReadHead(ctx, rb.pool)
			rb.progress(RebuildProgress{Projection: rb.p.Name(), Position: f.pos, Head: head, Elapsed: time.Since(rb.start)})
		}
		if f.last {
			return f.pos, nil
		}
	}
	return 0, ctx.Err()
}

// thenWrite runs a, then b; either may be nil.
func thenWrite(a, b BulkWrite) BulkWrite {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return func(ctx context.Context, tx pgx.Tx) error {
		if err := a(ctx, tx); err != nil {
			return err
		}
		return b(ctx, tx)
	}
}

// buildIndexes builds the deferred indexes once, from the loaded tables,
// still outside the swap lock, on indexBuilders connections at once: each
// build is one backend's sort, and the bulk phase that kept every core
// busy is over.
func (rb *rebuild) buildIndexes(deferred []string) error {
	if len(deferred) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(rb.ctx)
	defer cancel()
	todo := make(chan string, len(deferred))
	for _, def := range deferred {
		todo <- def
	}
	close(todo)
	errs := make(chan error, indexBuilders)
	for range min(indexBuilders, len(deferred)) {
		go func() {
			errs <- func() error {
				for def := range todo {
					err := pgx.BeginFunc(ctx, rb.pool, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, `SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL synchronous_commit = off`); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, def)
						return err
					})
					if err != nil {
						cancel()
						return fmt.Errorf("projections: rebuild %s: %s: %w", rb.p.Name(), def, err)
					}
				}
				return nil
			}()
		}()
	}
	var first error
	for range min(indexBuilders, len(deferred)) {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// indexBuilders is how many deferred indexes a rebuild builds at once.
const indexBuilders = 2

// swap excludes the live projector, catches up the tail committed since
// the bulk phase, and renames the scratch schema in, in one transaction.
func (rb *rebuild) swap(pos int64) (int64, error) {
	ctx, p, fresh, freshID, live := rb.ctx, rb.p, rb.fresh, rb.freshID, rb.live
	hctx, hooks := withCommitHooks(rb.rctx)
	err := pgx.BeginFunc(ctx, rb.pool, func(tx pgx.Tx) error {
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
			`ALTER SCHEMA ` + liveID + ` RENAME TO ` + oldID,
			`ALTER SCHEMA ` + freshID + ` RENAME TO ` + liveID,
			`DROP SCHEMA ` + oldID + ` CASCADE`,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, checkpointSQL, p.Name(), pos)
		return err
	})
	if err != nil {
		return 0, err
	}
	runHooks(hooks)
	return pos, nil
}

// BulkRebuilder is implemented by projections whose Apply finds existing
// rows by primary or unique keys only, never through another index of
// theirs. For them a rebuild drops the other indexes of the fresh tables
// before replaying and builds each once, from the loaded rows, before the
// swap: far cheaper than maintaining them row by row (a GIN index above
// all), and invisible to queries, which see only the swapped-in tables.
// Unique indexes stay throughout: they are upsert arbiters and refuse
// duplicates exactly as the live tables do.
type BulkRebuilder interface {
	RebuildWithoutIndexes() bool
}

// ConstraintDeferrer is implemented by projections with unique
// constraints that none of their statements relies on (no ON CONFLICT
// names them, no lookup needs their index). A rebuild drops them from the
// fresh tables before replaying and adds them back before the swap,
// building each index once from the loaded rows instead of row by row. A
// duplicate then fails the rebuild there rather than at its insert: either
// way no model with it is swapped in, as the live apply would stop on it.
type ConstraintDeferrer interface {
	RebuildDeferredConstraints() []string
}

// dropConstraints drops the named constraints of schema's tables, and
// returns the statements that add them back, first, as they are on the
// largest tables.
func dropConstraints(ctx context.Context, tx pgx.Tx, schema string, names []string) ([]string, error) {
	var adds []string
	for _, name := range names {
		var table, def string
		err := tx.QueryRow(ctx, `SELECT format('%I.%I', n.nspname, t.relname), pg_get_constraintdef(c.oid)
			FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = c.connamespace
			WHERE n.nspname = $1 AND c.conname = $2`, schema, name).Scan(&table, &def)
		if err != nil {
			return nil, fmt.Errorf("projections: deferred constraint %s: %w", name, err)
		}
		id := pgx.Identifier{name}.Sanitize()
		if _, err := tx.Exec(ctx, `ALTER TABLE `+table+` DROP CONSTRAINT `+id); err != nil {
			return nil, err
		}
		adds = append(adds, `ALTER TABLE `+table+` ADD CONSTRAINT `+id+` `+def)
	}
	return adds, nil
}

// dropSecondaryIndexes drops schema's indexes that are neither unique nor
// behind a constraint, and returns the statements that recreate them.
func dropSecondaryIndexes(ctx context.Context, tx pgx.Tx, schema string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT pg_get_indexdef(i.indexrelid), format('%I.%I', n.nspname, c.relname)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND NOT i.indisunique AND NOT i.indisprimary
			AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
		ORDER BY c.relname`, schema)
	if err != nil {
		return nil, err
	}
	var defs, names []string
	for rows.Next() {
		var def, name string
		if err := rows.Scan(&def, &name); err != nil {
			rows.Close()
			return nil, err
		}
		defs, names = append(defs, def), append(names, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, name := range names {
		if _, err := tx.Exec(ctx, `DROP INDEX `+name); err != nil {
			return nil, err
		}
	}
	return defs, nil
}

// rebuildPage is how many events one rebuild transaction reads and
// applies: large, so set-based projections write each table a few times
// per tens of thousands of events.
const rebuildPage = 20000

type page struct {
	evs []events.Event
	err error
}

// readAhead reads the event store with read from the start, size events at a time, one
// page ahead of its consumer, until a short page or an error (both sent).
// Each read is a prefix of the committed log whatever snapshot it sees,
// since positions are gap-free in commit order. stop ends it early.
func readAhead(ctx context.Context, pool *pgxpool.Pool, read func(context.Context, eventstore.Querier, int64, int) ([]events.Event, error), size int) (<-chan page, func()) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan page, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		var after int64
		for {
			evs, err := read(ctx, pool, after, size)
			select {
			case out <- page{evs: evs, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(evs) < size {
				return
			}
			after = evs[len(evs)-1].Position
		}
	}()
	return out, func() { cancel(); <-done }
}

// replayPage applies up to one page of events after pos and returns the
// new position and how many events it applied.
func replayPage(ctx context.Context, tx pgx.Tx, p Projection, schema string, pos int64) (int64, int, error) {
	evs, err := eventstore.ReadFrom(ctx, tx, pos, rebuildPage)
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
func Statuses(ctx context.Context, q eventstore.Querier) ([]Status, error) {
	head, err := eventstore.ReadHead(ctx, q)
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
