package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/internal/testkit/natscluster"
	"github.com/sirgiving/ledger/internal/testkit/proctest"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// failoverBound is the longest a failover may take before the test fails.
//
//   - A JetStream stream leader killed: its followers start an election when
//     they have not heard from it for a random 4–9 s (nats-server's raft
//     election timeout), and the vote takes one round trip on loopback; so
//     up to ~9.5 s, plus the 100 ms this test polls at.
//   - A ledgerd killed while leading the relay and the projectors: the
//     kernel closes its PostgreSQL sessions, so its advisory locks go at
//     once, and each standby retries the lock every second; so ~1 s.
//
// 12 s covers the worst election with margin for a loaded 2-core machine,
// and still fails a failover that needs a second election or a lease
// timeout instead of reacting to the failure.
const failoverBound = 12 * time.Second

// TestClusterFailover runs the production topology on loopback: a
// three-node JetStream cluster (OS processes), the event stream with three
// replicas, and two ledgerd processes built from this command against one
// PostgreSQL database, while signed submits, bulks and reversals go through
// both. It kills the node leading the stream, the ledgerd leading the relay
// and projectors, and then two of the three nodes (quorum lost), restarts
// each, and checks that every acknowledged action exists exactly once
// everywhere (docs/operations.md describes this topology).
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	began := time.Now()
	ctx := context.Background()
	mark := func(what string) { t.Logf("cluster: %s at %s", what, time.Since(began).Round(100*time.Millisecond)) }
	bins := proctest.Binaries(t, raceEnabled)
	mark("binaries built")
	db := testenv.NewDB(t)
	nodes := natscluster.Start(t)
	mark("JetStream cluster up")
	nc := nodes.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	// An earlier single-node deployment left the stream with one replica;
	// ledgerd says so and how to fix it, and its relay raises it.
	_, err = bus.EnsureStream(ctx, js, bus.Config{Replicas: 1})
	require.NoError(t, err)

	hooks := newHookReceiver(t)
	secret := func() string { b := make([]byte, 32); _, _ = rand.Read(b); return hex.EncodeToString(b) }
	common := []string{"LEDGER_ENV=development", "LEDGER_MASTER_KEY=" + secret(), "JWT_SECRET=" + secret(),
		"NATS_REPLICAS=3", "WEBHOOKS_ALLOW_LOOPBACK=true", "LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=5s", "READ_YOUR_WRITES_WAIT=10s",
		"RATE_LIMITS=STANDARD=1000000,PROFESSIONAL=1000000,ENTERPRISE=1000000"}
	dbURL := func(name string) string {
		u, err := url.Parse(db.URL)
		require.NoError(t, err)
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	ledgerd := filepath.Join(bins, "ledgerd")
	a := proctest.NewLedgerd(t, ledgerd, "ledgerd-a", append(common, "DATABASE_URL="+dbURL("ledgerd-a"),
		"NATS_URL="+nodes.URL(), "DATA_DIR="+t.TempDir())...)
	// B's server list starts with a node that does not exist.
	dead := fmt.Sprintf("nats://127.0.0.1:%d", proctest.FreePort(t))
	b := proctest.NewLedgerd(t, ledgerd, "ledgerd-b", append(common, "DATABASE_URL="+dbURL("ledgerd-b"),
		"NATS_URL="+dead+","+nodes.URL(), "DATA_DIR="+t.TempDir())...)
	procs := []*proctest.Process{a, b}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("%s log (tail):\n%s", p.Name, tail(p.Log(), 6000))
			}
			for i, n := range nodes.Nodes {
				t.Logf("%s log (tail):\n%s", n.Name, tail(nodes.Log(i), 3000))
			}
		}
	})

	// A starts alone, so it leads the relay and every projector.
	a.Start(60 * time.Second)
	eventually(t, 30*time.Second, "ledgerd-a leads the relay and every projector", func() bool {
		return allLedBy(t, db.Pool, "ledgerd-a")
	})
	eventually(t, 30*time.Second, "the relay raises the stream to 3 replicas", func() bool {
		_, replicas, err := natscluster.StreamLeader(ctx, js, "LEDGER")
		return err == nil && replicas == 3
	})
	eventually(t, 30*time.Second, "ledgerd-a says the stream had one replica and how to fix it", func() bool {
		return strings.Contains(a.Log(), "stream LEDGER has 1 replica(s)") && strings.Contains(a.Log(), "nats stream edit LEDGER --replicas 3")
	})
	eventually(t, 30*time.Second, "ledgerd-a's relay has published everything", func() bool {
		var cp int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT position FROM relay_checkpoints WHERE name = 'jetstream'`).Scan(&cp))
		return cp == head(t, db.Pool)
	})
	b.Start(60 * time.Second)
	mark("both ledgerd up")

	// A ledgerd configured with the default NATS_REPLICAS=1 against this
	// cluster is told, and would never lower the stream's replicas.
	st, err := js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	require.Contains(t, bus.ReplicaAdvice(st.CachedInfo(), 1), "set NATS_REPLICAS=3")
	require.Empty(t, bus.ReplicaAdvice(st.CachedInfo(), 3))
	_, err = bus.EnsureStream(ctx, js, bus.Config{Replicas: 1})
	require.NoError(t, err)
	_, replicas, err := natscluster.StreamLeader(ctx, js, "LEDGER")
	require.NoError(t, err)
	require.Equal(t, 3, replicas, "a replica with NATS_REPLICAS=1 must not lower the stream's replicas")

	// A partner through the real flow: the development demo user logs in
	// on B and creates a sandbox key; the webhook is registered on A.
	s := newSigner(t, b.URL())
	code, body := s.send(a.URL(), http.MethodPost, "/v1/partner/webhooks", mustJSON(t, map[string]any{
		"url": hooks.srv.URL + "/hook", "description": "cluster test", "eventTypes": []string{"action.completed", "action.reversed"},
	}), time.Now().Unix())
	require.Equal(t, http.StatusCreated, code, "%s", body)

	l := &load{t: t, s: s, procs: procs, acked: map[string]*ackedAction{}}
	l.start(2)
	mark("load started")
	time.Sleep(3 * time.Second)

	// 1. Kill the ledgerd leading the relay and every projector, under load.
	// (A has led since it started alone; should a failed relay round have
	// handed the relay to B since, the test waits until one process leads
	// everything again.)
	var victim, survivor *proctest.Process
	eventually(t, 30*time.Second, "one ledgerd leads the relay and every projector", func() bool {
		for i, p := range procs {
			if allLedBy(t, db.Pool, p.Name) {
				victim, survivor = p, procs[1-i]
				return true
			}
		}
		return false
	})
	led := projectionNames()
	killed := time.Now()
	victim.Kill()
	var relayMoved, projectorsMoved time.Duration
	eventually(t, time.Minute, "the survivor leads the relay and every projector", func() bool {
		h := leaders(t, db.Pool)
		if relayMoved == 0 && h[relayKey] == survivor.Name {
			relayMoved = time.Since(killed)
		}
		if projectorsMoved == 0 && allLedBy(t, db.Pool, survivor.Name) {
			projectorsMoved = time.Since(killed)
		}
		return relayMoved > 0 && projectorsMoved > 0
	})
	report(t, "cluster: %s killed while leading the relay and projectors %v; %s took the relay after %s and every projector after %s",
		victim.Name, led, survivor.Name, relayMoved.Round(time.Millisecond), projectorsMoved.Round(time.Millisecond))
	victim.Start(60 * time.Second)
	mark("killed ledgerd restarted")
	time.Sleep(2 * time.Second)

	// 2. Kill the node leading the stream, under load.
	leader, _, err := natscluster.StreamLeader(ctx, js, "LEDGER")
	require.NoError(t, err)
	li := nodes.Index(leader)
	require.GreaterOrEqual(t, li, 0, "leader %q", leader)
	killed = time.Now()
	nodes.Kill(li)
	var newLeader string
	eventually(t, time.Minute, "a new stream leader", func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		newLeader, _, err = natscluster.StreamLeader(cctx, js, "LEDGER")
		return err == nil && newLeader != leader
	})
	brokerFailover := time.Since(killed)
	seqAtElection := lastSeq(t, js)
	eventually(t, time.Minute, "the relay publishes again", func() bool { return lastSeq(t, js) > seqAtElection })
	relayResumed := time.Since(killed)
	report(t, "cluster: stream leader %s killed; %s leads after %s; the relay published again after %s", leader, newLeader,
		brokerFailover.Round(time.Millisecond), relayResumed.Round(time.Millisecond))
	nodes.Restart(li)
	mark("killed node restarted")
	time.Sleep(2 * time.Second)

	// 3. Quorum lost: two of three nodes down. Commands still commit into
	// PostgreSQL; the relay waits; nothing is lost when quorum returns.
	down := []int{(li + 1) % natscluster.Size, (li + 2) % natscluster.Size}
	lossStart := time.Now()
	for _, i := range down {
		nodes.Kill(i)
	}
	ackedBefore, retriedBefore := l.count(), l.retried()
	headAtLoss := head(t, db.Pool)
	time.Sleep(4 * time.Second)
	eventually(t, 30*time.Second, "commands keep committing without a quorum", func() bool { return l.count() > ackedBefore+10 })
	var relayed int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT position FROM relay_checkpoints WHERE name = 'jetstream'`).Scan(&relayed))
	headDuringLoss := head(t, db.Pool)
	require.Greater(t, headDuringLoss, headAtLoss)
	require.Less(t, relayed, headDuringLoss, "without a quorum the relay cannot have published everything")
	committedWithoutQuorum := l.count() - ackedBefore
	require.Equal(t, retriedBefore, l.retried(), "without a quorum every command still succeeds at its first attempt: %v", l.lastRetry())
	returned := time.Now()
	for _, i := range down {
		nodes.Restart(i)
	}
	eventually(t, 90*time.Second, "the relay catches up once quorum returns", func() bool {
		var cp int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT position FROM relay_checkpoints WHERE name = 'jetstream'`).Scan(&cp))
		return cp >= headDuringLoss
	})
	quorumCatchUp := time.Since(returned)
	mark("quorum back, relay caught up")
	report(t, "cluster: quorum lost (%s and %s down) for %s: %d actions acknowledged meanwhile; the relay caught up %s after quorum returned",
		nodes.Nodes[down[0]].Name, nodes.Nodes[down[1]].Name, returned.Sub(lossStart).Round(time.Second), committedWithoutQuorum, quorumCatchUp.Round(time.Millisecond))

	time.Sleep(2 * time.Second)
	l.stop()
	require.Empty(t, l.errs, "requests that failed for a reason other than a process or node being down")

	// 4. Everything converges: the stream holds the event store, the read
	// models are at the head, every webhook arrived.
	end := head(t, db.Pool)
	eventually(t, time.Minute, "JetStream holds every event", func() bool { return lastPosition(t, js) >= end })
	eventually(t, time.Minute, "every projector reaches the head", func() bool {
		var lagging int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM projection_checkpoints WHERE position < $1`, end).Scan(&lagging))
		return lagging == 0
	})
	var numActions, numReversed int
	for _, x := range l.snapshot() {
		numActions++
		if x.reversed {
			numReversed++
		}
	}
	eventually(t, 2*time.Minute, "every webhook arrives", func() bool { return hooks.distinct() >= numActions+numReversed })
	mark("converged")

	// Exactly once in the event store.
	acked := l.snapshot()
	rows, err := db.Pool.Query(ctx, `SELECT stream_id, event_type, count(*) FROM events
		WHERE event_type IN ('action.completed', 'action.reversed') GROUP BY 1, 2`)
	require.NoError(t, err)
	stored := map[string]int{}
	for rows.Next() {
		var stream, typ string
		var n int
		require.NoError(t, rows.Scan(&stream, &typ, &n))
		stored[typ+" "+strings.TrimPrefix(stream, "action-")] = n
	}
	require.NoError(t, rows.Err())
	for id, x := range acked {
		require.Equal(t, 1, stored["action.completed "+id], "action %s", id)
		if x.reversed {
			require.Equal(t, 1, stored["action.reversed "+id], "reversal of %s", id)
		} else {
			require.Zero(t, stored["action.reversed "+id], "action %s was not reversed", id)
		}
	}
	require.Equal(t, numActions+numReversed, len(stored), "the store holds only acknowledged actions")

	// The same events in JetStream: same count, no duplicate, in order.
	var events int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events))
	require.Equal(t, end, events)
	inStream := streamPositions(t, js, end)
	mark("stream read")
	require.Len(t, inStream, int(end))
	for i, p := range inStream {
		require.Equal(t, int64(i+1), p, "stream message %d", i+1)
	}

	// The read model, through both processes.
	for _, p := range procs {
		listed := listActions(t, s, p.URL())
		require.Len(t, listed, numActions, "actions listed through %s", p.Name)
		for id, x := range acked {
			want := "COMPLETED"
			if x.reversed {
				want = "REVERSED"
			}
			require.Equal(t, want, listed[id], "action %s through %s", id, p.Name)
		}
	}

	// The audit tools agree.
	ctl := func(args ...string) string {
		cmd := exec.Command(filepath.Join(bins, "ledgerctl"), args...)
		cmd.Env = []string{"DATABASE_URL=" + db.URL}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "ledgerctl %v: %s", args, out)
		return string(out)
	}
	verify := ctl("audit", "verify")
	reconcile := ctl("audit", "reconcile")
	mark("audited")
	require.Contains(t, reconcile, "reconciled as of position")

	// Every webhook arrived (at least once).
	for id, x := range acked {
		require.Positive(t, hooks.count("action.completed "+id), "action.completed of %s", id)
		if x.reversed {
			require.Positive(t, hooks.count("action.reversed "+id), "action.reversed of %s", id)
		}
	}
	// The size the event table grows by, for sizing partitions
	// (docs/operations.md).
	var tableBytes int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT pg_total_relation_size('events')`).Scan(&tableBytes))
	received, distinct := hooks.total(), hooks.distinct()
	for _, p := range procs {
		require.Empty(t, p.DataRaces(), "%s", p.Name)
	}
	report(t, "cluster: acknowledged %d actions (%d reversed; %d retried after a process or node failure); stored %d events, "+
		"%d in JetStream in position order without duplicates; projected (listed with the right status through both ledgerd): %d; webhooks received %d, "+
		"%d distinct (duplicates %d); projector lag 0; events table %d bytes per event with its indexes; audit verify: %s; audit reconcile: %s",
		numActions, numReversed, l.retried(), end, len(inStream), numActions, received, distinct, received-distinct, tableBytes/end,
		strings.TrimSpace(verify), strings.TrimSpace(reconcile))
	report(t, "cluster: failover: stream leader %s, relay publishing %s, relay leadership %s, projector leadership %s (bound %s; relay publishing %s); "+
		"quorum regained → relay caught up %s",
		brokerFailover.Round(time.Millisecond), relayResumed.Round(time.Millisecond), relayMoved.Round(time.Millisecond),
		projectorsMoved.Round(time.Millisecond), failoverBound, failoverBound+10*time.Second, quorumCatchUp.Round(time.Millisecond))
	require.LessOrEqual(t, brokerFailover, failoverBound, "stream leader failover")
	// A publish in flight to the dead leader waits up to the relay's
	// acknowledgement timeout (10 s) before the relay retries.
	require.LessOrEqual(t, relayResumed, failoverBound+10*time.Second, "relay publishing after a stream leader failover")
	require.LessOrEqual(t, relayMoved, failoverBound, "relay leadership failover")
	require.LessOrEqual(t, projectorsMoved, failoverBound, "projector leadership failover")
}

// --- leadership, as PostgreSQL's advisory locks show it ---------------------

// The advisory lock keys of the relay and of each projector's leadership
// (eventstore.lockKey and projections.leaderKey; restated here because a
// test outside those packages sees the locks only as numbers).
var relayKey = fnvKey("relay:jetstream")

func projectorKey(name string) int64 { return fnvKey("projection-leader:" + name) }

func fnvKey(s string) int64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return int64(h.Sum64())
}

func projectionNames() []string {
	var out []string
	for _, p := range app.Projections() {
		out = append(out, p.Name())
	}
	return out
}

// leaders maps each advisory lock held in the test's database to the
// application_name of the session holding it (each ledgerd names itself).
func leaders(t *testing.T, pool *pgxpool.Pool) map[int64]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT l.classid::bigint, l.objid::bigint, a.application_name
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var hi, lo int64
		var name string
		require.NoError(t, rows.Scan(&hi, &lo, &name))
		out[int64(uint64(hi)<<32|uint64(lo))] = name
	}
	require.NoError(t, rows.Err())
	return out
}

func allLedBy(t *testing.T, pool *pgxpool.Pool, name string) bool {
	h := leaders(t, pool)
	if h[relayKey] != name {
		return false
	}
	for _, p := range projectionNames() {
		if h[projectorKey(p)] != name {
			return false
		}
	}
	return true
}

func head(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var h int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT position FROM event_head`).Scan(&h))
	return h
}

