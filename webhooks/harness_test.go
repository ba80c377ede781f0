package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/netguard"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
	"github.com/sirgiving/ledger/webhooks"
)

// Domain payloads as the rewards code writes them (partner-facing
// camelCase JSON). They are defined here so these tests do not depend on
// that code; when it registers the same event types, theirs are used for
// the schema version and these only for encoding.
type actionCompleted struct {
	ActionID          string   `json:"actionId"`
	IdempotencyKey    string   `json:"idempotencyKey"`
	Status            string   `json:"status"`
	TokensDistributed int64    `json:"tokensDistributed"`
	TransactionIDs    []string `json:"transactionIds"`
}

func (actionCompleted) EventType() string { return "action.completed" }

type actionFailed struct {
	ActionID string `json:"actionId"`
	Code     string `json:"code"`
	Reason   string `json:"reason"`
}

func (actionFailed) EventType() string { return "action.failed" }

type poolLowBalance struct {
	PoolID    string `json:"poolId"`
	Available int64  `json:"available"`
	Threshold int64  `json:"threshold"`
}

func (poolLowBalance) EventType() string { return "pool.low_balance" }

type campaignStatusChanged struct {
	CampaignID string `json:"campaignId"`
	From       string `json:"from"`
	To         string `json:"to"`
}

func (campaignStatusChanged) EventType() string { return "campaign.status_changed" }

type unrelated struct {
	N int `json:"n"`
}

func (unrelated) EventType() string { return "whtest.unrelated" }

func registerIfMissing[T events.Payload]() {
	var zero T
	if !events.IsRegistered(zero.EventType()) {
		events.Register[T](1)
	}
}

func init() {
	registerIfMissing[actionCompleted]()
	registerIfMissing[actionFailed]()
	registerIfMissing[poolLowBalance]()
	registerIfMissing[campaignStatusChanged]()
	registerIfMissing[unrelated]()
}

var (
	tenant = eventstore.Tenant{PartnerID: "ptr_00000000000000000000000000000001", Environment: "sandbox"}
	other  = eventstore.Tenant{PartnerID: "ptr_00000000000000000000000000000002", Environment: "sandbox"}
)

// harness is the write side, the relay and the fan-out projection running
// on a real database and a real JetStream server.
type harness struct {
	t     testing.TB
	db    *testenv.DB
	store *eventstore.Store
	hooks *ledger.Service
	key   []byte
	ctx   context.Context
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	db := testenv.NewDB(t)
	nt := testenv.NewNATS(t)
	nc := nt.Connect(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	store := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(store.Close)
	ctx, cancel := context.WithCancel(context.Background())
	relay, err := eventstore.NewRelay(db.Pool, nc, eventstore.RelayOptions{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	runner, err := projections.NewRunner(db.Pool, nc, projections.RunnerOptions{Idle: 20 * time.Millisecond}, projections.NewWebhooks())
	require.NoError(t, err)
	require.NoError(t, runner.Setup(ctx))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = relay.Run(ctx) }()
	// The relay creates the stream first: nats-server 2.15 has a data race
	// between concurrent stream updates, which the race detector reports.
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, err := js.Stream(ctx, "LEDGER"); return err == nil }, 30*time.Second, 10*time.Millisecond)
	go func() { defer wg.Done(); _ = runner.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &harness{
		t: t, db: db, store: store, key: key, ctx: context.Background(),
		hooks: ledger.NewService(store, ledger.Options{MasterKey: key, WebhookHosts: netguard.Policy{AllowLoopback: true}}),
	}
}

// fastOptions retries quickly so tests take milliseconds.
func fastOptions() webhooks.Options {
	return webhooks.Options{
		Schedule: []time.Duration{0, 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
		Jitter:   -1, Poll: 50 * time.Millisecond, Timeout: 5 * time.Second,
		Addresses: netguard.Policy{AllowLoopback: true},
	}
}

// dispatch runs a dispatcher until the returned stop is called (or the test ends).
func (h *harness) dispatch(opts webhooks.Options) (stop func()) {
	return h.dispatchOn(h.db.Pool, opts)
}

func (h *harness) dispatchOn(pool *pgxpool.Pool, opts webhooks.Options) (stop func()) {
	return h.dispatchWith(pool, opts, nil)
}

// dispatchWith is dispatchOn with setup run on the dispatcher before it starts.
func (h *harness) dispatchWith(pool *pgxpool.Pool, opts webhooks.Options, setup func(*webhooks.Dispatcher)) (stop func()) {
	d := webhooks.New(pool, h.hooks, h.key, opts)
	if setup != nil {
		setup(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return stop
}

func (h *harness) register(scope eventstore.Tenant, url string, all bool, types ...string) ledger.RegisteredWebhook {
	h.t.Helper()
	r, err := h.hooks.RegisterWebhook(h.ctx, scope, events.Metadata{}, ledger.RegisterWebhook{URL: url, EventTypes: types, ReceiveAllEvents: all})
	require.NoError(h.t, err)
	h.waitProjection(r.Position)
	return r
}

func (h *harness) emit(scope eventstore.Tenant, stream string, p events.Payload) events.Event {
	h.t.Helper()
	res, err := h.store.Append(h.ctx, scope, events.Metadata{}, stream, eventstore.ExpectAny, p)
	require.NoError(h.t, err)
	return res.Events[0]
}

// eventually waits for cond with a generous deadline (never a timing assertion).
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, 10*time.Millisecond, msg)
}

// received is one request a receiver got.
type received struct {
	Header http.Header
	Body   []byte
	Valid  bool // signature verified with the secret alone
	Env    struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt string          `json:"createdAt"`
		Data      json.RawMessage `json:"data"`
	}
}

// receiver is a local HTTPS-less endpoint that verifies signatures the way
// the public documentation tells partners to, with nothing but the secret.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	got    []received
	answer func(n int, r received) int // status for the n-th request (from 1)
	conns  atomic.Int64                // connections opened to it
}

func newReceiver(t testing.TB, answer func(n int, r received) int) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{Header: r.Header.Clone(), Body: body}
		_ = json.Unmarshal(body, &rec.Env)
		rc.mu.Lock()
		m := hmac.New(sha256.New, []byte(rc.secret))
		m.Write([]byte(r.Header.Get("X-SIR-Timestamp") + "." + string(body)))
		rec.Valid = r.Header.Get("X-SIR-Signature") == "sha256="+hex.EncodeToString(m.Sum(nil))
		rc.got = append(rc.got, rec)
		n := len(rc.got)
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(n, rec)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"status":` + strconv.Itoa(status) + `}`))
	}))
	rc.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.conns.Add(1)
		}
	}
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) setSecret(s string) {
	rc.mu.Lock()
	rc.secret = s
	rc.mu.Unlock()
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) count() int { return len(rc.requests()) }

func (h *harness) deliveries(scope eventstore.Tenant, webhookID string) []webhooks.Delivery {
	h.t.Helper()
	ds, _, err := webhooks.ListDeliveries(h.ctx, h.db.Pool, scope, webhookID, 0, 100)
	require.NoError(h.t, err)
	return ds
}

func (h *harness) waitProjection(pos int64) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	require.NoError(h.t, projections.WaitFor(ctx, h.db.Pool, pos, projections.WebhooksName))
}
