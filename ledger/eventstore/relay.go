package eventstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/bus"
)

// RelayOptions configures a Relay.
type RelayOptions struct {
	// Name identifies the relay's checkpoint row (default "jetstream").
	Name string
	// Bus names the JetStream stream.
	Bus bus.Config
	// BatchSize is how many events are published before one checkpoint write.
	BatchSize int
	// Poll is the fallback wake-up interval when no notification arrives.
	Poll time.Duration
	// AckWait bounds the wait for one round's acknowledgements (default
	// 10s); a message still unacknowledged then ends the round at the
	// acknowledged prefix.
	AckWait time.Duration
	// Tail, if set, is the committed-events tail of the Store in the same
	// process: what it holds is published from memory, the rest is read
	// from PostgreSQL.
	Tail *Tail
	// Checkpoints, if set, takes the checkpoint write after each round:
	// a pool whose sessions commit asynchronously (the app's Bookkeeping)
	// saves that write its own WAL flush. Losing it to a database crash
	// costs nothing: at the next start the relay reads where JetStream
	// really is (sync) and resumes from there.
	Checkpoints *pgxpool.Pool
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Relay publishes committed events, in position order, to JetStream, one
// message per run of a tenant's consecutive events (Runs), with
// Nats-Msg-Id naming the run (its first event id and last position), and records how far it got in
// relay_checkpoints only after JetStream acknowledged every message up to
// there. One relay per database is active at a time (a PostgreSQL advisory
// lock elects it); others wait as hot standbys.
type Relay struct {
	pool *pgxpool.Pool
	nc   *nats.Conn
	js   jetstream.JetStream
	opts RelayOptions
	log  *slog.Logger

	lag       prometheus.Gauge
	published prometheus.Counter
	failures  prometheus.Counter
	position  prometheus.Gauge
	// storeReads counts rounds that read PostgreSQL, not the commit tail.
	storeReads prometheus.Counter

	// seq is the stream's last sequence as of the last acknowledgement,
	// valid while synced: every publish expects the stream to be exactly
	// there, so nothing is stored out of position order. Used only by the
	// goroutine that publishes (lead, then drain).
	seq uint64
	// cp is the checkpoint position that goes with seq, valid while synced.
	cp int64
	// lastID is the Nats-Msg-Id of the stream's last message ("" when
	// unknown), valid while synced. Every publish also expects it: a run's
	// content depends on what was committed when it was read, so a run of
	// an abandoned round that lands late could otherwise sit at exactly the
	// sequence a later run expects, and that run would be stored after
	// different content, leaving a gap. A run's id names its first event
	// and its last position, so it identifies its content.
	lastID string
	synced bool
}

// NewRelay builds a relay; Run starts it.
func NewRelay(pool *pgxpool.Pool, nc *nats.Conn, opts RelayOptions) (*Relay, error) {
	if opts.Name == "" {
		opts.Name = "jetstream"
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 10 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Checkpoints == nil {
		opts.Checkpoints = pool
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Bus = opts.Bus.WithDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	r := &Relay{
		pool: pool, nc: nc, js: js, opts: opts, log: opts.Logger.With("component", "relay"),
		lag:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "ledger_relay_lag_events", Help: "Committed events not yet acknowledged by JetStream."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "ledger_relay_published_total", Help: "Events published to JetStream and acknowledged."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "ledger_relay_failures_total", Help: "Relay rounds that failed (NATS or PostgreSQL unavailable)."}),
		position:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "ledger_relay_position", Help: "Last event position acknowledged by JetStream."}),
		storeReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "ledger_relay_store_reads_total",
			Help: "Relay rounds that read the event store because the commit tail could not serve them (other processes' commits, a restart, a gap)."}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.lag, r.published, r.failures, r.position, r.storeReads)
	}
	return r, nil
}

