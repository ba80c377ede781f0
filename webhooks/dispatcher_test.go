package webhooks_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/netguard"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
	"github.com/sirgiving/ledger/webhooks"
)

func TestFailingThreeTimesThenSucceedingGetsTheSameSignedEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(n int, _ received) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	reg := h.register(tenant, rc.URL, false, "action.completed")
	rc.setSecret(reg.Secret)
	require.Regexp(t, `^whsec_[0-9a-f]{64}$`, reg.Secret)
	h.dispatch(fastOptions())

	src := h.emit(tenant, "action-act_1", actionCompleted{ActionID: "act_1", Status: "COMPLETED", TokensDistributed: 5})
	eventually(t, func() bool { return rc.count() >= 4 }, "four attempts")

	got := rc.requests()
	require.Len(t, got, 4)
	wantID := projections.WebhookEventID(src.ID.String(), "action.completed", 0)
	for _, r := range got {
		require.True(t, r.Valid, "signature must verify with the secret alone")
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.Equal(t, "SIRGiving-Webhooks/1.0", r.Header.Get("User-Agent"))
		require.Regexp(t, `^[0-9]+$`, r.Header.Get("X-SIR-Timestamp"))
		require.Regexp(t, `^sha256=[0-9a-f]{64}$`, r.Header.Get("X-SIR-Signature"))
		require.Equal(t, wantID, r.Env.ID)
		require.Equal(t, got[0].Body, r.Body, "every attempt carries the same bytes")
	}
	require.Regexp(t, `^evt_[0-9a-f]{32}$`, got[0].Env.ID)
	require.Equal(t, "action.completed", got[0].Env.Type)
	require.Equal(t, src.RecordedAt.UTC().Format(time.RFC3339Nano), got[0].Env.CreatedAt)
	// The body is the event's public payload, as the fan-out built it.
	msgs, err := projections.WebhookMessages(src)
	require.NoError(t, err)
	require.Equal(t, string(msgs[0].Body), string(got[0].Body))

	eventually(t, func() bool {
		ds := h.deliveries(tenant, reg.Event.WebhookID)
		return len(ds) == 1 && ds[0].Status == "SUCCEEDED"
	}, "delivery recorded as succeeded")
	d := h.deliveries(tenant, reg.Event.WebhookID)[0]
	require.Equal(t, 4, d.AttemptCount)
	require.Equal(t, wantID, d.EventID)
	require.Len(t, d.Attempts, 4)
	for i, a := range d.Attempts {
		want := 500
		if i == 3 {
			want = 204
		}
		require.Equal(t, i+1, a.Attempt)
		require.Equal(t, want, *a.StatusCode)
		require.Equal(t, i == 3, a.Success)
		if i < 3 {
			require.Equal(t, `{"status":500}`, a.ResponseBody)
		}
	}
	require.Equal(t, "http_5xx", d.Attempts[0].Reason)

	// Other tenants never see it.
	_, _, err = webhooks.ListDeliveries(h.ctx, h.db.Pool, other, reg.Event.WebhookID, 0, 10)
	require.ErrorIs(t, err, projections.ErrWebhookNotFound)
}

func TestSecretIsEncryptedAtRest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	reg := h.register(tenant, "http://127.0.0.1:9/hook", true)
	var n int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'`,
		strings.TrimPrefix(reg.Secret, "whsec_")).Scan(&n))
	require.Zero(t, n)
}