// --- JetStream ---------------------------------------------------------------

// lastSeq is the stream's last sequence, or 0 while it cannot be read
// (no leader, no quorum).
func lastSeq(t *testing.T, js jetstream.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "LEDGER")
	if err != nil {
		return 0
	}
	return st.CachedInfo().State.LastSeq
}

// lastPosition is the event position the stream's last message ends
// with (0 while the stream cannot be read).
func lastPosition(t *testing.T, js jetstream.JetStream) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "LEDGER")
	if err != nil {
		return 0
	}
	m, err := st.GetMsg(ctx, st.CachedInfo().State.LastSeq)
	if err != nil {
		return 0
	}
	p, _ := strconv.ParseInt(m.Header.Get(bus.HeaderPosition), 10, 64)
	return p
}

// streamPositions reads the whole stream in sequence order from its
// leader (the authoritative copy; an ordered consumer may sit on a replica
// still catching up after the restarts) and returns the position of every
// event the messages carry, checking no event appears twice.
func streamPositions(t *testing.T, js jetstream.JetStream, n int64) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	state := st.CachedInfo().State
	seen := map[uuid.UUID]bool{}
	var out []int64
	for seq := state.FirstSeq; seq <= state.LastSeq; seq++ {
		var m *jetstream.RawStreamMsg
		for {
			if m, err = st.GetMsg(ctx, seq); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond) // a leader change: ask again
		}
		require.NoError(t, err, "stream sequence %d", seq)
		evs, err := eventstore.EventsOf(m.Header, m.Data)
		require.NoError(t, err, "stream sequence %d", seq)
		for _, e := range evs {
			require.False(t, seen[e.ID], "event %s twice in the stream", e.ID)
			seen[e.ID] = true
			out = append(out, e.Position)
		}
	}
	require.Len(t, out, int(n), "events in the stream")
	return out
}

