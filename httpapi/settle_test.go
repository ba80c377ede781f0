package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/projections"
)

// A bulk is answered without waiting for its own batch while the rewards
// read model is within bulkSettleSlack events of it, and waits (here until
// the wait runs out, since no projector runs) once it is further behind.
func TestBulkWaitsOnlyForAReadModelMoreThanTheSlackBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	_, err := db.Pool.Exec(ctx, `INSERT INTO projection_checkpoints (name, position) VALUES ($1, 1000)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position`, projections.RewardsName)
	require.NoError(t, err)

	// A wait that would run this long is never reached by an answer that
	// does not wait: the first call returns at its first look.
	require.NoError(t, settleBulk(ctx, db.Pool, 1000+bulkSettleSlack, time.Minute))
	require.ErrorIs(t, settleBulk(ctx, db.Pool, 1000+bulkSettleSlack+1, 50*time.Millisecond), projections.ErrNotCaughtUp)
}
