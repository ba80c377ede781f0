package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/internal/infra/coalesce"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// RunnerOptions configures a Runner.
type RunnerOptions struct {
	Bus bus.Config
	// FetchBatch is how many events one transaction applies, at most
	// (plus the rest of the message that crosses it).
	FetchBatch int
	// Idle is how long the runner waits for JetStream to deliver before it
	// checks PostgreSQL directly for events JetStream has not delivered
	// (broker down, stream wiped, relay behind).
	Idle time.Duration
	// Skips, if set, takes the checkpoint moves over batches a
	// projection has nothing to do for (see skip): a pool whose sessions
	// commit asynchronously (the app's Bookkeeping) saves each its own
	// WAL flush. Losing one to a database crash costs a re-read: the
	// checkpoint is then where it was, and the same events are skipped
	// again.
	Skips      *pgxpool.Pool
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// feedBuffer overrides feedBuffer (tests make it tiny to overflow it).
	feedBuffer int
}

// Runner runs projections from the JetStream stream, with their durable
// positions (checkpoints) in PostgreSQL. Each projection is applied by one
// process at a time (a PostgreSQL advisory lock elects it); other
// processes stand by, so projectors scale out across ledgerd replicas
// without double-applying. The projections a process leads share one
// consumer (see feed).
type Runner struct {
	pool  *pgxpool.Pool
	nc    *nats.Conn
	js    jetstream.JetStream
	opts  RunnerOptions
	log   *slog.Logger
	projs []Projection

	positionGauge *prometheus.GaugeVec
	lagGauge      *prometheus.GaugeVec
	applied       *prometheus.CounterVec
	failures      *prometheus.CounterVec
	delay         *prometheus.HistogramVec
	skipped       *prometheus.CounterVec

	feed  *feed
	head  headView
	skips *coalesce.Batcher[skipReq, bool]

	// committed is, per projection, the checkpoint this runner last
	// committed, for Skipper batches (see skip).
	committedMu sync.Mutex
	committed   map[string]int64
}

// headView is the runner's idea of the event store's head, for the lag
// gauge: the highest position the feed delivered, or the head read from
// PostgreSQL when that read is older than headMaxAge. Reading the head
// after every applied batch was one round trip per projection per batch
// (~160 a second under load) for a gauge; the feed already names every
// position the relay published, so PostgreSQL is asked only for what the
// relay has not published yet, at most once per headMaxAge.
type headView struct {
	fed atomic.Int64

	mu   sync.Mutex
	read int64
	at   time.Time
}

// headMaxAge bounds how stale the lag gauge's head can be when the relay
// lags (with the relay current, the feed keeps it exact).
const headMaxAge = time.Second

func (h *headView) get(ctx context.Context, q eventstore.Querier) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.at) >= headMaxAge {
		head, err := eventstore.ReadHead(ctx, q)
		if err != nil {
			return 0, err
		}
		h.read, h.at = head, time.Now()
	}
	return max(h.read, h.fed.Load()), nil
}