// --- the partner's client ------------------------------------------------------

// signer signs requests with a sandbox key of the development demo user's
// partner (CONTRACT §2).
type signer struct {
	key, hmac string
	hc        *http.Client
	mu        sync.Mutex
	used      map[string]bool
}

func newSigner(t *testing.T, base string) *signer {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	post := func(path, token string, in, out any) {
		req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(mustJSON(t, in)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		require.Less(t, resp.StatusCode, 300, "%s: %s", path, raw)
		require.NoError(t, json.Unmarshal(raw, out))
	}
	var login struct {
		AccessToken string `json:"accessToken"`
	}
	post("/v1/partner/auth/login", "", map[string]string{"email": app.DemoEmail, "password": app.DemoPassword}, &login)
	var key struct {
		SecretKey  string `json:"secretKey"`
		HMACSecret string `json:"hmacSecret"`
	}
	post("/v1/partner/keys", login.AccessToken, map[string]string{"name": "cluster", "environment": "sandbox"}, &key)
	return &signer{key: key.SecretKey, hmac: key.HMACSecret, hc: hc, used: map[string]bool{}}
}

// send signs at ts, or the latest earlier second whose signature of this
// request was not used yet (the server refuses a replayed signature, and a
// retry of an identical request must not be one).
func (s *signer) send(base, method, path string, body []byte, ts int64) (int, []byte) {
	code, raw, err := s.try(base, method, path, body, ts)
	if err != nil {
		return 0, []byte(err.Error())
	}
	return code, raw
}

func (s *signer) try(base, method, path string, body []byte, ts int64) (int, []byte, error) {
	s.mu.Lock()
	sig := httpapi.Sign(s.hmac, strconv.FormatInt(ts, 10), method, path, body)
	for s.used[sig] {
		ts--
		sig = httpapi.Sign(s.hmac, strconv.FormatInt(ts, 10), method, path, body)
	}
	s.used[sig] = true
	s.mu.Unlock()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Partner-Key", s.key)
	req.Header.Set("X-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Signature", sig)
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func listActions(t *testing.T, s *signer, base string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for page := 1; ; page++ {
		path := fmt.Sprintf("/v1/partner/actions?page=%d&limit=100", page)
		code, raw := s.send(base, http.MethodGet, path, nil, time.Now().Unix())
		require.Equal(t, http.StatusOK, code, "%s", raw)
		var res struct {
			Data []struct {
				ActionID string `json:"actionId"`
				Status   string `json:"status"`
			} `json:"data"`
			Pagination struct {
				HasMore bool `json:"hasMore"`
			} `json:"pagination"`
		}
		require.NoError(t, json.Unmarshal(raw, &res))
		for _, d := range res.Data {
			_, dup := out[d.ActionID]
			require.False(t, dup, "action %s listed twice", d.ActionID)
			out[d.ActionID] = d.Status
		}
		if !res.Pagination.HasMore {
			return out
		}
	}
}

// --- the load ------------------------------------------------------------------

type ackedAction struct {
	reversed bool
}

// load sends submits, bulks and reversals through both ledgerd, each
// request to one process and, when that process or its answer is lost
// (connection refused or reset, 5xx), again to the other with the same
// idempotency key until it is answered: an action counts as acknowledged
// only once a 2xx (or the 409 that repeats the original) says so.
type load struct {
	t     *testing.T
	s     *signer
	procs []*proctest.Process

	mu       sync.Mutex
	acked    map[string]*ackedAction
	open     []string // completed, not reversed, not being reversed
	errs     []string
	retries  int
	last     string // why the latest retry was needed
	stopping chan struct{}
	wg       sync.WaitGroup
}

func (l *load) start(workers int) {
	l.stopping = make(chan struct{})
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				l.step(w, i)
				// A steady trickle, not a benchmark: the test shares two
				// cores with the rest of the suite, and race-built ledgerd.
				select {
				case <-l.stopping:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
}

func (l *load) stop() { close(l.stopping); l.wg.Wait() }

func (l *load) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.acked) }

func (l *load) retried() int { l.mu.Lock(); defer l.mu.Unlock(); return l.retries }

func (l *load) lastRetry() string { l.mu.Lock(); defer l.mu.Unlock(); return l.last }

func (l *load) snapshot() map[string]ackedAction {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]ackedAction, len(l.acked))
	for k, v := range l.acked {
		out[k] = *v
	}
	return out
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
}

