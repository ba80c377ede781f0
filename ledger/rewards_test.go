package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func newTenant(t *testing.T, s *ledger.Service, env string, tokens int64) eventstore.Tenant {
	t.Helper()
	sc := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: env}
	_, _, err := s.ProvisionPool(context.Background(), sc, events.Metadata{}, ledger.PoolInput{Allocated: tokens})
	require.NoError(t, err)
	return sc
}

func action(key string, amount string, users ...string) ledger.ActionInput {
	in := ledger.ActionInput{IdempotencyKey: key, ActionType: "PURCHASE", Amount: amount, Currency: "USD", AutoCreateUsers: true}
	for _, u := range users {
		in.Stakeholders = append(in.Stakeholders, ledger.StakeholderInput{StakeholderTypeCode: "CUSTOMER", PartnerUserID: u})
	}
	return in
}

func poolState(t *testing.T, db *testenv.DB, sc eventstore.Tenant) (allocated, distributed, returned int64) {
	t.Helper()
	evs, err := eventstore.ReadStream(context.Background(), db.Pool, ledger.PoolStream(ledger.DefaultPoolID(sc)))
	require.NoError(t, err)
	p := &ledger.Pool{}
	for _, e := range evs {
		require.NoError(t, p.Apply(e))
	}
	return p.Allocated, p.Distributed, p.Returned
}

func countEvents(t *testing.T, db *testenv.DB) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	return n
}

func TestRewardArithmetic(t *testing.T) {
	t.Parallel()
	d := decimal.RequireFromString
	require.Equal(t, int64(50), ledger.RewardTokens(d("49.99"), decimal.NewFromInt(1)))
	require.Equal(t, int64(50), ledger.RewardTokens(d("49.50"), decimal.NewFromInt(1)))
	require.Equal(t, int64(49), ledger.RewardTokens(d("49.49"), decimal.NewFromInt(1)))
	require.Equal(t, int64(0), ledger.RewardTokens(d("0.49"), decimal.NewFromInt(1)))
	require.Equal(t, []int64{17, 17, 16}, ledger.SplitEqual(50, 3))
	require.Equal(t, []int64{35, 10, 5}, ledger.SplitWeighted(50, []decimal.Decimal{d("70"), d("20"), d("10")}))
	require.Equal(t, []int64{34, 33, 33}, ledger.SplitWeighted(100, []decimal.Decimal{d("33.34"), d("33.33"), d("33.33")}))
	for total := int64(0); total < 200; total++ {
		var sum int64
		for _, p := range ledger.SplitWeighted(total, []decimal.Decimal{d("50"), d("30"), d("20")}) {
			sum += p
		}
		require.Equal(t, total, sum)
	}
}

func TestPoolRaceNeverOverspends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	const n = 10 // rewards of 50 tokens the pool can pay
	sc := newTenant(t, s, "sandbox", 50*n)

	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.SubmitAction(ctx, sc, events.Metadata{}, action(fmt.Sprintf("k%d", i), "49.99", fmt.Sprintf("u%d", i%7)))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[eventstore.AsError(err).Code]++
			} else {
				codes["OK"]++
			}
		}(i)
	}
	wg.Wait()
	require.Equal(t, map[string]int{"OK": n, "INSUFFICIENT_POOL": 64 - n}, codes)
	alloc, dist, ret := poolState(t, db, sc)
	require.Equal(t, int64(50*n), dist)
	require.Equal(t, alloc, (alloc-dist+ret)+dist-ret)
	require.Equal(t, int64(0), alloc-dist+ret)
	var failed int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type='action.failed'`).Scan(&failed))
	require.Equal(t, 64-n, failed)
}

func TestIdempotentSubmitUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := newTenant(t, s, "sandbox", 1000)

	done := make([]*events.ActionCompleted, 20)
	replayed := make([]bool, 20)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			o, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("same", "10", "alice", "bob"))
			require.NoError(t, err)
			done[i], replayed[i] = o.Completed, o.Replayed
		}(i)
	}
	wg.Wait()
	first := 0
	for i := range done {
		require.NotNil(t, done[i])
		require.Equal(t, *done[0], *done[i])
		if !replayed[i] {
			first++
		}
	}
	require.Equal(t, 1, first)
	var completed int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type='action.completed'`).Scan(&completed))
	require.Equal(t, 1, completed)
	require.Equal(t, int64(10), done[0].TokensDistributed)
	require.Len(t, done[0].TransactionIDs, 2)

	_, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("same", "11", "alice", "bob"))
	require.Equal(t, "IDEMPOTENCY_KEY_REUSED", eventstore.AsError(err).Code)
}

func TestFailedActionCanBeRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := newTenant(t, s, "sandbox", 5)

	o, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("k", "10", "alice"))
	require.Equal(t, "INSUFFICIENT_POOL", eventstore.AsError(err).Code)
	require.Equal(t, ledger.StatusFailed, o.Status)
	_, err = s.RequestAllocation(ctx, sc, events.Metadata{}, ledger.AllocationInput{Amount: 100})
	require.NoError(t, err)
	o, err = s.SubmitAction(ctx, sc, events.Metadata{}, action("k", "10", "alice"))
	require.NoError(t, err)
	require.False(t, o.Replayed)
	require.Equal(t, int64(10), o.TokensDistributed)

	_, err = s.ReverseAction(ctx, sc, events.Metadata{}, o.ActionID, "")
	require.NoError(t, err)
	_, dist, ret := poolState(t, db, sc)
	require.Equal(t, dist, ret)
}

func TestConcurrentReverseReversesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := newTenant(t, s, "sandbox", 1000)
	o, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("k", "30", "a", "b", "c", "d"))
	require.NoError(t, err)

	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.ReverseAction(ctx, sc, events.Metadata{}, o.ActionID, "fraud")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[eventstore.AsError(err).Code]++
			} else {
				codes["OK"]++
			}
		}()
	}
	wg.Wait()
	require.Equal(t, map[string]int{"OK": 1, "ALREADY_REVERSED": 15}, codes)
	_, dist, ret := poolState(t, db, sc)
	require.Equal(t, int64(30), dist)
	require.Equal(t, int64(30), ret)

	// Another tenant cannot see or reverse it; a failed action is not reversible.
	other := newTenant(t, s, "sandbox", 0)
	_, err = s.ReverseAction(ctx, other, events.Metadata{}, o.ActionID, "")
	require.Equal(t, "ACTION_NOT_FOUND", eventstore.AsError(err).Code)
	f, err := s.SubmitAction(ctx, other, events.Metadata{}, action("k", "30", "a"))
	require.Equal(t, "INSUFFICIENT_POOL", eventstore.AsError(err).Code)
	_, err = s.ReverseAction(ctx, other, events.Metadata{}, f.ActionID, "")
	require.Equal(t, "NOT_REVERSIBLE", eventstore.AsError(err).Code)
}

func TestInvalidActionsWriteNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := newTenant(t, s, "sandbox", 1000)
	before := countEvents(t, db)

	big := make([]byte, 0, 20000)
	big = append(big, `{"x":"`...)
	for len(big) < 17000 {
		big = append(big, 'a')
	}
	big = append(big, `"}`...)
	cases := map[string]func(*ledger.ActionInput){
		"amount":                              func(a *ledger.ActionInput) { a.Amount = "10.001" },
		"currency":                            func(a *ledger.ActionInput) { a.Currency = "XYZ" },
		"stakeholders":                        func(a *ledger.ActionInput) { a.Stakeholders = nil },
		"metadata":                            func(a *ledger.ActionInput) { a.Metadata = big },
		"idempotencyKey":                      func(a *ledger.ActionInput) { a.IdempotencyKey = "" },
		"actionType":                          func(a *ledger.ActionInput) { a.ActionType = "" },
		"stakeholders[0].partnerUserId":       func(a *ledger.ActionInput) { a.Stakeholders[0].PartnerUserID = "" },
		"stakeholders[0].userEmail":           func(a *ledger.ActionInput) { a.Stakeholders[0].UserEmail = "nope" },
		"stakeholders[0].stakeholderTypeCode": func(a *ledger.ActionInput) { a.Stakeholders[0].StakeholderTypeCode = "" },
	}
	for field, mut := range cases {
		in := action("k-"+field, "10", "alice")
		mut(&in)
		_, err := s.SubmitAction(ctx, sc, events.Metadata{}, in)
		e := eventstore.AsError(err)
		require.Equal(t, eventstore.KindInvalid, e.Kind, field)
		require.Equal(t, field, e.Details[0].Field)
	}
	for _, amt := range []string{"0", "-5", "abc"} {
		_, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("k", amt, "alice"))
		require.Equal(t, "amount", eventstore.AsError(err).Details[0].Field, amt)
	}
	jpy := action("k", "10.5", "alice")
	jpy.Currency = "JPY"
	_, err := s.SubmitAction(ctx, sc, events.Metadata{}, jpy)
	require.Equal(t, "amount", eventstore.AsError(err).Details[0].Field)
	kwd := action("kwd", "10.125", "alice")
	kwd.Currency = "KWD"
	_, err = s.SubmitAction(ctx, sc, events.Metadata{}, kwd)
	require.NoError(t, err)
	before++ // enduser
	before += 2

	unknown := action("u", "10", "nobody")
	unknown.AutoCreateUsers = false
	_, err = s.SubmitAction(ctx, sc, events.Metadata{}, unknown)
	require.Equal(t, "USER_NOT_FOUND", eventstore.AsError(err).Code)
	require.Equal(t, before, countEvents(t, db))

	many := make([]ledger.ActionInput, 101)
	_, err = s.SubmitBulk(ctx, sc, events.Metadata{}, many)
	require.Equal(t, "TOO_MANY_ACTIONS", eventstore.AsError(err).Code)
	require.Equal(t, before, countEvents(t, db))
}

