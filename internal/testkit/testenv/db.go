// Package testenv gives each test its own real PostgreSQL database (cloned
// from a migrated template, so it costs milliseconds) and its own real
// embedded NATS JetStream server. Nothing is mocked, and a missing service
// fails the test loudly instead of skipping it.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/migrations"
)

// DefaultAdminURL is used when TEST_DATABASE_URL is not set; it matches the
// PostgreSQL that the development machines and CI start.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server-level connection string tests create databases through.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// ensureTemplate creates, once per fingerprint of the migrations, a
// migrated template database. A cross-process advisory lock keeps parallel
// `go test` package binaries from building it twice.
func ensureTemplate(ctx context.Context) (string, error) {
	templateOnce.Do(func() {
		templateName = "ledger_tmpl_" + migrations.Fingerprint()
		templateErr = func() error {
			conn, err := pgx.Connect(ctx, AdminURL())
			if err != nil {
				return fmt.Errorf("testenv: PostgreSQL is not reachable at %s (set TEST_DATABASE_URL or run `make test`, which starts one): %w", redact(AdminURL()), err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(727274)`); err != nil {
				return err
			}
			defer conn.Exec(ctx, `SELECT pg_advisory_unlock(727274)`) //nolint:errcheck
			var exists bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, templateName).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return nil
			}
			building := templateName + "_build"
			if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+building+` WITH (FORCE)`); err != nil {
				return err
			}
			if _, err := conn.Exec(ctx, `CREATE DATABASE `+building); err != nil {
				return err
			}
			mc, err := pgx.Connect(ctx, withDB(AdminURL(), building))
			if err != nil {
				return err
			}
			_, _, err = migrations.Apply(ctx, mc)
			mc.Close(ctx)
			if err != nil {
				return err
			}
			_, err = conn.Exec(ctx, `ALTER DATABASE `+building+` RENAME TO `+templateName)
			return err
		}()
	})
	return templateName, templateErr
}

// DB is a fresh, migrated database owned by one test.
type DB struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// NewDB creates a database for t from the template and drops it when t ends.
func NewDB(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tmpl, err := ensureTemplate(ctx)
	require.NoError(t, err)

	name := "ledger_test_" + randomHex(6)
	admin, err := pgx.Connect(ctx, AdminURL())
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+tmpl)
	require.NoError(t, err)

	dbURL := withDB(AdminURL(), name)
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(t, err)
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Errorf("testenv: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("testenv: drop %s: %v", name, err)
		}
	})
	return &DB{Name: name, URL: dbURL, Pool: pool}
}

// NewPool opens another pool on the same database, as a second process would.
func (d *DB) NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), d.URL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// NewAsyncPool is NewPool with the app's Bookkeeping settings
// (asynchronous commit), its sessions named name so that pg_stat_activity
// tells which pool sent a statement.
func (d *DB) NewAsyncPool(t testing.TB, name string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(d.URL)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// LastQuery is the last statement a session named name (see NewAsyncPool)
// sent to this database.
func (d *DB) LastQuery(t testing.TB, name string) string {
	t.Helper()
	var q string
	require.NoError(t, d.Pool.QueryRow(context.Background(),
		`SELECT query FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, name).Scan(&q))
	return q
}

func withDB(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + db
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