func actionItem(key string) map[string]any {
	user := fmt.Sprintf("u%d", mrand.IntN(40))
	return map[string]any{"idempotencyKey": key, "actionType": "PURCHASE", "amount": json.Number(strconv.Itoa(1 + mrand.IntN(5))),
		"currency": "USD", "autoCreateUsers": true,
		"stakeholders": []map[string]any{{"stakeholderTypeCode": "CUSTOMER", "partnerUserId": user, "userEmail": user + "@example.com"}}}
}

func (l *load) step(w, i int) {
	key := fmt.Sprintf("w%d-%d", w, i)
	switch r := i % 10; {
	case r >= 8:
		l.mu.Lock()
		var id string
		if n := len(l.open); n > 0 {
			k := mrand.IntN(n)
			id = l.open[k]
			l.open[k] = l.open[n-1]
			l.open = l.open[:n-1]
		}
		l.mu.Unlock()
		if id != "" {
			l.reverse(w+i, id)
			return
		}
		fallthrough
	case r < 6:
		code, raw, attempts := l.call(w+i, http.MethodPost, "/v1/partner/actions/submit", mustJSON(l.t, actionItem(key)))
		var res struct {
			ActionID string `json:"actionId"`
		}
		_ = json.Unmarshal(raw, &res)
		if (code == http.StatusOK || code == http.StatusConflict && attempts > 1) && res.ActionID != "" {
			l.ack(res.ActionID)
		} else if code != 0 {
			l.fail("submit %s: %d %s", key, code, raw)
		}
	default:
		items := make([]map[string]any, 5)
		for j := range items {
			items[j] = actionItem(fmt.Sprintf("%s-%d", key, j))
		}
		code, raw, _ := l.call(w+i, http.MethodPost, "/v1/partner/actions/bulk", mustJSON(l.t, map[string]any{"actions": items}))
		var res struct {
			Results []struct {
				Status   string `json:"status"`
				ActionID string `json:"actionId"`
			} `json:"results"`
		}
		if code != http.StatusOK || json.Unmarshal(raw, &res) != nil || len(res.Results) != len(items) {
			if code != 0 {
				l.fail("bulk %s: %d %s", key, code, raw)
			}
			return
		}
		for _, it := range res.Results {
			if it.Status == "COMPLETED" || it.Status == "REPLAYED" {
				l.ack(it.ActionID)
			} else {
				l.fail("bulk %s item: %s", key, it.Status)
			}
		}
	}
}