func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Run publishes until ctx ends, then makes one last bounded attempt to
// flush what is committed, so a graceful shutdown leaves nothing behind
// that it could have sent.
func (r *Relay) Run(ctx context.Context) error {
	defer r.drain()
	for {
		err := r.lead(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.Warn("relay round failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// lead holds leadership on a dedicated connection and relays until an
// error or ctx ends.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey("relay:"+r.opts.Name)).Scan(&got); err != nil {
		return err
	}
	if !got {
		return nil // another process relays; stand by
	}
	defer func() {
		// The connection goes back to the pool: release the session lock.
		_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, lockKey("relay:"+r.opts.Name))
		_, _ = conn.Exec(context.Background(), `UNLISTEN *`)
	}()
	if _, err := conn.Exec(ctx, `LISTEN ledger_events`); err != nil {
		return err
	}
	if _, err := r.pool.Exec(ctx, `INSERT INTO relay_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT DO NOTHING`, r.opts.Name); err != nil {
		return err
	}
	r.synced = false // another process may have published meanwhile
	if err := r.sync(ctx); err != nil {
		return err
	}
	r.log.Info("relay is active")
	for {
		n, err := r.Flush(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.failures.Inc()
			return err
		}
		if n > 0 && (n >= r.opts.BatchSize || !r.synced) {
			continue // more is waiting, or another relay moved the checkpoint: re-sync now
		}
		// A round that published less than a batch published all there was
		// when it read: every append NOTIFYs its last position at commit,
		// in commit order, so whatever was committed later has a
		// notification still to come. Going round again right away (as
		// this loop did) cost an empty read of the event store after every
		// append; now the next round waits for a notification naming a
		// position past the checkpoint, or for Poll.
		wctx, cancel := context.WithTimeout(ctx, r.opts.Poll)
		err = r.awaitUnpublished(wctx, conn.Conn())
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// awaitUnpublished returns when a notification names a position past the
// checkpoint (or one it cannot read), or when ctx ends. A notification at
// or below the checkpoint is passed over: its events went out with an
// earlier round, from the commit tail, before it arrived.
func (r *Relay) awaitUnpublished(ctx context.Context, conn *pgx.Conn) error {
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if pos, perr := strconv.ParseInt(note.Payload, 10, 64); perr != nil || pos > r.cp {
			return nil
		}
	}
}

// drain makes a last bounded attempt, at shutdown, to publish what is
// committed, if no other process is the active relay.
func (r *Relay) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	key := lockKey("relay:" + r.opts.Name)
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil || !got {
		return
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key) //nolint:errcheck
	if _, err := r.pool.Exec(ctx, `INSERT INTO relay_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT DO NOTHING`, r.opts.Name); err != nil {
		return
	}
	if _, err := bus.OpenStream(ctx, r.js, r.opts.Bus); err != nil {
		r.log.Warn("relay could not drain at shutdown; events stay in PostgreSQL for the next start", "err", err)
		return
	}
	// Another process may have led between this one's last round and now:
	// start from the checkpoint and stream as they are, not as remembered.
	r.synced = false
	for {
		n, err := r.Flush(ctx)
		if err != nil {
			r.log.Warn("relay final flush incomplete; events stay in PostgreSQL for the next start", "err", err)
			return
		}
		if n == 0 {
			return
		}
	}
}

// sync makes the checkpoint agree with what JetStream holds before the
// relay publishes: it rewinds when the stream lost its tail, was wiped or
// was replaced (the missing events are re-published from PostgreSQL), and
// moves forward over messages acknowledged by a relay that stopped before
// recording them (so they are not published twice).
func (r *Relay) sync(ctx context.Context) error {
	r.opts.Tail.reset()
	st, err := bus.EnsureStream(ctx, r.js, r.opts.Bus)
	if err != nil {
		return fmt.Errorf("relay: ensure stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	var cp, recorded int64
	if err := r.pool.QueryRow(ctx, `SELECT position, stream_seq FROM relay_checkpoints WHERE name = $1`, r.opts.Name).Scan(&cp, &recorded); err != nil {
		return fmt.Errorf("relay: checkpoint %q: %w", r.opts.Name, err)
	}
	last := info.State.LastSeq
	pos := cp
	var lastMsg *jetstream.RawStreamMsg
	if info.State.Msgs > 0 {
		if lastMsg, err = st.GetMsg(ctx, last); err != nil {
			return fmt.Errorf("relay: read last message: %w", err)
		}
	}
	if last != uint64(recorded) || recorded == 0 {
		switch {
		case lastMsg != nil:
			if pos, err = strconv.ParseInt(lastMsg.Header.Get(bus.HeaderPosition), 10, 64); err != nil {
				return fmt.Errorf("relay: stream message %d has no %s header", last, bus.HeaderPosition)
			}
		case last < uint64(recorded) || last == 0:
			pos = 0 // emptied or replaced: everything again
		default:
			// Ahead of the record but empty (its messages aged out): what
			// it held was acknowledged; keep the checkpoint.
		}
	}
	if head, err := ReadHead(ctx, r.pool); err != nil {
		return err
	} else if pos > head {
		// Only a database restored behind JetStream does this; the stream's
		// tail then names events the store no longer has.
		r.log.Error("JetStream holds positions the event store does not have (was PostgreSQL restored?); "+
			"delete the stream so the relay re-fills it", "stream_position", pos, "head", head)
		pos = head
	}
	if pos != cp {
		r.log.Warn("JetStream disagrees with the relay checkpoint; resuming from what the stream holds",
			"checkpoint", cp, "stream_position", pos, "stream_seq", last)
	}
	if _, err := r.pool.Exec(ctx, `UPDATE relay_checkpoints SET position = $2, stream_seq = $3, updated_at = now() WHERE name = $1`,
		r.opts.Name, pos, int64(last)); err != nil {
		return err
	}
	r.seq, r.cp, r.synced = last, pos, true
	r.lastID = ""
	if lastMsg != nil {
		r.lastID = lastMsg.Header.Get(nats.MsgIdHdr)
	}
	return nil
}

// Flush publishes one batch of committed events past the checkpoint and
// returns how many it published.
//
// Each message is published expecting the stream's last sequence to be
// the one before it, so a message is stored only right after its
// predecessor: when one fails (a broker restarting, a leader election)
// every later one of the batch fails too, and a client-side retry of the
// failed one cannot land after its successors. The stream therefore stays
// an in-order prefix of the event store, and a stream replaced behind the
// relay's back is noticed at the next publish.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	if !r.synced {
		if err := r.sync(ctx); err != nil {
			return 0, err
		}
	}
	// The checkpoint is this relay's own while it leads (the advisory
	// lock), so it is kept in memory; the guarded UPDATE below notices if
	// anyone else moved it.
	evs := r.opts.Tail.After(ctx, r.cp, r.opts.BatchSize)
	fromTail := evs != nil
	if evs == nil {
		r.storeReads.Inc()
		var err error
		if evs, err = ReadFrom(ctx, r.pool, r.cp, r.opts.BatchSize); err != nil {
			return 0, err
		}
	}
	if len(evs) == 0 {
		r.lag.Set(0)
		return 0, nil
	}
	runs, err := Runs(r.opts.Bus, evs)
	if err != nil {
		return 0, err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(runs))
	for i, run := range runs {
		// Each run expects its predecessor by sequence and by id (see
		// lastID); an identical run published twice is dropped as a
		// duplicate, and the relay re-syncs.
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequence(r.seq + uint64(i))}
		prev := r.lastID
		if i > 0 {
			prev = runs[i-1].ID
		}
		if prev != "" {
			opts = append(opts, jetstream.WithExpectLastMsgID(prev))
		}
		f, err := r.js.PublishMsgAsync(run.Msg, opts...)
		if err != nil {
			r.synced = false
			return 0, fmt.Errorf("relay: publish position %d: %w", evs[run.First].Position, err)
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(r.opts.AckWait)
	defer timeout.Stop()
	// Acknowledgements are read in publish order; on the first failure the
	// checkpoint still moves past the acknowledged prefix, and the next
	// round re-syncs with the stream before publishing again.
	acked, failure := 0, error(nil) // events in the acknowledged runs
	var lastSeq uint64
	var lastID string
wait:
	for i, f := range futures {
		first := evs[runs[i].First].Position
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				// Stored before, by a relay that did not record it: the
				// stream's sequence is not where this round assumed.
				failure = fmt.Errorf("relay: position %d was already in the stream", first)
				break wait
			}
			acked = runs[i].Last + 1
			lastSeq, lastID = ack.Sequence, runs[i].ID
		case err := <-f.Err():
			failure = fmt.Errorf("relay: publish position %d: %w", first, err)
			break wait
		case <-timeout.C:
			failure = fmt.Errorf("relay: no acknowledgement for position %d within %s", first, r.opts.AckWait)
			break wait
		case <-ctx.Done():
			failure = ctx.Err()
			break wait
		}
	}
	if failure != nil {
		r.synced = false
	}
	if acked == 0 {
		return 0, failure
	}
	last := evs[acked-1].Position
	// Recorded even when ctx just ended: what JetStream acknowledged is done.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	tag, err := r.opts.Checkpoints.Exec(cctx, `UPDATE relay_checkpoints SET position = $2, stream_seq = $3, updated_at = now() WHERE name = $1 AND position < $2`,
		r.opts.Name, last, int64(lastSeq))
	if err != nil {
		r.synced = false
		return 0, err
	}
	if tag.RowsAffected() == 0 {
		r.synced = false // another relay moved it: re-sync before going on
	} else {
		r.seq, r.cp, r.lastID = lastSeq, last, lastID
	}
	r.published.Add(float64(acked))
	r.position.Set(float64(last))
	if failure != nil {
		return acked, failure
	}
	switch {
	case fromTail:
		// This process's commits are all it knows of without a query;
		// another process's commits wake the relay, and the round that
		// reads them from the event store corrects the gauge.
		r.lag.Set(float64(max(r.opts.Tail.Last()-last, 0)))
	case len(evs) < r.opts.BatchSize:
		r.lag.Set(0) // it read everything committed when the round began
	default:
		head, err := ReadHead(ctx, r.pool)
		if err != nil {
			break
		}
		r.lag.Set(float64(head - last))
	}
	return len(evs), nil
}