func TestFanOutMapsTypesAndScopes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	all := newReceiver(t, nil)
	some := newReceiver(t, nil)
	foreign := newReceiver(t, nil)
	regAll := h.register(tenant, all.URL, true)
	all.setSecret(regAll.Secret)
	regSome := h.register(tenant, some.URL, false, "transaction.completed", "token_pool.low_balance")
	some.setSecret(regSome.Secret)
	regForeign := h.register(other, foreign.URL, true)
	foreign.setSecret(regForeign.Secret)
	// A production-environment subscription of the same partner sees
	// nothing of the sandbox.
	h.dispatch(fastOptions())

	ac := h.emit(tenant, "action-act_1", actionCompleted{ActionID: "act_1", TransactionIDs: []string{"txn_a", "txn_b"}})
	h.emit(tenant, "action-act_2", actionFailed{ActionID: "act_2", Code: "INSUFFICIENT_POOL", Reason: "pool empty"})
	h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1", Available: 3, Threshold: 10})
	h.emit(tenant, "campaign-cmp_1", campaignStatusChanged{CampaignID: "cmp_1", From: "draft", To: "active"})
	h.emit(tenant, "whtest-1", unrelated{N: 1})
	res, err := h.hooks.RequestWebhookTest(h.ctx, tenant, events.Metadata{}, regSome.Event.WebhookID)
	require.NoError(t, err)

	eventually(t, func() bool { return all.count() == 6 && some.count() == 4 }, "all deliveries")
	types := func(rc *receiver) map[string]int {
		m := map[string]int{}
		for _, r := range rc.requests() {
			require.True(t, r.Valid)
			m[r.Env.Type]++
		}
		return m
	}
	require.Equal(t, map[string]int{"action.completed": 1, "transaction.completed": 2, "action.failed": 1,
		"token_pool.low_balance": 1, "campaign.status_changed": 1}, types(all))
	require.Equal(t, map[string]int{"transaction.completed": 2, "token_pool.low_balance": 1, "webhook.test": 1}, types(some))

	txIDs := map[string]string{}
	for _, r := range some.requests() {
		if r.Env.Type == "transaction.completed" {
			var data struct {
				TransactionID string `json:"transactionId"`
				ActionID      string `json:"actionId"`
			}
			require.NoError(t, json.Unmarshal(r.Env.Data, &data))
			require.Equal(t, "act_1", data.ActionID)
			txIDs[data.TransactionID] = r.Env.ID
		}
		if r.Env.Type == "webhook.test" {
			require.Equal(t, projections.WebhookEventID(res.Events[0].ID.String(), "webhook.test", 0), r.Env.ID)
		}
	}
	require.Equal(t, map[string]string{
		"txn_a": projections.WebhookEventID(ac.ID.String(), "transaction.completed", 0),
		"txn_b": projections.WebhookEventID(ac.ID.String(), "transaction.completed", 1),
	}, txIDs)
	// Envelope ids are the same for every subscription that gets the event.
	ids := map[string]bool{}
	for _, r := range all.requests() {
		ids[r.Env.ID] = true
	}
	for _, id := range txIDs {
		require.True(t, ids[id])
	}

	// The other partner's subscription got nothing; its own event reaches it.
	h.emit(other, "pool-pool_2", poolLowBalance{PoolID: "pool_2"})
	eventually(t, func() bool { return foreign.count() == 1 }, "foreign delivery")
	require.Equal(t, "token_pool.low_balance", foreign.requests()[0].Env.Type)
	require.Equal(t, 6, all.count())
}

func TestDispatcherRestartMidScheduleLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	failing := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(n int, _ received) int {
		select {
		case <-failing:
			return http.StatusOK
		default:
			return http.StatusBadGateway
		}
	})
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	opts := fastOptions()
	opts.Schedule = []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond,
		100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	stop := h.dispatch(opts)
	src := h.emit(tenant, "action-act_1", actionCompleted{ActionID: "act_1"})
	eventually(t, func() bool {
		ds := h.deliveries(tenant, reg.Event.WebhookID)
		return len(ds) == 1 && ds[0].AttemptCount >= 2
	}, "two failed attempts recorded")
	stop()
	d := h.deliveries(tenant, reg.Event.WebhookID)[0]
	require.Equal(t, "PENDING", d.Status, "the retry schedule is in PostgreSQL")
	require.NotNil(t, d.NextAttemptAt)

	once.Do(func() { close(failing) })
	h.dispatch(opts) // a new process on the same database
	eventually(t, func() bool { return h.deliveries(tenant, reg.Event.WebhookID)[0].Status == "SUCCEEDED" }, "delivered after restart")
	d = h.deliveries(tenant, reg.Event.WebhookID)[0]
	got := rc.requests()
	require.Equal(t, http.StatusOK, *d.Attempts[len(d.Attempts)-1].StatusCode)
	require.Len(t, d.Attempts, d.AttemptCount)
	require.GreaterOrEqual(t, len(got), d.AttemptCount, "every recorded attempt reached the receiver")
	for _, r := range got {
		require.Equal(t, projections.WebhookEventID(src.ID.String(), "action.completed", 0), r.Env.ID)
	}
}

func TestRebuildSendsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	h.dispatch(fastOptions())
	for i := range 3 {
		h.emit(tenant, "campaign-cmp_1", campaignStatusChanged{CampaignID: "cmp_1", From: "a", To: string(rune('b' + i))})
	}
	eventually(t, func() bool { return rc.count() == 3 }, "three deliveries")

	pos, err := projections.Rebuild(h.ctx, h.db.Pool, projections.NewWebhooks(), nil)
	require.NoError(t, err)
	var n int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&n))
	require.Equal(t, 3, n, "a rebuild creates no delivery")
	w, err := projections.GetWebhook(h.ctx, h.db.Pool, tenant, reg.Event.WebhookID)
	require.NoError(t, err, "subscriptions are rebuilt")
	require.True(t, w.IsActive)
	require.Positive(t, pos)

	// A marker sent after the rebuild arrives, and nothing else did.
	marker := h.emit(tenant, "campaign-cmp_2", campaignStatusChanged{CampaignID: "cmp_2"})
	markerID := projections.WebhookEventID(marker.ID.String(), "campaign.status_changed", 0)
	eventually(t, func() bool {
		for _, r := range rc.requests() {
			if r.Env.ID == markerID {
				return true
			}
		}
		return false
	}, "marker delivered")
	require.Equal(t, 4, rc.count())
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&n))
	require.Equal(t, 4, n)
}

func TestRegistrationRefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	strict := ledger.NewService(h.store, ledger.Options{MasterKey: h.key, WebhookHosts: netguard.Policy{}})
	for _, u := range []string{
		"https://127.0.0.1/hook", "https://localhost/hook", "https://[::1]/hook", "https://10.1.2.3/x",
		"https://172.16.0.1/", "https://192.168.1.1/", "https://169.254.169.254/latest/meta-data/",
		"https://[fd00:ec2::254]/", "https://100.100.100.200/", "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/",
		"https://[fe80::1]/", "ftp://93.184.216.34/", "https://user:pw@93.184.216.34/", "not a url",
	} {
		_, err := strict.RegisterWebhook(h.ctx, tenant, events.Metadata{}, ledger.RegisterWebhook{URL: u, ReceiveAllEvents: true})
		require.Error(t, err, u)
		require.Equal(t, eventstore.KindInvalid, eventstore.AsError(err).Kind, u)
	}
	// Production environments need https.
	_, err := strict.RegisterWebhook(h.ctx, eventstore.Tenant{PartnerID: tenant.PartnerID, Environment: "production"}, events.Metadata{},
		ledger.RegisterWebhook{URL: "http://93.184.216.34/hook", ReceiveAllEvents: true})
	require.Equal(t, eventstore.KindInvalid, eventstore.AsError(err).Kind)
	// Unknown event types and empty subscriptions are refused.
	_, err = strict.RegisterWebhook(h.ctx, tenant, events.Metadata{}, ledger.RegisterWebhook{URL: "https://93.184.216.34/", EventTypes: []string{"nope"}})
	require.Equal(t, eventstore.KindInvalid, eventstore.AsError(err).Kind)
	_, err = strict.RegisterWebhook(h.ctx, tenant, events.Metadata{}, ledger.RegisterWebhook{URL: "https://93.184.216.34/"})
	require.Equal(t, eventstore.KindInvalid, eventstore.AsError(err).Kind)
	// A public address is fine.
	_, err = strict.RegisterWebhook(h.ctx, tenant, events.Metadata{}, ledger.RegisterWebhook{URL: "https://93.184.216.34/hook", ReceiveAllEvents: true})
	require.NoError(t, err)
}