func (l *load) ack(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acked[id] == nil {
		l.acked[id] = &ackedAction{}
		l.open = append(l.open, id)
	}
}

func (l *load) reverse(start int, id string) {
	code, raw, attempts := l.call(start, http.MethodPost, "/v1/partner/actions/"+id+"/reverse", mustJSON(l.t, map[string]string{"reason": "cluster test"}))
	var res struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(raw, &res)
	switch {
	case code == http.StatusOK, code == http.StatusConflict && res.Code == "ALREADY_REVERSED" && attempts > 1:
		l.mu.Lock()
		l.acked[id].reversed = true
		l.mu.Unlock()
	case code != 0:
		l.fail("reverse %s: %d %s", id, code, raw)
	}
}

// call sends the request until some process answers it with a status that
// is not a 5xx; it returns that answer and the attempts made (code 0: no
// answer within two minutes, itself a failure).
func (l *load) call(start int, method, path string, body []byte) (int, []byte, int) {
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		p := l.procs[(start+attempt)%len(l.procs)]
		code, raw, err := l.s.try(p.URL(), method, path, body, time.Now().Unix())
		if err == nil && code < 500 {
			return code, raw, attempt + 1
		}
		if attempt == 0 {
			l.mu.Lock()
			l.retries++
			l.last = fmt.Sprintf("%s %s on %s: %d %v %.200s", method, path, p.Name, code, err, raw)
			l.mu.Unlock()
		}
		if time.Now().After(deadline) {
			l.fail("%s %s: no answer in 2 minutes: %d %v %s", method, path, code, err, raw)
			return 0, nil, attempt + 1
		}
		time.Sleep(time.Duration(math.Min(float64(50*(attempt+1)), 500)) * time.Millisecond)
	}
}