// NewRunner prepares a runner for projs. nc may be nil, in which case the
// runner reads the event store directly (used by tools and some tests).
func NewRunner(pool *pgxpool.Pool, nc *nats.Conn, opts RunnerOptions, projs ...Projection) (*Runner, error) {
	if opts.FetchBatch <= 0 {
		opts.FetchBatch = 500
	}
	if opts.Idle <= 0 {
		opts.Idle = 500 * time.Millisecond
	}
	if opts.feedBuffer <= 0 {
		opts.feedBuffer = feedBuffer
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Bus = opts.Bus.WithDefaults()
	seen := map[string]bool{}
	for _, p := range projs {
		if err := checkName(p); err != nil {
			return nil, err
		}
		if seen[p.Name()] {
			return nil, fmt.Errorf("projections: duplicate projection %q", p.Name())
		}
		seen[p.Name()] = true
	}
	r := &Runner{
		pool: pool, nc: nc, opts: opts, projs: projs, log: opts.Logger.With("component", "projector"),
		positionGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ledger_projection_position", Help: "Last event position applied by each projection."}, []string{"projection"}),
		lagGauge:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ledger_projection_lag_events", Help: "Committed events a projection has not applied yet."}, []string{"projection"}),
		applied:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ledger_projection_events_applied_total", Help: "Events applied by each projection."}, []string{"projection"}),
		failures:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ledger_projection_failures_total", Help: "Failed apply rounds by projection."}, []string{"projection"}),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ledger_projection_delay_seconds",
			Help:    "Time from an event's commit to its projection committing it (from recorded_at, taken just before the append, so it slightly overstates).",
			Buckets: prometheus.ExponentialBuckets(0.001, 1.25, 40)}, []string{"projection"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ledger_projection_feed_skipped_total",
			Help: "JetStream messages a busy projection was not handed (it reads those events from PostgreSQL instead)."}, []string{"projection"}),
	}
	// Counter vectors export a series only once it is used; create each
	// projection's at zero so that ledger_projection_failures_total and
	// its kin are there, at 0, for dashboards and alerts from the start.
	for _, p := range projs {
		r.applied.WithLabelValues(p.Name()).Add(0)
		r.failures.WithLabelValues(p.Name()).Add(0)
		r.skipped.WithLabelValues(p.Name()).Add(0)
	}
	if nc != nil {
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		r.js = js
	}
	skips := opts.Skips
	if skips == nil {
		skips = pool
	}
	r.skips = newSkipBatcher(skips)
	r.feed = &feed{js: r.js, nc: nc, opts: opts, log: r.log, skipped: r.skipped, subs: map[string]chan []events.Event{}, fed: &r.head.fed}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.positionGauge, r.lagGauge, r.applied, r.failures, r.delay, r.skipped)
	}
	return r, nil
}

// Projections lists what the runner runs.
func (r *Runner) Projections() []Projection { return r.projs }

// Setup creates every projection's schema and checkpoint if missing, so
// queries work before the first event arrives.
func (r *Runner) Setup(ctx context.Context) error {
	for _, p := range r.projs {
		if err := ensureSchema(ctx, r.pool, p); err != nil {
			return err
		}
	}
	return nil
}

// Run applies events to every projection until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.Setup(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, p := range r.projs {
		wg.Add(1)
		go func(p Projection) {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := r.lead(ctx, p); err != nil && ctx.Err() == nil {
					r.failures.WithLabelValues(p.Name()).Inc()
					r.log.Warn("projection round failed; retrying", "projection", p.Name(), "err", err)
					recordFailure(ctx, r.pool, p.Name(), err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}(p)
	}
	wg.Wait()
	return nil
}

func leaderKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("projection-leader:" + name))
	return int64(h.Sum64())
}

