package httpapi

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// claimSQL records a batch of signatures in the replay guard and reads the
// accounts revision, in one statement and so one snapshot: every key
// change committed before the statement began is at or below the revision
// it returns.
var claimSQL = `WITH claimed AS (
	INSERT INTO seen_signatures (signature, expires_at)
	SELECT * FROM unnest($1::text[], $2::timestamptz[])
	ON CONFLICT DO NOTHING
	RETURNING signature
)
SELECT ` + revisionSQL() + `, coalesce((SELECT array_agg(signature) FROM claimed), '{}')`

// revisionSQL is the accounts revision, the highest position of a key
// event: one backward probe of events_rare_type_position_idx per type. The
// types are written as literals, not a parameter: with a parameter the
// planner cannot tell a key event type is rare, and walks the whole
// primary key backwards instead; and the index is partial, so only a
// literal type can be proven to be in it.
func revisionSQL() string {
	parts := make([]string, len(keyEventTypes))
	for i, t := range keyEventTypes {
		parts[i] = "(SELECT max(position) FROM events WHERE event_type = " + sqlLiteral(t) + ")"
	}
	return "coalesce(greatest(" + strings.Join(parts, ", ") + "), 0)"
}

// keyEventTypeList is keyEventTypes as a list of SQL literals.
func keyEventTypeList() string {
	parts := make([]string, len(keyEventTypes))
	for i, t := range keyEventTypes {
		parts[i] = sqlLiteral(t)
	}
	return strings.Join(parts, ", ")
}

func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// claimBatcher puts the signature claims (and revision reads) of
// concurrent requests into one statement. It keeps no goroutine while
// idle: a request that finds fewer than maxInflight statements running
// starts a runner, which sends what is queued, up to maxBatch per
// statement, until the queue is empty. Requests that arrive while a
// statement is in flight queue for the next one, so batches grow with load
// (as the store's group commit does) and an idle server adds no wait.
type claimBatcher struct {
	db          eventstore.Querier
	maxBatch    int
	maxInflight int

	mu      sync.Mutex
	pending []*claimWaiter
	running int
}

type claimWaiter struct {
	sig   string // empty: the revision only
	until time.Time

	fresh bool
	rev   int64
	err   error
	done  chan struct{}
}

// newClaimBatcher sends one statement at a time: under the signed-submit
// benchmark (64 clients) that gave batches of ~10 claims, against ~4 with
// two statements in flight. Waiting a while for a fuller batch (tried: a
// 200 µs linger) made them no larger, so a runner never waits.
func newClaimBatcher(db eventstore.Querier) *claimBatcher {
	return &claimBatcher{db: db, maxBatch: 512, maxInflight: 1}
}

// claim records sig as used until until. It reports whether sig was new
// (false: a replay, here or in any other process) and the accounts
// revision as of the moment it was recorded.
func (b *claimBatcher) claim(ctx context.Context, sig string, until time.Time) (bool, int64, error) {
	w := &claimWaiter{sig: sig, until: until, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, w)
	start := b.running < b.maxInflight
	if start {
		b.running++
	}
	b.mu.Unlock()
	if start {
		go b.run()
	}
	select {
	case <-w.done:
		return w.fresh, w.rev, w.err
	case <-ctx.Done():
		// The claim may still be recorded; the request ends anyway.
		return false, 0, ctx.Err()
	}
}

// revision returns the accounts revision as of a moment after the call
// began: a statement that was already in flight is never its answer.
func (b *claimBatcher) revision(ctx context.Context) (int64, error) {
	_, rev, err := b.claim(ctx, "", time.Time{})
	return rev, err
}

func (b *claimBatcher) run() {
	for {
		b.mu.Lock()
		n := len(b.pending)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		if n > b.maxBatch {
			n = b.maxBatch
		}
		batch := b.pending[:n:n]
		if rest := b.pending[n:]; len(rest) > 0 {
			b.pending = append(make([]*claimWaiter, 0, len(rest)), rest...)
		} else {
			b.pending = nil
		}
		b.mu.Unlock()
		b.exec(batch)
	}
}

func (b *claimBatcher) exec(batch []*claimWaiter) {
	sigs := make([]string, 0, len(batch))
	untils := make([]time.Time, 0, len(batch))
	// The same signature twice in one batch is one claim: the first
	// waiter gets the database's answer, the others are replays.
	first := make(map[string]*claimWaiter, len(batch))
	for _, w := range batch {
		if w.sig == "" || first[w.sig] != nil {
			continue
		}
		first[w.sig] = w
		sigs = append(sigs, w.sig)
		untils = append(untils, w.until)
	}
	// Not any request's context: the statement answers every waiter.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rev int64
	var fresh []string
	err := b.db.QueryRow(ctx, claimSQL, sigs, untils).Scan(&rev, &fresh)
	won := make(map[string]bool, len(fresh))
	for _, s := range fresh {
		won[s] = true
	}
	for _, w := range batch {
		w.rev, w.err = rev, err
		w.fresh = err == nil && w.sig != "" && first[w.sig] == w && won[w.sig]
		close(w.done)
	}
}