// Bounds on one message: JetStream's default max_payload is 1 MB, and a
// consumer applies whole messages, so a run stays well below both limits.
const (
	maxRunEvents = 256
	maxRunBytes  = 256 << 10
)

// Run is one broker message and the slice of the relayed events it
// carries: evs[First..Last], inclusive.
type Run struct {
	Msg         *nats.Msg
	First, Last int
	// ID is the message's Nats-Msg-Id: the first event's id and the last
	// event's position, which together name the run's content.
	ID string
}

// Runs splits evs (consecutive, in position order) into messages: each a
// run of consecutive events of one tenant, bounded in count and size.
// Publishing a run instead of each event divides the broker's work per
// event (store, acknowledge, deliver to every consumer, acknowledge again)
// by the run's length, which under load is most of a group commit.
func Runs(c bus.Config, evs []events.Event) ([]Run, error) {
	c = c.WithDefaults()
	// Sized first, so each message body is allocated once at its exact
	// size and every envelope written straight into it: grown by
	// appending, bodies were most of the bytes the relay allocated (a
	// hundred KB a group commit), and an envelope encoded on its own
	// first was a second copy of every event.
	sizes := make([]int, len(evs))
	for i := range evs {
		sizes[i] = evs[i].BinarySize()
	}
	var out []Run
	var prefix [binary.MaxVarintLen64]byte
	for first := 0; first < len(evs); {
		last, size := first, 0
		for i := first; i < len(evs); i++ {
			// Split before an event that would take the run past its
			// bound, so only an event alone can make a message bigger
			// than it.
			if i > first && (evs[i].PartnerID != evs[first].PartnerID || evs[i].Environment != evs[first].Environment ||
				i-first >= maxRunEvents || size+sizes[i]+binary.MaxVarintLen64 > maxRunBytes) {
				break
			}
			last, size = i, size+binary.PutUvarint(prefix[:], uint64(sizes[i]))+sizes[i]
		}
		body := make([]byte, 0, size)
		for i := first; i <= last; i++ {
			body = binary.AppendUvarint(body, uint64(sizes[i]))
			body, _ = evs[i].AppendBinary(body)
		}
		id := evs[first].ID.String() + ":" + strconv.FormatInt(evs[last].Position, 10)
		msg := runMessage(c, evs[first:last+1], body)
		msg.Header.Set(nats.MsgIdHdr, id)
		out = append(out, Run{Msg: msg, First: first, Last: last, ID: id})
		first = last + 1
	}
	return out, nil
}

