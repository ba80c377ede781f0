package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func startRelay(t *testing.T, db *testenv.DB, n *testenv.NATS) {
	t.Helper()
	startRelayWith(t, db, n, eventstore.RelayOptions{Poll: 50 * time.Millisecond})
}

func startRelayWith(t *testing.T, db *testenv.DB, n *testenv.NATS, opts eventstore.RelayOptions) {
	t.Helper()
	r, err := eventstore.NewRelay(db.Pool, n.Connect(t), opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// readStream consumes the whole JetStream stream with an ordered consumer
// until want events arrived, and returns them in stream order. It checks
// each message's position headers against the events it carries, and that
// the stream holds no message beyond those read.
func readStream(t *testing.T, n *testenv.NATS, want int) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js, err := jetstream.New(n.Connect(t))
	require.NoError(t, err)
	var st jetstream.Stream
	require.Eventually(t, func() bool {
		st, err = js.Stream(ctx, bus.Config{}.WithDefaults().Stream)
		return err == nil
	}, 30*time.Second, 20*time.Millisecond)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []events.Event
	msgs := 0
	for len(out) < want {
		require.NoError(t, ctx.Err(), "JetStream never held %d events (got %d)", want, len(out))
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			es, err := eventstore.EventsOf(m.Headers(), m.Data())
			require.NoError(t, err)
			require.Equal(t, strconv.FormatInt(es[0].Position, 10), m.Headers().Get(bus.HeaderFirstPosition))
			require.Equal(t, strconv.FormatInt(es[len(es)-1].Position, 10), m.Headers().Get(bus.HeaderPosition))
			require.Equal(t, strconv.Itoa(len(es)), m.Headers().Get(bus.HeaderCount))
			out = append(out, es...)
			msgs++
		}
	}
	info, err := st.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(msgs), info.State.Msgs, "no extra (duplicate) messages in the stream")
	return out
}

// appendNotes appends testNote{N: from}..testNote{N: to-1} to stream, one
// command each.
func appendNotes(t *testing.T, s *eventstore.Store, stream string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		_, err := s.Append(context.Background(), scope, events.Metadata{}, stream, eventstore.ExpectAny, testNote{N: i})
		require.NoError(t, err)
	}
}

// checkExactlyOnceInOrder asserts JetStream carries positions 1..n, each
// once, in order, and that each stream's versions arrive in order.
func checkExactlyOnceInOrder(t *testing.T, got []events.Event, n int) {
	t.Helper()
	require.Len(t, got, n)
	lastVersion := map[string]int64{}
	for i, e := range got {
		require.Equal(t, int64(i+1), e.Position, "message %d out of order or missing", i)
		require.Equal(t, lastVersion[e.StreamID]+1, e.StreamVersion, "stream %s out of order", e.StreamID)
		lastVersion[e.StreamID] = e.StreamVersion
	}
}

// Many writers in three "processes" commit concurrently while the relay
// runs. If the relay could skip an event whose transaction committed after
// a higher-numbered one, a position would be missing from JetStream.
func TestRelayPublishesEveryEventOnceInOrderUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	startRelay(t, db, n)
	const writers, perWriter = 24, 25
	appendConcurrently(t, withOtherProcesses(t, db, openStore(t, db)), writers, perWriter)
	checkExactlyOnceInOrder(t, readStream(t, n, writers*perWriter), writers*perWriter)
}

// withOtherProcesses returns first and two stores on pools of their own
// (two more processes appending to the same database).
func withOtherProcesses(t *testing.T, db *testenv.DB, first *eventstore.Store) []*eventstore.Store {
	t.Helper()
	stores := []*eventstore.Store{first}
	for i := 0; i < 2; i++ {
		s := eventstore.OpenStore(db.NewPool(t), eventstore.StoreOptions{MaxBatch: 8})
		t.Cleanup(s.Close)
		stores = append(stores, s)
	}
	return stores
}

