package projections

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipeTx is a transaction whose BEGIN and COMMIT travel with other
// statements instead of a round trip each: BEGIN is the first statement
// of the batch that also takes the apply lock and reads the checkpoint,
// and COMMIT the last of the batch that writes the read model and moves
// the checkpoint. That is two round trips per applied batch instead of
// four, for every projection on every batch. Everything else is the
// connection's: reads see the transaction, as with pgx's own Tx.
type pipeTx struct {
	conn *pgxpool.Conn
	done bool
}

var errNested = errors.New("projections: nested transactions are not supported in an apply")

// beginPiped acquires a connection and sends first, which must start with
// BEGIN, in one round trip.
func beginPiped(ctx context.Context, pool *pgxpool.Pool, first *pgx.Batch) (*pipeTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx := &pipeTx{conn: conn}
	if err := conn.SendBatch(ctx, first).Close(); err != nil {
		tx.end()
		return nil, err
	}
	return tx, nil
}

// commitWith sends last, followed by COMMIT, in one round trip, and ends
// the transaction either way.
func (tx *pipeTx) commitWith(ctx context.Context, last *pgx.Batch) error {
	last.Queue("COMMIT")
	err := tx.conn.SendBatch(ctx, last).Close()
	if err == nil && tx.conn.Conn().PgConn().TxStatus() != 'I' {
		err = errors.New("projections: the transaction did not commit")
	}
	if err == nil {
		tx.done = true
	}
	tx.end()
	return err
}

// end rolls back what did not commit and returns the connection. A
// connection whose state is unknown after a failed ROLLBACK is closed, not
// pooled.
func (tx *pipeTx) end() {
	if tx.conn == nil {
		return
	}
	if !tx.done && tx.conn.Conn().PgConn().TxStatus() != 'I' {
		if _, err := tx.conn.Exec(context.Background(), "ROLLBACK"); err != nil {
			_ = tx.conn.Conn().Close(context.Background())
		}
	}
	tx.conn.Release()
	tx.conn = nil
}

func (tx *pipeTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNested }
func (tx *pipeTx) Commit(ctx context.Context) error {
	return tx.commitWith(ctx, &pgx.Batch{})
}
func (tx *pipeTx) Rollback(context.Context) error { tx.end(); return nil }
func (tx *pipeTx) CopyFrom(ctx context.Context, t pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	return tx.conn.CopyFrom(ctx, t, cols, src)
}
func (tx *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return tx.conn.SendBatch(ctx, b)
}
func (tx *pipeTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }
func (tx *pipeTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return tx.conn.Conn().Prepare(ctx, name, sql)
}
func (tx *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return tx.conn.Exec(ctx, sql, args...)
}
func (tx *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return tx.conn.Query(ctx, sql, args...)
}
func (tx *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return tx.conn.QueryRow(ctx, sql, args...)
}
func (tx *pipeTx) Conn() *pgx.Conn { return tx.conn.Conn() }
