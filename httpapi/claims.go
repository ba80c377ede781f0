package httpapi

import (
	"context"
	"strings"
	"time"

	"github.com/sirgiving/ledger/internal/infra/coalesce"
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

// claimUntil is how long a claim on a request signed at Unix time ts is
// kept: past the window in which ts is accepted, by a minute's margin.
//
// It must stay a function of the signed timestamp alone, the same in every
// version of ledgerd: the replay guard is keyed on (expires_at, signature)
// (migration 011), so two processes that computed different expiries for
// the same signed request during a rolling upgrade would both accept it.
func claimUntil(ts int64) time.Time { return time.Unix(ts, 0).Add(SignatureWindow + time.Minute) }

// claimBatcher puts the signature claims (and revision reads) of
// concurrent requests into one statement (see coalesce).
type claimBatcher struct {
	b *coalesce.Batcher[claimReq, claimAnswer]
}

// claimReq is one claim; an empty sig reads the revision only.
type claimReq struct {
	sig   string
	until time.Time
}

type claimAnswer struct {
	fresh bool
	rev   int64
}

// newClaimBatcher sends one statement at a time: under the signed-submit
// benchmark (64 clients) that gave batches of ~10 claims, against ~4 with
// two statements in flight. Waiting a while for a fuller batch (tried: a
// 200 µs linger) made them no larger, so a runner never waits.
func newClaimBatcher(db eventstore.Querier) *claimBatcher {
	return &claimBatcher{b: coalesce.New(512, 1, 10*time.Second, func(ctx context.Context, qs []claimReq) ([]claimAnswer, error) {
		return execClaims(ctx, db, qs)
	})}
}

// claim records sig as used until until. It reports whether sig was new
// (false: a replay, here or in any other process) and the accounts
// revision as of the moment it was recorded. A claim whose context ends
// first may still be recorded; the request ends anyway.
func (b *claimBatcher) claim(ctx context.Context, sig string, until time.Time) (bool, int64, error) {
	a, err := b.b.Do(ctx, claimReq{sig: sig, until: until})
	return a.fresh, a.rev, err
}

// revision returns the accounts revision as of a moment after the call
// began: a statement that was already in flight is never its answer.
func (b *claimBatcher) revision(ctx context.Context) (int64, error) {
	_, rev, err := b.claim(ctx, "", time.Time{})
	return rev, err
}

func execClaims(ctx context.Context, db eventstore.Querier, qs []claimReq) ([]claimAnswer, error) {
	sigs := make([]string, 0, len(qs))
	untils := make([]time.Time, 0, len(qs))
	// The same signature twice in one batch is one claim: the first
	// request gets the database's answer, the others are replays.
	first := make(map[string]int, len(qs))
	for i, q := range qs {
		if _, seen := first[q.sig]; q.sig == "" || seen {
			continue
		}
		first[q.sig] = i
		sigs = append(sigs, q.sig)
		untils = append(untils, q.until)
	}
	var rev int64
	var fresh []string
	if err := db.QueryRow(ctx, claimSQL, sigs, untils).Scan(&rev, &fresh); err != nil {
		return nil, err
	}
	won := make(map[string]bool, len(fresh))
	for _, s := range fresh {
		won[s] = true
	}
	out := make([]claimAnswer, len(qs))
	for i, q := range qs {
		out[i] = claimAnswer{rev: rev, fresh: q.sig != "" && first[q.sig] == i && won[q.sig]}
	}
	return out, nil
}