func runMessage(c bus.Config, run []events.Event, body []byte) *nats.Msg {
	msg := nats.NewMsg(c.RunSubject(run[0].PartnerID, run[0].Environment))
	msg.Data = body
	types := make([]string, 0, 4)
	for _, e := range run {
		if !slices.Contains(types, e.Type) {
			types = append(types, e.Type)
		}
	}
	msg.Header.Set(bus.HeaderFirstPosition, strconv.FormatInt(run[0].Position, 10))
	msg.Header.Set(bus.HeaderPosition, strconv.FormatInt(run[len(run)-1].Position, 10))
	msg.Header.Set(bus.HeaderCount, strconv.Itoa(len(run)))
	msg.Header.Set(bus.HeaderType, strings.Join(types, ","))
	msg.Header.Set(bus.HeaderEncoding, bus.EncodingRun)
	return msg
}

// Message is the broker message carrying evs, consecutive events of one
// tenant in position order, as the relay publishes them.
func Message(c bus.Config, evs ...events.Event) (*nats.Msg, error) {
	if len(evs) == 0 {
		return nil, errors.New("eventstore: a message carries at least one event")
	}
	runs, err := Runs(c, evs)
	if err != nil {
		return nil, err
	}
	if len(runs) != 1 {
		return nil, errors.New("eventstore: the events do not fit one message")
	}
	return runs[0].Msg, nil
}

