// Package migrations holds the SQL schema of the event store and of the
// service's own tables, embedded so that a binary carries its schema, and
// applies it with tern under an advisory lock so that several processes
// starting at once migrate exactly once.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is where tern records the applied schema version.
const VersionTable = "schema_version"

// FS returns the embedded migration files.
func FS() fs.FS { return files }

// Latest is the highest migration number embedded in this binary.
func Latest() (int32, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, err
	}
	return int32(len(names)), nil
}

// Apply brings the database behind conn to the latest schema. It is safe to
// call from several processes at once.
func Apply(ctx context.Context, conn *pgx.Conn) (from, to int32, err error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return 0, 0, fmt.Errorf("migrations: load: %w", err)
	}
	from, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: current version: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return from, 0, fmt.Errorf("migrations: apply: %w", err)
	}
	to, err = m.GetCurrentVersion(ctx)
	return from, to, err
}

// Current reports the schema version recorded in the database, 0 when none.
func Current(ctx context.Context, conn Querier) (int32, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, VersionTable).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int32
	err := conn.QueryRow(ctx, `SELECT version FROM `+VersionTable).Scan(&v)
	return v, err
}

// Querier is the part of pgx.Conn, pgxpool.Pool and pgx.Tx that Current needs.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Fingerprint is a digest of every embedded migration; test templates are
// keyed by it so a schema change never reuses a stale template.
func Fingerprint() string {
	names, _ := fs.Glob(files, "*.sql")
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, _ := files.ReadFile(n)
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
