package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

type ctlNote struct {
	N int `json:"n"`
}

func (ctlNote) EventType() string { return "test.ctlnote" }

func init() { events.Register[ctlNote](1) }

func ctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestAuditVerifyAndExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	for i := 0; i < 12; i++ {
		partner := "p1"
		if i%3 == 0 {
			partner = "p2"
		}
		_, err := s.Append(ctx, eventstore.Tenant{PartnerID: partner, Environment: "sandbox"}, events.Metadata{}, fmt.Sprintf("note-%d", i%2), eventstore.ExpectAny, ctlNote{N: i})
		require.NoError(t, err)
	}

	code, out, errOut := ctl(t, "audit", "verify", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "hash chain OK: 12 events")

	code, out, _ = ctl(t, "events", "export", "--database-url", db.URL, "--partner", "p2")
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4)
	for _, l := range lines {
		var e events.Event
		require.NoError(t, json.Unmarshal([]byte(l), &e))
		require.Equal(t, "p2", e.PartnerID)
		require.Equal(t, events.ComputeHash(&e), e.Hash, "exported events verify on their own")
	}
	code, out, _ = ctl(t, "events", "export", "--database-url", db.URL, "--from", "5", "--to", "6")
	require.Equal(t, 0, code)
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 2)

	for _, stmt := range []string{`ALTER TABLE events DISABLE TRIGGER USER`, `UPDATE events SET metadata = '{"actor":"mallory"}' WHERE position = 9`, `ALTER TABLE events ENABLE TRIGGER USER`} {
		_, err := db.Pool.Exec(ctx, stmt)
		require.NoError(t, err)
	}
	code, _, errOut = ctl(t, "audit", "verify", "--database-url", db.URL)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "BROKEN at position 9")
}

func TestMigrateStatusAndUsage(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	code, out, errOut := ctl(t, "migrate", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "schema is current")

	code, out, errOut = ctl(t, "projections", "status", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "PROJECTION")
	// A stalled projection is named with its cause.
	_, err := db.Pool.Exec(context.Background(), `INSERT INTO projection_checkpoints (name, position, last_error, failing_since)
		VALUES ('stuck', 3, 'projections: stuck apply position 4: boom', now() - interval '1 hour')`)
	require.NoError(t, err)
	code, out, errOut = ctl(t, "projections", "status", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `stuck\s+3\s+0\s+-3\s+\S+\s+FAILING since `, out)
	require.Contains(t, out, "stuck cannot advance past position 3; its last error:\n  projections: stuck apply position 4: boom")

	code, _, errOut = ctl(t, "projections", "rebuild", "--database-url", db.URL, "nope")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `no projection named "nope"`)

	code, _, _ = ctl(t, "audit", "--help")
	require.Equal(t, 0, code)
	code, _, _ = ctl(t, "bogus")
	require.Equal(t, 2, code)
	code, _, errOut = ctl(t, "audit", "verify", "--database-url", "")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "DATABASE_URL")
}
