// Package projections runs read models: each projection is a named
// consumer of the event stream that updates its own tables in PostgreSQL,
// moving its checkpoint in the same transaction as its writes so that a
// redelivered event changes nothing. Projections can be rebuilt from the
// PostgreSQL event store into fresh tables and swapped in atomically.
package projections

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
)

// Projection is one read model.
//
// Its tables live in their own schema, proj_<Name>; Setup's DDL and Apply's
// statements use unqualified table names and run with search_path set to
// that schema (then public), so the same code builds the live tables and a
// rebuild's fresh ones. Queries from elsewhere read them as
// proj_<name>.<table> (see Table).
type Projection interface {
	// Name is stable and matches ^[a-z][a-z0-9_]*$.
	Name() string
	// Setup is the DDL creating the projection's tables (idempotent is not
	// required: it runs once per schema).
	Setup() string
	// Apply folds one event into the read model inside tx. It must ignore
	// event types it does not use and must be deterministic, so that a
	// rebuild gives identical tables. A projection that is also a
	// BatchApplier is applied through ApplyBatch by the runtime; its Apply
	// stays the one-event reference that ApplyBatch must reproduce.
	Apply(ctx context.Context, tx pgx.Tx, e events.Event) error
}

// Upgrader is implemented by a projection whose schema changed after some
// databases already had it: Upgrade is idempotent DDL (CREATE TABLE IF NOT
// EXISTS …, CREATE INDEX IF NOT EXISTS …) run on an existing schema at
// start-up, in one transaction. It suits tables whose events cannot
// predate them (the event types are as new as the table), so an empty
// table is the correct read model, and indexes, which PostgreSQL builds
// from the rows already there: neither needs a rebuild. Anything else (a
// new column derived from old events) still takes a rebuild.
type Upgrader interface {
	Upgrade() string
}

// SideEffecter marks projections that cause effects outside their own
// tables (webhook fan-out). The runtime sets Replaying(ctx) during every
// rebuild, for all projections, and such a projection's Apply must then
// only update state, never repeat an effect; effect records that must
// survive a rebuild belong in tables outside the projection's schema. The
// marker documents the obligation and lets tools tell these apart.
type SideEffecter interface {
	HasSideEffects() bool
}

// Skipper is implemented by a projection that can tell, without a
// transaction, that some events change nothing it keeps and cause no
// effect: a read model with nothing to do for an event spends a
// statement, not a transaction, on it. The runner then moves the
// checkpoint over such a batch with one guarded UPDATE instead of the
// usual apply (BEGIN, apply lock, checkpoint row lock, writes, COMMIT),
// and only when the batch follows, without a hole, the checkpoint it last
// committed itself; if the checkpoint moved meanwhile, the guard misses and
// the batch is applied in full.
//
// Skips must answer true only when applying evs (gap-free, right after
// position from, to the live schema) would queue no statement at all; when
// unsure it answers false. It may record that what it caches about the
// tables at from also holds at the last of evs, since nothing in between
// changes them.
type Skipper interface {
	Skips(from int64, evs []events.Event) bool
}

// noneUsed reports whether no event of evs has a type uses accepts.
func noneUsed(evs []events.Event, uses func(string) bool) bool {
	for _, e := range evs {
		if uses(e.Type) {
			return false
		}
	}
	return true
}

type replayKey struct{}

// Replaying reports whether Apply is being called by a rebuild, when side
// effects must not happen.
func Replaying(ctx context.Context) bool {
	v, _ := ctx.Value(replayKey{}).(bool)
	return v
}

func withReplay(ctx context.Context) context.Context {
	return context.WithValue(ctx, replayKey{}, true)
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Schema is the live schema of the named projection.
func Schema(name string) string { return "proj_" + name }

// Table is the qualified name of a projection's table, for queries.
func Table(projection, table string) string {
	return pgx.Identifier{Schema(projection), table}.Sanitize()
}

func checkName(p Projection) error {
	if !validName.MatchString(p.Name()) {
		return fmt.Errorf("projections: invalid name %q", p.Name())
	}
	return nil
}