func (r *Runner) lead(ctx context.Context, p Projection) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderKey(p.Name())).Scan(&got); err != nil {
		return err
	}
	if !got {
		return nil
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, leaderKey(p.Name())) //nolint:errcheck
	// Another process may have led since this one last committed.
	r.forget(p.Name())

	// Subscribe before catching up: what the feed delivers meanwhile
	// waits in the channel (or, if it overflows, is read from PostgreSQL
	// as a hole), so nothing falls between the catch-up and the feed.
	in, unsubscribe := r.feed.subscribe(p.Name())
	defer unsubscribe()
	if err := r.catchUpAll(ctx, p); err != nil {
		return err
	}
	idle := time.NewTimer(r.opts.Idle)
	defer idle.Stop()
	for ctx.Err() == nil {
		idle.Reset(r.opts.Idle)
		select {
		case <-ctx.Done():
			return nil
		case evs := <-in:
			// One transaction applies whatever has arrived, up to
			// FetchBatch events, with no waiting for a batch to fill:
			// read-your-writes latency stays low. A message's events are
			// never split (the feed hands them over whole). A copy, even
			// of a lone message: the feed hands the same slice to every
			// projection it serves, and apply sorts its batch in place.
			batch := append(make([]events.Event, 0, len(evs)), evs...)
		drain:
			for len(batch) < r.opts.FetchBatch {
				select {
				case evs := <-in:
					batch = append(batch, evs...)
				default:
					break drain
				}
			}
			if err := r.apply(ctx, p, batch); err != nil {
				return err
			}
		case <-idle.C:
			// Nothing from JetStream for a while (broker down, stream wiped,
			// relay behind, the feed overflowed): catch up from the source
			// of truth.
			if err := r.catchUpAll(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// catchUpAll applies what the event store holds past p's checkpoint, page
// by page, until there is nothing left.
func (r *Runner) catchUpAll(ctx context.Context, p Projection) error {
	for ctx.Err() == nil {
		n, err := r.catchUp(ctx, p)
		if err != nil || n == 0 {
			return err
		}
	}
	return nil
}

// feed carries the stream to the projections this process leads: one
// ordered consumer per process, each message decoded once and its events
// handed to every subscribed projection. A consumer per projection cost
// JetStream a delivery, an acknowledgement and a state write per message
// for each read model, and each of them decoded the same bytes. The
// consumer is ephemeral and unacknowledged: a projection's durable
// position is its checkpoint in PostgreSQL, so whatever the feed misses (it
// starts at new messages, a subscriber's buffer overflows, the broker is
// down) is read from the event store, as a hole or by the idle catch-up.
type feed struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	opts    RunnerOptions
	log     *slog.Logger
	skipped *prometheus.CounterVec
	// fed records the highest position delivered (the runner's headView).
	fed *atomic.Int64

	mu     sync.Mutex
	subs   map[string]chan []events.Event
	cancel context.CancelFunc
	done   chan struct{}
}

// feedBuffer is how many messages a subscriber may have waiting before the
// feed skips it (it then reads those events from PostgreSQL).
const feedBuffer = 1024

// subscribe registers a projection and starts the consumer if it is the
// first; the returned func unregisters it and stops the consumer after the
// last, so a standby process that leads nothing reads nothing.
func (f *feed) subscribe(name string) (<-chan []events.Event, func()) {
	ch := make(chan []events.Event, f.opts.feedBuffer)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[name] = ch
	if f.cancel == nil && f.js != nil {
		ctx, cancel := context.WithCancel(context.Background())
		f.cancel, f.done = cancel, make(chan struct{})
		go f.run(ctx, f.done)
	}
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, name)
		var done chan struct{}
		if len(f.subs) == 0 && f.cancel != nil {
			f.cancel()
			done, f.cancel, f.done = f.done, nil, nil
		}
		f.mu.Unlock()
		if done != nil {
			<-done
		}
	}
}

// publish hands evs to every subscriber without blocking: a projection
// that is busy or failing must not hold up the others.
func (f *feed) publish(evs []events.Event) {
	if n := len(evs); n > 0 && f.fed != nil {
		for last := evs[n-1].Position; ; {
			seen := f.fed.Load()
			if last <= seen || f.fed.CompareAndSwap(seen, last) {
				break
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, ch := range f.subs {
		select {
		case ch <- evs:
		default:
			f.skipped.WithLabelValues(name).Inc()
		}
	}
}

// run keeps one ordered consumer on the stream until ctx ends, re-creating
// it when the connection or the stream goes away.
func (f *feed) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		if err := f.consume(ctx); err != nil && ctx.Err() == nil {
			f.log.Debug("JetStream feed unavailable; projections read PostgreSQL", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(f.opts.Idle):
		}
	}
}

func (f *feed) consume(ctx context.Context) error {
	if !f.nc.IsConnected() {
		return nats.ErrConnectionClosed
	}
	st, err := bus.OpenStream(ctx, f.js, f.opts.Bus)
	if err != nil {
		return err
	}
	// New messages only: each projection caught up from PostgreSQL when it
	// took the lead, and fills any hole from there.
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return err
	}
	broken := make(chan error, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		evs, err := eventstore.EventsOf(m.Headers(), m.Data())
		if err != nil {
			// Not ours to interpret; the event store still has every event
			// and hole-filling applies it from there.
			f.log.Error("undecodable message; skipped", "err", err)
			return
		}
		f.publish(evs)
	},
		// Messages, not events: a message may carry a run of up to a few
		// hundred events.
		jetstream.PullMaxMessages(pullMessages),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// A deleted consumer or a silent server usually means the stream
			// was deleted: an ordered consumer would resume at the old
			// stream's sequence and deliver nothing from a re-filled one
			// until it got that far, so start a fresh one at new messages.
			if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, jetstream.ErrStreamNotFound) ||
				errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrNoHeartbeat) {
				select {
				case broken <- err:
				default:
				}
			}
		}))
	if err != nil {
		return err
	}
	defer cc.Stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-broken:
		return err
	}
}

