package projections

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/testenv"
)

// Pruning deletes the claims whose window has passed and keeps the rest;
// a claim still inside its window refuses the same signed request again.
func TestPruneSignaturesKeepsLiveClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	now := time.Now().UTC().Truncate(time.Second)
	_, err := db.Pool.Exec(ctx, `INSERT INTO seen_signatures (signature, expires_at) VALUES ('old', $1), ('live', $2), ('later', $3)`,
		now.Add(-time.Second), now.Add(time.Second), now.Add(time.Minute))
	require.NoError(t, err)

	n, err := PruneSignatures(ctx, db.Pool, now)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	var left []string
	rows, err := db.Pool.Query(ctx, `SELECT signature FROM seen_signatures ORDER BY expires_at`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		left = append(left, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"live", "later"}, left)

	tag, err := db.Pool.Exec(ctx, `INSERT INTO seen_signatures (signature, expires_at) VALUES ('live', $1) ON CONFLICT DO NOTHING`, now.Add(time.Second))
	require.NoError(t, err)
	require.Zero(t, tag.RowsAffected(), "the same signed request is still a replay")

	// One index serves both jobs (migration 011): the key a replay
	// conflicts on, and the range pruning deletes.
	rows, err = db.Pool.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'seen_signatures'`)
	require.NoError(t, err)
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, defs, 1)
	require.Contains(t, defs[0], "UNIQUE INDEX seen_signatures_pkey ON public.seen_signatures USING btree (expires_at, signature)")
	require.Contains(t, explain(t, db, `DELETE FROM seen_signatures WHERE expires_at < $1`, now), "seen_signatures_pkey")
}
