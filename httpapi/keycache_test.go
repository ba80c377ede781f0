package httpapi

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// A request judges its key on the cache, then claims its signature. If a
// revocation commits in between and another request moves the cache past
// it before this one's claim returns, the cache is already current when
// this request compares revisions: it must still be judged again, because
// it was judged on the state before the revocation.
// keyFixture is a database with one portal user, email, and a sandbox key
// of theirs, written through the domain service it returns with the
// master key that seals the key's secrets.
func keyFixture(t *testing.T, email string) (*pgxpool.Pool, *ledger.Service, []byte, *ledger.NewKey) {
	t.Helper()
	db := testenv.NewDB(t)
	pool := db.NewPool(t)
	store := eventstore.OpenStore(pool, eventstore.StoreOptions{})
	t.Cleanup(store.Close)
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	svc := ledger.NewService(store, ledger.Options{MasterKey: mk})
	ctx, meta := context.Background(), events.Metadata{Actor: "test"}
	userID, _, err := svc.CreatePortalUser(ctx, meta, email, "password-1")
	require.NoError(t, err)
	key, _, err := svc.CreateAPIKey(ctx, meta, userID, "k", ledger.EnvSandbox, nil)
	require.NoError(t, err)
	return pool, svc, mk, key
}

func TestAKeyJudgedBeforeARevocationIsJudgedAgain(t *testing.T) {
	t.Parallel()
	pool, svc, mk, key := keyFixture(t, "judged-once@example.com")
	ctx, meta := context.Background(), events.Metadata{Actor: "test"}
	a := NewKeyAuth(KeyAuthConfig{DB: pool, MasterKey: mk, JWTSecret: mk})

	signed := func(path string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		ts := strconv.FormatInt(a.cfg.Now().Unix(), 10)
		r.Header.Set("X-Partner-Key", key.SecretKey)
		r.Header.Set("X-Timestamp", ts)
		r.Header.Set("X-Signature", Sign(key.HMACSecret, ts, http.MethodGet, path, nil))
		return r
	}
	r := signed("/v1/partner/users?n=1")
	p, kr, err := a.authHMAC(r, true)
	require.NoError(t, err, "judged while the key is active")

	_, err = svc.RevokeAPIKey(ctx, meta, key.PartnerID, key.KeyID)
	require.NoError(t, err)
	head, err := eventstore.ReadHead(ctx, pool)
	require.NoError(t, err)
	require.NoError(t, a.keys.ensure(ctx, head), "another request folds the revocation in")

	_, err = a.admit(httptest.NewRecorder(), r, p, kr)
	require.Equal(t, errInvalidKey, err)
	_, _, err = a.authHMAC(signed("/v1/partner/users?n=2"), true)
	require.Equal(t, errInvalidKey, err)
}

// One claim statement answers each waiter: the first copy of a signature
// in a batch is fresh, later copies and later batches are replays, and
// every request (revision-only ones too) gets the same accounts revision.
func TestClaimBatchAnswersEachWaiter(t *testing.T) {
	t.Parallel()
	pool, svc, _, key := keyFixture(t, "batch@example.com")
	ctx, meta := context.Background(), events.Metadata{Actor: "test"}
	// Events after the key's, of other types (the sandbox pool, another
	// user), do not move the revision.
	_, _, err := svc.CreatePortalUser(ctx, meta, "other@example.com", "password-1")
	require.NoError(t, err)
	partnerEvents, err := eventstore.ReadStream(ctx, pool, ledger.PartnerStream(key.PartnerID))
	require.NoError(t, err)
	keyCreated := partnerEvents[len(partnerEvents)-1]
	require.Equal(t, events.APIKeyCreated{}.EventType(), keyCreated.Type)
	head, err := eventstore.ReadHead(ctx, pool)
	require.NoError(t, err)
	require.Greater(t, head, keyCreated.Position)

	b := newClaimBatcher(pool)
	until := time.Now().Add(time.Hour)
	req := func(sig string) claimReq { return claimReq{sig: sig, until: until} }
	got, err := execClaims(ctx, pool, []claimReq{req("sig-a"), req("sig-b"), req("sig-a"), req("")})
	require.NoError(t, err)
	for i, want := range []bool{true, true, false, false} {
		require.Equal(t, want, got[i].fresh, "request %d", i)
		require.Equal(t, keyCreated.Position, got[i].rev, "request %d", i)
	}
	got, err = execClaims(ctx, pool, []claimReq{req("sig-b"), req("sig-c")})
	require.NoError(t, err)
	require.False(t, got[0].fresh)
	require.True(t, got[1].fresh)

	fresh, rev, err := b.claim(ctx, "sig-d", until)
	require.NoError(t, err)
	require.True(t, fresh)
	require.Equal(t, keyCreated.Position, rev)
}

// Every partner and key event is one the key cache folds and the accounts
// revision counts: a new one (a reinstatement, a key rotation…) must be
// added to keyEventTypes and to keyCache.apply, or a process would keep
// authorising on state that no longer holds.
func TestKeyCacheFoldsEveryPartnerAndKeyEvent(t *testing.T) {
	t.Parallel()
	folded := map[string]bool{}
	for _, typ := range keyEventTypes {
		folded[typ] = true
		require.True(t, events.IsRegistered(typ), typ)
	}
	for _, typ := range events.Registered() {
		if strings.HasPrefix(typ, "partner.") || strings.HasPrefix(typ, "apikey.") {
			require.True(t, folded[typ], "%s changes a key's standing but the key cache does not fold it", typ)
		}
	}
}

// Every lookup of events by type is one of the rare types that the partial
// index events_rare_type_position_idx covers (migration 010), written so
// the planner can tell: the accounts revision, the key cache's read, and
// ledgerctl's allocation requests. A key event type added to keyEventTypes
// but not to the index's predicate would send each signed request's
// revision read down a walk of the whole log; this test fails first.
func TestLookupsByEventTypeUseTheRareTypeIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _, _, _ := keyFixture(t, "rare-types@example.com")
	lookups := []string{selectKeyEvents, `SELECT ` + revisionSQL(),
		`SELECT partner_id FROM events WHERE event_type = 'pool.allocation_requested' AND payload->>'requestId' = 'preq_x'`}
	for _, typ := range keyEventTypes {
		lookups = append(lookups, `SELECT max(position) FROM events WHERE event_type = `+sqlLiteral(typ))
	}
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	for _, sql := range lookups {
		var args []any
		if strings.Contains(sql, "$1") {
			args = append(args, int64(0))
		}
		rows, err := tx.Query(ctx, `EXPLAIN `+sql, args...)
		require.NoError(t, err)
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		text := strings.Join(plan, "\n")
		require.Contains(t, text, "events_rare_type_position_idx", "%s\n%s", sql, text)
		require.NotContains(t, text, "events_pkey", "%s\n%s", sql, text)
	}
}

// A claim's expiry is the signed timestamp plus the window and a minute,
// in every version: the replay guard's key includes it (migration 011), so
// a change here would let a mixed-version deployment accept a replay.
func TestClaimUntilIsPinnedToTheSignedTimestamp(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Unix(1_700_000_360, 0), claimUntil(1_700_000_000))
}