func TestDialerRefusesLoopbackAtConnectTime(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	client := webhooks.NewClient(netguard.Policy{}, 5*time.Second, 2)
	port := rc.Listener.Addr().String()[strings.LastIndex(rc.Listener.Addr().String(), ":"):]
	for _, u := range []string{"http://localhost" + port + "/", rc.URL + "/"} {
		resp, err := client.Post(u, "application/json", strings.NewReader("{}"))
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err, u)
		require.True(t, errors.Is(err, netguard.ErrBlocked), "%s: %v", u, err)
	}
	require.Zero(t, rc.count())

	// End to end: registered while loopback was allowed, delivered by a
	// dispatcher that does not allow it — refused on the connected address,
	// and failed at once: a retry would reach the same address.
	h := newHarness(t)
	reg := h.register(tenant, "http://localhost"+port+"/hook", true)
	opts := fastOptions()
	opts.Addresses = netguard.Policy{}
	opts.Schedule = []time.Duration{0, time.Hour, time.Hour}
	h.dispatch(opts)
	h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1"})
	eventually(t, func() bool {
		ds := h.deliveries(tenant, reg.Event.WebhookID)
		return len(ds) == 1 && ds[0].Status == "FAILED"
	}, "delivery fails at its first attempt, not an hour later")
	d := h.deliveries(tenant, reg.Event.WebhookID)[0]
	require.Len(t, d.Attempts, 1)
	require.Equal(t, "blocked_address", d.Attempts[0].Reason)
	require.Contains(t, d.Attempts[0].Error, "not retried")
	require.Equal(t, d.Attempts[0].Error, d.LastError)
	require.Nil(t, d.NextAttemptAt)
	require.NotNil(t, d.CompletedAt)
	require.Zero(t, rc.count())
}

func TestHangingEndpointDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	hanging := newReceiver(t, func(int, received) int { <-release; return http.StatusOK })
	fine := newReceiver(t, nil)
	regH := h.register(tenant, hanging.URL, true)
	hanging.setSecret(regH.Secret)
	regF := h.register(tenant, fine.URL, true)
	fine.setSecret(regF.Secret)
	opts := fastOptions()
	opts.Workers, opts.PerEndpoint, opts.Timeout = 4, 2, time.Minute
	h.dispatch(opts)

	const n = 20
	for i := range n {
		h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1", Available: int64(i)})
	}
	// Every delivery to the healthy endpoint arrives while the hanging one
	// still holds its requests.
	eventually(t, func() bool { return fine.count() == n }, "healthy endpoint served")
	require.LessOrEqual(t, hanging.count(), 2, "the hanging endpoint never gets more than its cap")
	var pendingHanging int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'PENDING'`,
		regH.Event.WebhookID).Scan(&pendingHanging))
	require.Equal(t, n, pendingHanging)

	releaseOnce.Do(func() { close(release) })
	eventually(t, func() bool { return hanging.count() == n }, "hanging endpoint catches up")
}

func TestEndpointFailingTooLongIsDisabled(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(int, received) int { return http.StatusServiceUnavailable })
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	opts := fastOptions()
	opts.DisableAfter = 100 * time.Millisecond
	opts.Schedule = []time.Duration{0, 30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond,
		30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond}
	h.dispatch(opts)
	h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1"})
	eventually(t, func() bool {
		w, err := projections.GetWebhook(h.ctx, h.db.Pool, tenant, reg.Event.WebhookID)
		return err == nil && !w.IsActive
	}, "webhook disabled")
	evs, err := eventstore.ReadStream(h.ctx, h.db.Pool, ledger.WebhookStreamID(reg.Event.WebhookID))
	require.NoError(t, err)
	require.Equal(t, "webhook.disabled", evs[len(evs)-1].Type)

	health, err := webhooks.GetHealth(h.ctx, h.db.Pool, tenant, time.Now())
	require.NoError(t, err)
	require.Len(t, health.DisabledEndpoints, 1)
	require.Equal(t, reg.Event.WebhookID, health.DisabledEndpoints[0].ID)
	require.Positive(t, health.FailuresByReason["http_5xx"])
	require.NotNil(t, health.SuccessRate)
	require.Zero(t, *health.SuccessRate)
	require.Nil(t, health.LastSuccessAt)

	// Its pending delivery ends without further attempts; a test is refused.
	eventually(t, func() bool { return h.deliveries(tenant, reg.Event.WebhookID)[0].Status == "FAILED" }, "delivery ended")
	_, err = h.hooks.RequestWebhookTest(h.ctx, tenant, events.Metadata{}, reg.Event.WebhookID)
	require.Equal(t, "WEBHOOK_DISABLED", eventstore.AsError(err).Code)
}

func TestManualRetryAndDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ok := make(chan struct{})
	rc := newReceiver(t, func(int, received) int {
		select {
		case <-ok:
			return http.StatusOK
		default:
			return http.StatusTooManyRequests
		}
	})
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	opts := fastOptions()
	opts.Schedule = opts.Schedule[:2]
	h.dispatch(opts)
	h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1"})
	eventually(t, func() bool {
		ds := h.deliveries(tenant, reg.Event.WebhookID)
		return len(ds) == 1 && ds[0].Status == "FAILED"
	}, "delivery failed")
	d := h.deliveries(tenant, reg.Event.WebhookID)[0]
	require.Equal(t, "http_429", d.Attempts[0].Reason)

	close(ok)
	_, err := webhooks.Retry(h.ctx, h.db.Pool, other, reg.Event.WebhookID, d.ID)
	require.ErrorIs(t, err, projections.ErrWebhookNotFound)
	_, err = webhooks.Retry(h.ctx, h.db.Pool, tenant, reg.Event.WebhookID, "whd_nope")
	require.ErrorIs(t, err, webhooks.ErrDeliveryNotFound)
	r, err := webhooks.Retry(h.ctx, h.db.Pool, tenant, reg.Event.WebhookID, d.ID)
	require.NoError(t, err)
	require.Equal(t, "PENDING", r.Status)
	eventually(t, func() bool { return h.deliveries(tenant, reg.Event.WebhookID)[0].Status == "SUCCEEDED" }, "manual retry delivered")
	require.Equal(t, 3, h.deliveries(tenant, reg.Event.WebhookID)[0].AttemptCount)

	health, err := webhooks.GetHealth(h.ctx, h.db.Pool, tenant, time.Now())
	require.NoError(t, err)
	require.Equal(t, int64(3), health.Attempts)
	require.Equal(t, int64(1), health.Successes)
	require.NotNil(t, health.LastSuccessAt)
	require.NotNil(t, health.LatencyMs.P99)

	// Deleted: nothing more is delivered, and it is gone for its owner.
	res, err := h.hooks.DeleteWebhook(h.ctx, tenant, events.Metadata{}, reg.Event.WebhookID)
	require.NoError(t, err)
	_, err = h.hooks.DeleteWebhook(h.ctx, other, events.Metadata{}, reg.Event.WebhookID)
	require.ErrorIs(t, err, ledger.ErrWebhookNotFound)
	h.waitProjection(res.Position)
	list, total, err := projections.ListWebhooks(h.ctx, h.db.Pool, tenant, 0, 20)
	require.NoError(t, err)
	require.Zero(t, total)
	require.Empty(t, list)
	_, err = h.hooks.DeleteWebhook(h.ctx, tenant, events.Metadata{}, reg.Event.WebhookID)
	require.ErrorIs(t, err, ledger.ErrWebhookNotFound)
}

// A dispatcher that dies after attempting but before its outcome is
// written leaves the delivery leased; when the lease runs out another
// dispatcher attempts it again. The receiver sees the event twice (same
// id), and the log says so: an interrupted attempt, then a success.
func TestOutcomeLostBeforeRecordingMeansARetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	opts := fastOptions()
	opts.Lease = 500 * time.Millisecond
	opts.Poll = time.Hour // after its attempt, the crashing dispatcher stays asleep
	dropped := make(chan struct{})
	var once sync.Once
	stopA := h.dispatchWith(h.db.Pool, opts, func(d *webhooks.Dispatcher) {
		webhooks.GateFlushes(d, func() bool { once.Do(func() { close(dropped) }); return false })
	})
	src := h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1"})
	<-dropped
	stopA()
	require.Equal(t, 1, rc.count())
	d := h.deliveries(tenant, reg.Event.WebhookID)[0]
	require.Equal(t, "PENDING", d.Status)
	require.Zero(t, d.AttemptCount, "nothing was written")

	h.dispatch(fastOptions())
	eventually(t, func() bool { return h.deliveries(tenant, reg.Event.WebhookID)[0].Status == "SUCCEEDED" }, "retried after the lease ran out")
	d = h.deliveries(tenant, reg.Event.WebhookID)[0]
	require.Equal(t, 2, d.AttemptCount)
	require.Len(t, d.Attempts, 2)
	require.Equal(t, 1, d.Attempts[0].Attempt)
	require.False(t, d.Attempts[0].Success)
	require.Equal(t, "interrupted", d.Attempts[0].Reason)
	require.Contains(t, d.Attempts[0].Error, "interrupted")
	require.Equal(t, 2, d.Attempts[1].Attempt)
	require.True(t, d.Attempts[1].Success)
	want := projections.WebhookEventID(src.ID.String(), "token_pool.low_balance", 0)
	got := rc.requests()
	require.Len(t, got, 2)
	for _, r := range got {
		require.Equal(t, want, r.Env.ID)
	}
}

// A dispatcher whose outcome is written only after its lease ran out and
// another dispatcher delivered the event writes nothing: the log never
// holds two successes, or an attempt by a dispatcher that lost the lease;
// the second dispatcher logged the first one's attempt as interrupted.
func TestLateRecordingAfterLosingTheLeaseWritesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	opts := fastOptions()
	opts.Lease = 500 * time.Millisecond
	opts.Poll = time.Hour
	held, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	stopA := h.dispatchWith(h.db.Pool, opts, func(d *webhooks.Dispatcher) {
		webhooks.GateFlushes(d, func() bool {
			first.Do(func() { close(held); <-release })
			return true
		})
	})
	h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1"})
	<-held
	h.dispatch(fastOptions())
	eventually(t, func() bool { return h.deliveries(tenant, reg.Event.WebhookID)[0].Status == "SUCCEEDED" }, "delivered by the second dispatcher")
	close(release)
	stopA() // returns once its recorder wrote (or skipped) what it held

	d := h.deliveries(tenant, reg.Event.WebhookID)[0]
	require.Equal(t, "SUCCEEDED", d.Status)
	require.Equal(t, 2, d.AttemptCount)
	require.Len(t, d.Attempts, 2)
	require.Equal(t, "interrupted", d.Attempts[0].Reason)
	require.True(t, d.Attempts[1].Success)
	require.Equal(t, 2, rc.count())
	var n int
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM webhook_attempts WHERE success`).Scan(&n))
	require.Equal(t, 1, n)
}