// errRun is every malformed run body.
var errRun = errors.New("eventstore: malformed run message")

// EventsOf decodes a broker message into the events it carries, in
// position order: a run (this release), or the single binary or JSON
// envelope earlier releases published, which a stream may still hold.
func EventsOf(header nats.Header, data []byte) ([]events.Event, error) {
	switch header.Get(bus.HeaderEncoding) {
	case bus.EncodingRun:
		n, _ := strconv.Atoi(header.Get(bus.HeaderCount))
		out := make([]events.Event, 0, min(max(n, 1), maxRunEvents))
		for len(data) > 0 {
			size, k := binary.Uvarint(data)
			if k <= 0 || size > uint64(len(data)-k) {
				return nil, errRun
			}
			var e events.Event
			if err := e.UnmarshalBinary(data[k : k+int(size)]); err != nil {
				return nil, err
			}
			out = append(out, e)
			data = data[k+int(size):]
		}
		if len(out) == 0 || (n != 0 && n != len(out)) {
			return nil, errRun
		}
		return out, nil
	case bus.EncodingBinary:
		var e events.Event
		if err := e.UnmarshalBinary(data); err != nil {
			return nil, err
		}
		return []events.Event{e}, nil
	default:
		var e events.Event
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, err
		}
		return []events.Event{e}, nil
	}
}