// appendConcurrently has writers goroutines, spread over stores, each
// append perWriter notes to seven streams, and waits for them all.
func appendConcurrently(t *testing.T, stores []*eventstore.Store, writers, perWriter int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := stores[w%len(stores)]
			for i := 0; i < perWriter; i++ {
				stream := fmt.Sprintf("note-%d", (w*perWriter+i)%7)
				_, err := s.Append(context.Background(), scope, events.Metadata{}, stream, eventstore.ExpectAny, testNote{N: w*1000 + i})
				require.NoError(t, err)
			}
		}(w)
	}
	wg.Wait()
}

// The relay publishes from its own process's commit tail where it can.
// With two other processes appending between that process's batches, the
// tail has gaps the relay must fill from PostgreSQL: JetStream must still
// hold every position once, in order, and each event exactly as stored.
func TestRelayFromTheCommitTailFillsOtherProcessesFromPostgres(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	tail := eventstore.NewTail()
	startRelayWith(t, db, n, eventstore.RelayOptions{Poll: 50 * time.Millisecond, Tail: tail, BatchSize: 16})
	local := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{MaxBatch: 8, Tail: tail})
	t.Cleanup(local.Close)
	const writers, perWriter = 12, 25
	appendConcurrently(t, withOtherProcesses(t, db, local), writers, perWriter)
	got := readStream(t, n, writers*perWriter)
	checkExactlyOnceInOrder(t, got, writers*perWriter)
	stored, err := eventstore.ReadFrom(context.Background(), db.Pool, 0, writers*perWriter)
	require.NoError(t, err)
	require.Equal(t, stored, got)
	require.NotZero(t, tail.Last(), "the local store fed the tail")
}

// Commits wake the relay, not its poll: with a poll that never fires in
// the test's time, every event of three processes (a tail with gaps the
// store fills) still reaches JetStream, once and in order.
func TestRelayFollowsNotificationsWithoutPolling(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	tail := eventstore.NewTail()
	startRelayWith(t, db, n, eventstore.RelayOptions{Poll: time.Hour, Tail: tail, BatchSize: 16})
	local := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{MaxBatch: 8, Tail: tail})
	t.Cleanup(local.Close)
	const writers, perWriter = 9, 20
	appendConcurrently(t, withOtherProcesses(t, db, local), writers, perWriter)
	checkExactlyOnceInOrder(t, readStream(t, n, writers*perWriter), writers*perWriter)
}

// A relay fed by its own process's commit tail reads PostgreSQL only when
// the tail cannot serve it: one command after another, each published
// before the next, is not one store read per command (an empty read after
// every round, as the relay once did).
func TestRelayServedByTheTailDoesNotReadTheStore(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	tail := eventstore.NewTail()
	reg := prometheus.NewRegistry()
	startRelayWith(t, db, n, eventstore.RelayOptions{Poll: time.Hour, Tail: tail, Registerer: reg})
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{Tail: tail})
	t.Cleanup(s.Close)
	const commands = 30
	for i := 1; i <= commands; i++ {
		appendNotes(t, s, "note-tail", i, i+1)
		require.Eventually(t, func() bool { return metricValue(t, reg, "ledger_relay_position") == float64(i) }, 30*time.Second, time.Millisecond)
	}
	checkExactlyOnceInOrder(t, readStream(t, n, commands), commands)
	require.Less(t, metricValue(t, reg, "ledger_relay_store_reads_total"), float64(commands/3),
		"the tail served the rounds; the store is read at start and when the tail misses")
}