// --- the webhook receiver ----------------------------------------------------------

type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]int // "type actionId" → deliveries
	n    int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{seen: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Type string `json:"type"`
			Data struct {
				ActionID string `json:"actionId"`
			} `json:"data"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &env)
		h.mu.Lock()
		h.seen[env.Type+" "+env.Data.ActionID]++
		h.n++
		h.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) count(k string) int { h.mu.Lock(); defer h.mu.Unlock(); return h.seen[k] }
func (h *hookReceiver) total() int         { h.mu.Lock(); defer h.mu.Unlock(); return h.n }
func (h *hookReceiver) distinct() int      { h.mu.Lock(); defer h.mu.Unlock(); return len(h.seen) }

// --- helpers ---------------------------------------------------------------------

// report logs a line of the test's findings and, when CLUSTER_REPORT
// names a file (`make test` sets it), appends it there too: go test shows
// a passing package's output only with -v, and these figures are wanted
// from every run.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	if path := os.Getenv("CLUSTER_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		require.NoError(t, err)
		defer f.Close()
		_, err = fmt.Fprintf(f, "%s %s\n", t.Name(), line)
		require.NoError(t, err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func mustJSON(t *testing.T, v any) []byte {
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		require.True(t, time.Now().Before(deadline), "not within %s: %s", within, what)
		time.Sleep(100 * time.Millisecond)
	}
}