func TestLowBalanceOncePerCrossingAndAutoRefill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: "sandbox"}
	_, _, err := s.ProvisionPool(ctx, sc, events.Metadata{}, ledger.PoolInput{Allocated: 100, LowBalanceThreshold: 50})
	require.NoError(t, err)
	for i := 0; i < 4; i++ { // 100 → 80 → 60 → 40 (cross) → 20
		_, err := s.SubmitAction(ctx, sc, events.Metadata{}, action(fmt.Sprint("k", i), "20", "a"))
		require.NoError(t, err)
	}
	count := func(typ string) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type=$1`, typ).Scan(&n))
		return n
	}
	require.Equal(t, 1, count("pool.low_balance"))
	_, err = s.RequestAllocation(ctx, sc, events.Metadata{}, ledger.AllocationInput{Amount: 100}) // 120: back over
	require.NoError(t, err)
	_, err = s.SubmitAction(ctx, sc, events.Metadata{}, action("k9", "80", "a")) // 40: second crossing
	require.NoError(t, err)
	require.Equal(t, 2, count("pool.low_balance"))

	// Auto-refill: production waits for an operator, and files once until decided.
	prod := eventstore.Tenant{PartnerID: sc.PartnerID, Environment: "production"}
	_, _, err = s.ProvisionPool(ctx, prod, events.Metadata{}, ledger.PoolInput{Allocated: 100, AutoRefill: true, AutoRefillThreshold: 70, AutoRefillAmount: 500})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err := s.SubmitAction(ctx, prod, events.Metadata{}, action(fmt.Sprint("p", i), "20", "a"))
		require.NoError(t, err)
	}
	require.Equal(t, 2, count("pool.allocation_requested")) // one sandbox manual, one auto
	var reqID string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT payload->>'requestId' FROM events WHERE event_type='pool.allocation_requested' AND environment='production'`).Scan(&reqID))
	_, err = s.DecideAllocation(ctx, prod, events.Metadata{}, ledger.DefaultPoolID(prod), reqID, true, "op", "")
	require.NoError(t, err)
	_, err = s.DecideAllocation(ctx, prod, events.Metadata{}, ledger.DefaultPoolID(prod), reqID, true, "op", "")
	require.Equal(t, "REQUEST_ALREADY_DECIDED", eventstore.AsError(err).Code)
	alloc, dist, ret := poolState(t, db, prod)
	require.Equal(t, int64(540), alloc-dist+ret)
}

func TestExpiredPoolRefusesAndRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: "sandbox"}
	past := time.Now().Add(-time.Hour).UTC()
	_, _, err := s.ProvisionPool(ctx, sc, events.Metadata{}, ledger.PoolInput{Allocated: 100, ExpiresAt: &past})
	require.NoError(t, err)
	o, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("k", "20", "a"))
	require.Equal(t, "POOL_EXPIRED", eventstore.AsError(err).Code)
	require.Equal(t, ledger.StatusFailed, o.Status)

	// Production without an approved pool: recorded as FAILED, 402.
	prod := eventstore.Tenant{PartnerID: sc.PartnerID, Environment: "production"}
	_, err = s.SubmitAction(ctx, prod, events.Metadata{}, action("k", "20", "a"))
	require.Equal(t, "INSUFFICIENT_POOL", eventstore.AsError(err).Code)
}

