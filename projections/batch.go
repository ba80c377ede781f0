package projections

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// txBatch carries writes that projections defer to the end of one apply
// transaction, so a batch of events costs one statement instead of one per
// event (the webhook fan-out). The runtime creates one per transaction and
// flushes it after the last Apply and before the checkpoint moves; without
// one in the context (Apply called directly) projections write at once.
type txBatch struct {
	parts map[any]batchPart
	order []batchPart
}

// batchPart is one projection's deferred writes within a txBatch.
type batchPart interface {
	flush(ctx context.Context, tx pgx.Tx) error
}

type txBatchKey struct{}

func withTxBatch(ctx context.Context) (context.Context, *txBatch) {
	b := &txBatch{parts: map[any]batchPart{}}
	return context.WithValue(ctx, txBatchKey{}, b), b
}

func txBatchFrom(ctx context.Context) *txBatch {
	b, _ := ctx.Value(txBatchKey{}).(*txBatch)
	return b
}

// part returns the batch's part for key, made by mk the first time.
func (b *txBatch) part(key any, mk func() batchPart) batchPart {
	if p, ok := b.parts[key]; ok {
		return p
	}
	p := mk()
	b.parts[key] = p
	b.order = append(b.order, p)
	return p
}

// flush writes every part, in the order they were first used.
func (b *txBatch) flush(ctx context.Context, tx pgx.Tx) error {
	for _, p := range b.order {
		if err := p.flush(ctx, tx); err != nil {
			return err
		}
	}
	b.parts, b.order = map[any]batchPart{}, nil
	return nil
}