// pullMessages is how many messages the feed asks JetStream for at once.
const pullMessages = 64

// catchUp applies events straight from the event store.
func (r *Runner) catchUp(ctx context.Context, p Projection) (int, error) {
	var cp int64
	if err := r.pool.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = $1`, p.Name()).Scan(&cp); err != nil {
		return 0, err
	}
	evs, err := eventstore.ReadFrom(ctx, r.pool, cp, r.opts.FetchBatch)
	if err != nil {
		return 0, err
	}
	if len(evs) == 0 {
		r.lagGauge.WithLabelValues(p.Name()).Set(0)
		return 0, nil
	}
	return len(evs), r.apply(ctx, p, evs)
}

func (r *Runner) apply(ctx context.Context, p Projection, evs []events.Event) error {
	sort.Slice(evs, func(i, j int) bool { return evs[i].Position < evs[j].Position })
	skipped, err := r.skip(ctx, p, evs)
	if err == nil && !skipped {
		var from, cp int64
		if from, cp, err = applyBatchFrom(ctx, r.pool, p, evs); err == nil {
			r.remember(p.Name(), cp)
			r.observe(ctx, p, evs, from, cp)
		}
	}
	if err != nil {
		r.forget(p.Name())
		r.failures.WithLabelValues(p.Name()).Inc()
		if ctx.Err() == nil {
			recordFailure(ctx, r.pool, p.Name(), err)
		}
	}
	return err
}

// skipSQL moves checkpoints over events that change nothing, each only if
// it is still where the runner committed it (then the tables at the old
// position are the tables at the new one) and no rebuild's swap holds its
// apply lock, which it takes without waiting: a swap in progress sends the
// batch to the full apply, which waits for it. The lock is tried only for
// a row whose position matched (PostgreSQL would otherwise evaluate it on
// the unnest, for every request), so the statement holds no apply lock of
// a projection it does not move. It returns the ordinal of each request
// whose checkpoint moved.
const skipSQL = `UPDATE projection_checkpoints c
	SET position = d.to_pos, updated_at = now(), last_error = NULL, failing_since = NULL
	FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS d(name, from_pos, to_pos, lock_key, i)
	WHERE c.name = d.name AND CASE WHEN c.position = d.from_pos THEN pg_try_advisory_xact_lock(d.lock_key) ELSE false END
	RETURNING d.i`

// skipReq asks skipSQL to move one projection's checkpoint.
type skipReq struct {
	name             string
	from, to, lockID int64
}

// newSkipBatcher coalesces the skips of the projections this process
// leads. They are handed the same messages at the same moment, so under
// load the read models with nothing to do (accounts, donations, webhooks
// with no subscription) moved their checkpoints in three round trips and
// three commits per batch; now they share one. Each row keeps its own
// guard, so one projection's miss never moves or holds another's.
func newSkipBatcher(db eventstore.Querier) *coalesce.Batcher[skipReq, bool] {
	return coalesce.New(64, 1, 30*time.Second, func(ctx context.Context, qs []skipReq) ([]bool, error) {
		return execSkips(ctx, db, qs)
	})
}

// execSkips runs skipSQL for qs and reports, for each, whether its
// checkpoint moved.
func execSkips(ctx context.Context, db eventstore.Querier, qs []skipReq) ([]bool, error) {
	names, froms, tos, locks := make([]string, len(qs)), make([]int64, len(qs)), make([]int64, len(qs)), make([]int64, len(qs))
	for i, q := range qs {
		names[i], froms[i], tos[i], locks[i] = q.name, q.from, q.to, q.lockID
	}
	rows, err := db.Query(ctx, skipSQL, names, froms, tos, locks)
	if err != nil {
		return nil, err
	}
	moved, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(qs))
	for _, i := range moved {
		out[i-1] = true
	}
	return out, nil
}

// skip moves p's checkpoint over evs with one statement when p is a
// Skipper that has nothing to do for them and they follow, with no hole,
// the checkpoint this runner last committed. It reports whether it did;
// false leaves the batch to the full apply.
//
// It takes the row lock and the apply lock in one statement, the apply
// lock without waiting: a rebuild's swap (which holds the apply lock and
// then writes the checkpoint) makes it miss while it runs, and once it has
// committed the position guard misses. Either way the batch takes the full
// apply, so a skip never lands between a swap's last read of the log and
// its checkpoint (which would move the checkpoint back).
func (r *Runner) skip(ctx context.Context, p Projection, evs []events.Event) (bool, error) {
	s, ok := p.(Skipper)
	if !ok || len(evs) == 0 {
		return false, nil
	}
	from, ok := r.last(p.Name())
	if !ok {
		return false, nil
	}
	for i, e := range evs {
		if e.Position != from+int64(i)+1 {
			return false, nil
		}
	}
	if !s.Skips(from, evs) {
		return false, nil
	}
	to := evs[len(evs)-1].Position
	moved, err := r.skips.Do(ctx, skipReq{name: p.Name(), from: from, to: to, lockID: applyLockKey(p.Name())})
	if err != nil {
		return false, err
	}
	if !moved {
		r.forget(p.Name())
		return false, nil
	}
	r.remember(p.Name(), to)
	r.observe(ctx, p, evs, from, to)
	return true, nil
}

func (r *Runner) last(name string) (int64, bool) {
	r.committedMu.Lock()
	defer r.committedMu.Unlock()
	cp, ok := r.committed[name]
	return cp, ok
}

func (r *Runner) remember(name string, cp int64) {
	r.committedMu.Lock()
	defer r.committedMu.Unlock()
	if r.committed == nil {
		r.committed = map[string]int64{}
	}
	r.committed[name] = cp
}

func (r *Runner) forget(name string) {
	r.committedMu.Lock()
	defer r.committedMu.Unlock()
	delete(r.committed, name)
}

// observe updates p's metrics after the checkpoint moved from from to cp
// over evs (which may also hold events at or below from, skipped as
// already applied).
func (r *Runner) observe(ctx context.Context, p Projection, evs []events.Event, from, cp int64) {
	// Positions have no gaps: what the checkpoint moved over is what this
	// round applied, holes filled from PostgreSQL included and events it
	// skipped as already applied excluded.
	r.applied.WithLabelValues(p.Name()).Add(float64(cp - from))
	// The read-model delay the target is stated in: every event
	// this round applied for the first time, none it skipped as already
	// applied (a redelivery's age is the broker's, not the projection's).
	now, delay := time.Now(), r.delay.WithLabelValues(p.Name())
	for _, e := range evs {
		if e.Position > from && e.Position <= cp {
			delay.Observe(now.Sub(e.RecordedAt).Seconds())
		}
	}
	r.positionGauge.WithLabelValues(p.Name()).Set(float64(cp))
	if head, err := r.head.get(ctx, r.pool); err == nil {
		r.lagGauge.WithLabelValues(p.Name()).Set(float64(max(head-cp, 0)))
	}
}

// ErrNotCaughtUp is returned by WaitFor when a read model did not reach
// the wanted position in time.
var ErrNotCaughtUp = errors.New("projections: read model is still catching up")

// WaitFor blocks until every named projection has applied position, or
// ctx ends (ErrNotCaughtUp). It reads checkpoints from PostgreSQL, so it
// works whichever process runs the projector.
func WaitFor(ctx context.Context, q eventstore.Querier, position int64, names ...string) error {
	delay := 500 * time.Microsecond
	for {
		var low int64
		err := q.QueryRow(ctx, `SELECT coalesce(min(position), 0) FROM projection_checkpoints WHERE name = ANY($1)`, names).Scan(&low)
		if err != nil {
			if ctx.Err() != nil {
				return ErrNotCaughtUp
			}
			return err
		}
		if low >= position {
			return nil
		}
		select {
		case <-ctx.Done():
			return ErrNotCaughtUp
		case <-time.After(delay):
		}
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}