// With NATS down, appends still succeed; when it returns, the relay
// catches up with nothing lost or doubled.
func TestRelayCatchesUpAfterNATSOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	s := openStore(t, db)
	startRelay(t, db, n)

	appendNotes(t, s, "note-before", 0, 50)
	readStream(t, n, 50)

	n.Stop()
	for i := 0; i < 100; i++ {
		_, err := s.Append(ctx, scope, events.Metadata{}, fmt.Sprintf("note-during-%d", i%5), eventstore.ExpectAny, testNote{N: i})
		require.NoError(t, err, "commands must succeed with the broker down")
	}
	var relayed int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT position FROM relay_checkpoints`).Scan(&relayed))
	require.LessOrEqual(t, relayed, int64(50), "nothing can be acknowledged while NATS is down")

	n.Start()
	appendNotes(t, s, "note-after", 0, 50)
	checkExactlyOnceInOrder(t, readStream(t, n, 200), 200)
}

// A relay that crashed after JetStream acknowledged a batch but before it
// saved its checkpoint loses nothing and doubles nothing: its successor
// resumes from what the stream holds. Should two relays ever publish the
// same run, Nats-Msg-Id (its first event id and last position) makes
// JetStream drop the second.
func TestRelayCrashBeforeCheckpointNeitherLosesNorDoubles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	s := openStore(t, db)
	appendNotes(t, s, "note-a", 0, 20)
	_, err := db.Pool.Exec(ctx, `INSERT INTO relay_checkpoints (name, position) VALUES ('jetstream', 0)`)
	require.NoError(t, err)
	js, err := jetstream.New(n.Connect(t))
	require.NoError(t, err)
	_, err = bus.EnsureStream(ctx, js, bus.Config{})
	require.NoError(t, err)
	r, err := eventstore.NewRelay(db.Pool, n.Connect(t), eventstore.RelayOptions{})
	require.NoError(t, err)
	published, err := r.Flush(ctx)
	require.NoError(t, err)
	require.Equal(t, 20, published)
	// The crash: the checkpoint write is lost; a new process takes over.
	_, err = db.Pool.Exec(ctx, `UPDATE relay_checkpoints SET position = 0, stream_seq = 0`)
	require.NoError(t, err)
	appendNotes(t, s, "note-a", 20, 25)
	r2, err := eventstore.NewRelay(db.Pool, n.Connect(t), eventstore.RelayOptions{})
	require.NoError(t, err)
	published, err = r2.Flush(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, published, "only what JetStream did not hold")
	got := readStream(t, n, 25)
	checkExactlyOnceInOrder(t, got, 25)

	// The run's first event id is the message id: a second copy of the
	// first run is dropped.
	msg, err := eventstore.Message(bus.Config{}, got[:20]...)
	require.NoError(t, err)
	ack, err := js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	require.True(t, ack.Duplicate)
	require.Equal(t, uint64(1), ack.Sequence)
}

// JetStream briefly unable to store (a broker restarting, a leader
// election) in the middle of a batch must not leave the stream out of
// position order: every message expects its predecessor's sequence, so
// nothing lands after a message that failed.
func TestRelayKeepsOrderWhenTheStreamAppearsMidBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	s := openStore(t, db)
	const total = 3000
	for i := 0; i < total; i += 100 {
		batch := make([]events.Payload, 100)
		for j := range batch {
			batch[j] = testNote{N: i + j}
		}
		_, err := s.Append(ctx, scope, events.Metadata{}, "note-a", eventstore.ExpectAny, batch...)
		require.NoError(t, err)
	}
	js, err := jetstream.New(n.Connect(t))
	require.NoError(t, err)
	r, err := eventstore.NewRelay(db.Pool, n.Connect(t), eventstore.RelayOptions{BatchSize: total})
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO relay_checkpoints (name, position) VALUES ('jetstream', 0)`)
	require.NoError(t, err)
	_, err = bus.EnsureStream(ctx, js, bus.Config{})
	require.NoError(t, err)
	_, err = r.Flush(ctx)
	require.NoError(t, err)
	name := bus.Config{}.WithDefaults().Stream

	// Delete the stream and re-create it while the relay is mid-batch:
	// early messages meet no stream, later ones find it.
	require.NoError(t, js.DeleteStream(ctx, name))
	_, err = db.Pool.Exec(ctx, `UPDATE relay_checkpoints SET position = 0, stream_seq = 0`)
	require.NoError(t, err)
	r2, err := eventstore.NewRelay(db.Pool, n.Connect(t), eventstore.RelayOptions{BatchSize: total})
	require.NoError(t, err)
	// A plain subscriber sees the relay's messages even with no stream:
	// the stream is created once the relay is well into its batch.
	var seen atomic.Int64
	sub, err := n.Connect(t).Subscribe(bus.Config{}.WithDefaults().SubjectPrefix+".>", func(*nats.Msg) {
		if seen.Add(1) == 300 {
			go func() { _, _ = bus.EnsureStream(context.Background(), js, bus.Config{}) }()
		}
	})
	require.NoError(t, err)
	defer sub.Unsubscribe() //nolint:errcheck
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, err := r2.Flush(ctx)
		var cp int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT position FROM relay_checkpoints`).Scan(&cp))
		if err == nil && cp == total {
			break
		}
		require.True(t, time.Now().Before(deadline), "relay never caught up: %v", err)
	}
	checkExactlyOnceInOrder(t, readStream(t, n, total), total)
}

// A stream re-created empty behind the relay's back (an operator deleted
// it and a projector's consumer re-created it) is noticed at the next
// publish, and the relay re-fills it from the first event.
func TestRelayRefillsAStreamReplacedWhileItRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	s := openStore(t, db)
	appendNotes(t, s, "note-a", 0, 30)
	startRelay(t, db, n)
	readStream(t, n, 30)

	js, err := jetstream.New(n.Connect(t))
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, bus.Config{}.WithDefaults().Stream))
	// What a projector does, retries included: right after a delete, with
	// the relay publishing, the server may answer a create with "error
	// creating store for stream" (10049) until the old store is gone (seen
	// once in CI under -race); a projector's feed tries again next round.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err = bus.OpenStream(ctx, js, bus.Config{})
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != 10049 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, err)
	appendNotes(t, s, "note-a", 30, 35)
	checkExactlyOnceInOrder(t, readStream(t, n, 35), 35)
}

// If JetStream loses its stream (wiped, or a broker lost its tail), the
// relay notices at start and re-fills it from PostgreSQL.
func TestRelayRefillsAWipedStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	s := openStore(t, db)
	appendNotes(t, s, "note-a", 0, 30)
	relayCtx, stopRelay := context.WithCancel(context.Background())
	r, err := eventstore.NewRelay(db.Pool, n.Connect(t), eventstore.RelayOptions{Poll: 50 * time.Millisecond})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(relayCtx) }()
	readStream(t, n, 30)
	stopRelay()
	<-done

	js, err := jetstream.New(n.Connect(t))
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, bus.Config{}.WithDefaults().Stream))

	startRelay(t, db, n)
	checkExactlyOnceInOrder(t, readStream(t, n, 30), 30)
}

// The checkpoint write after a round goes through RelayOptions.Checkpoints
// (the app passes its asynchronous-commit pool, so the write costs no WAL
// flush of its own; TestRelayCrashBeforeCheckpointNeitherLosesNorDoubles
// shows a lost one costs nothing).
func TestRelayWritesItsCheckpointThroughTheCheckpointsPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	appendNotes(t, openStore(t, db), "note-cp", 0, 3)
	_, err := db.Pool.Exec(ctx, `INSERT INTO relay_checkpoints (name, position) VALUES ('jetstream', 0)`)
	require.NoError(t, err)
	r, err := eventstore.NewRelay(db.Pool, n.Connect(t), eventstore.RelayOptions{Checkpoints: db.NewAsyncPool(t, "relay-checkpoints")})
	require.NoError(t, err)
	published, err := r.Flush(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, published)
	require.Contains(t, db.LastQuery(t, "relay-checkpoints"), "UPDATE relay_checkpoints")
	var pos int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT position FROM relay_checkpoints WHERE name = 'jetstream'`).Scan(&pos))
	require.Equal(t, int64(3), pos)
}