// Two processes (two stores on one database) race for one pool and for
// one scheduled campaign: the pool is never overspent and the campaign
// starts once.
func TestTwoProcessesRaceForPoolAndSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s1 := openLedger(t, db)
	s2 := openLedgerOn(t, db.NewPool(t))
	const n = 7
	sc := newTenant(t, s1, "sandbox", 10*n)
	start := time.Now().Add(-time.Second)
	c, err := s2.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: "go", Status: "SCHEDULED", StartsAt: &start})
	require.NoError(t, err)

	var mu sync.Mutex
	ok, started := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := s1
			if i%2 == 1 {
				s = s2
			}
			_, err := s.SubmitAction(ctx, sc, events.Metadata{}, action(fmt.Sprint("p", i), "10", "u"))
			ch, aerr := s.AdvanceCampaign(ctx, sc, c.CampaignID)
			require.NoError(t, aerr)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else {
				require.Equal(t, "INSUFFICIENT_POOL", eventstore.AsError(err).Code)
			}
			if ch {
				started++
			}
		}(i)
	}
	wg.Wait()
	require.Equal(t, n, ok)
	require.Equal(t, 1, started)
	alloc, dist, ret := poolState(t, db, sc)
	require.Equal(t, int64(0), alloc-dist+ret)
}

// A process that never saw an idempotency key decides its action's stream
// as new without reading it (eventstore.Command.Fresh). A retry of a key
// another process used must still get the original answer, not a fresh
// decision on the state now: here the pool has run dry, so a new decision
// would refuse, and with a changed body the key must be reported reused.
func TestReplayThroughAProcessThatNeverSawTheKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s1 := openLedger(t, db)
	sc := newTenant(t, s1, "sandbox", 50)
	first, err := s1.SubmitAction(ctx, sc, events.Metadata{}, action("once", "49.99", "alice"))
	require.NoError(t, err)
	_, err = s1.SubmitAction(ctx, sc, events.Metadata{}, action("drained", "1", "alice"))
	require.Equal(t, "INSUFFICIENT_POOL", eventstore.AsError(err).Code)
	before := countEvents(t, db)

	s2 := openLedgerOn(t, db.NewPool(t))
	again, err := s2.SubmitAction(ctx, sc, events.Metadata{}, action("once", "49.99", "alice"))
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.Completed, again.Completed)
	require.Equal(t, first.TransactionIDs, again.TransactionIDs)

	s3 := openLedgerOn(t, db.NewPool(t))
	_, err = s3.SubmitAction(ctx, sc, events.Metadata{}, action("once", "20", "alice"))
	require.Equal(t, "IDEMPOTENCY_KEY_REUSED", eventstore.AsError(err).Code)

	// A failed action's key may be retried; the retry appends to its
	// stream, after the failure, rather than starting it again.
	s4 := openLedgerOn(t, db.NewPool(t))
	_, err = s4.SubmitAction(ctx, sc, events.Metadata{}, action("drained", "1", "alice"))
	require.Equal(t, "INSUFFICIENT_POOL", eventstore.AsError(err).Code)
	evs, err := eventstore.ReadStream(ctx, db.Pool, ledger.ActionStream(ledger.ActionID(sc, "drained")))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, int64(2), evs[1].StreamVersion)
	require.Equal(t, before+1, countEvents(t, db), "only the retried failure was appended")
}

// Two processes taking the same new idempotency key at once each guess
// its action's stream new; the store's stream-version key lets one of
// them write it, and the other answers with its replay.
func TestSameNewKeyThroughTwoProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s1 := openLedger(t, db)
	s2 := openLedgerOn(t, db.NewPool(t))
	sc := newTenant(t, s1, "sandbox", 1000)
	for round := 0; round < 5; round++ {
		key := fmt.Sprint("shared-", round)
		outs := make([]ledger.ActionOutcome, 16)
		var wg sync.WaitGroup
		for i := range outs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				s := s1
				if i%2 == 1 {
					s = s2
				}
				o, err := s.SubmitAction(ctx, sc, events.Metadata{}, action(key, "10", "alice"))
				require.NoError(t, err)
				outs[i] = o
			}(i)
		}
		wg.Wait()
		fresh := 0
		for _, o := range outs {
			require.Equal(t, outs[0].Completed, o.Completed)
			if !o.Replayed {
				fresh++
			}
		}
		require.Equal(t, 1, fresh, "one submit decides the key, the others replay it")
		evs, err := eventstore.ReadStream(ctx, db.Pool, ledger.ActionStream(ledger.ActionID(sc, key)))
		require.NoError(t, err)
		require.Len(t, evs, 1)
	}
}
