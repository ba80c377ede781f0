package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/netguard"
	"github.com/sirgiving/ledger/internal/infra/secretbox"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// DefaultSchedule is the delay before each attempt, counted from the
// previous one: immediately, then backing off over about a day.
var DefaultSchedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Options configures a Dispatcher. Zero values pick production defaults.
type Options struct {
	// Schedule[i] is the delay before attempt i+1 after attempt i failed
	// (Schedule[0], for the first attempt, is not used: deliveries are due
	// when the fan-out commits them). Its length is the number of attempts.
	Schedule []time.Duration
	// Jitter spreads each retry delay by ±Jitter (fraction, default 0.1;
	// negative disables).
	Jitter float64
	// Timeout bounds one attempt, connect to last byte (default 10 s).
	Timeout time.Duration
	// Workers bounds concurrent attempts in this process (default 64).
	Workers int
	// PerEndpoint bounds concurrent attempts to one subscription across
	// processes (default 4), so one slow endpoint cannot take every worker.
	PerEndpoint int
	// Poll is the longest the dispatcher sleeps without a wake-up (default 1 s).
	Poll time.Duration
	// Lease is how long a claim lasts before another dispatcher may take
	// the delivery over (default Timeout + 30 s).
	Lease time.Duration
	// DisableAfter disables an endpoint failing with no success for that
	// long (default 72 h).
	DisableAfter time.Duration
	// MaxRetryAfter caps a receiver's Retry-After (default 24 h).
	MaxRetryAfter time.Duration
	// Addresses decides which addresses deliveries may connect to.
	Addresses  netguard.Policy
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (o Options) withDefaults() Options {
	if len(o.Schedule) == 0 {
		o.Schedule = DefaultSchedule
	}
	if o.Jitter == 0 {
		o.Jitter = 0.1
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 64
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = 4
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = o.Timeout + 30*time.Second
	}
	if o.DisableAfter <= 0 {
		o.DisableAfter = 72 * time.Hour
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Disabler records that the dispatcher gave up on a subscription. The
// domain's *ledger.Service is one; the dispatcher needs nothing else of it.
type Disabler interface {
	DisableWebhook(ctx context.Context, tenant eventstore.Tenant, webhookID string, d events.WebhookDisabled) (eventstore.Result, error)
}

// Dispatcher sends due deliveries. Any number may run against one
// database; each delivery is attempted by one of them at a time.
type Dispatcher struct {
	pool   *pgxpool.Pool
	hooks  Disabler
	key    []byte
	opts   Options
	log    *slog.Logger
	client *http.Client
	m      *metrics
	wake   chan struct{}

	// Claims happen in chunks: a finished attempt wakes the loop only once
	// a quarter of the workers finished since the last claim, the last
	// attempt in flight finished, or claimDelay passed since the first of
	// them finished. A claim per finished attempt would run the claim
	// query for one or two slots at a time.
	finished atomic.Int64 // attempts finished since the last claim
	inFlight atomic.Int64

	// outcomes feeds the recorder, which writes attempts in batches.
	outcomes chan recordable
	// flushGate, when set (tests), runs before each recorder flush; false
	// drops the batch as a crash would.
	flushGate func() bool

	// subs caches active subscriptions' URL and decrypted secret for a
	// second, sparing a query and a decryption per attempt; a deletion or
	// disabling is noticed within that second.
	subsMu sync.Mutex
	subs   map[string]subscription
}

type subscription struct {
	url, secret string
	at          time.Time
}

const subscriptionTTL = time.Second

// New returns a dispatcher reading deliveries from pool, decrypting
// secrets with masterKey, and recording disabled endpoints through hooks.
func New(pool *pgxpool.Pool, hooks Disabler, masterKey []byte, opts Options) *Dispatcher {
	opts = opts.withDefaults()
	return &Dispatcher{
		pool: pool, hooks: hooks, key: masterKey, opts: opts,
		log:    opts.Logger.With("component", "webhook-dispatcher"),
		client: NewClient(opts.Addresses, opts.Timeout, opts.PerEndpoint),
		m:      newMetrics(opts.Registerer),
		wake:   make(chan struct{}, 1),
		subs:   map[string]subscription{},
	}
}

// claimDelay bounds how long freed workers wait for others to free up
// before the dispatcher claims work for them.
const claimDelay = 5 * time.Millisecond

// NewClient is the HTTP client deliveries use: it connects only to
// addresses policy allows (checked on the resolved address at connect
// time), ignores proxy settings (a proxy would bypass that check), never
// follows redirects, and gives up after timeout.
func NewClient(policy netguard.Policy, timeout time.Duration, perHost int) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           policy.Dialer(timeout).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Wake makes the dispatcher look for due deliveries now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx ends, then waits for attempts in flight (which
// ctx also cancels; their deliveries are released for a later attempt)
// and records the outcomes it holds. A dispatcher runs once at a time.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.outcomes = make(chan recordable, d.opts.Workers)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.listen(ctx) }()
	recorded := make(chan struct{})
	go func() { defer close(recorded); d.recorder() }()
	chunk := int64(max(1, d.opts.Workers/4))
	var lastGauge time.Time
	for ctx.Err() == nil {
		// Reset before reading inFlight: an attempt finishing in between
		// is then either in free or counted towards the next wake-up.
		d.finished.Store(0)
		free := d.opts.Workers - int(d.inFlight.Load())
		claimed := 0
		if free > 0 {
			// The claim is not cancelled by shutdown: a lease UPDATE that
			// committed while its caller gave up would strand its rows
			// until the lease expires. Claimed rows are released instead.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			batch, err := d.claim(cctx, free)
			cancel()
			if err != nil && ctx.Err() == nil {
				d.log.Warn("claiming deliveries failed", "err", err)
			}
			if ctx.Err() != nil {
				for _, c := range batch {
					d.release(c)
				}
				batch = nil
			}
			claimed = len(batch)
			d.inFlight.Add(int64(claimed))
			for _, c := range batch {
				wg.Add(1)
				go func(c claim) {
					defer wg.Done()
					d.attempt(ctx, c)
					left := d.inFlight.Add(-1)
					switch n := d.finished.Add(1); {
					case n >= chunk || left == 0:
						d.Wake()
					case n == 1:
						time.AfterFunc(claimDelay, d.Wake)
					}
				}(c)
			}
		}
		if time.Since(lastGauge) >= max(d.opts.Poll, time.Second) {
			d.updateGauges(ctx)
			lastGauge = time.Now()
		}
		if claimed > 0 && claimed == free {
			continue // probably more due; claims again once workers free up
		}
		wait := d.opts.Poll
		if free > 0 {
			if until, ok := d.nextDue(ctx); ok && until > 0 && until < wait {
				wait = until
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
	wg.Wait()
	close(d.outcomes)
	<-recorded
	return nil
}

// listen wakes the dispatcher whenever a fan-out in any process commits
// new deliveries.
func (d *Dispatcher) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := func() error {
			conn, err := d.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, `LISTEN `+projections.WebhookNotifyChannel); err != nil {
				return err
			}
			defer conn.Exec(context.Background(), `UNLISTEN *`) //nolint:errcheck
			d.Wake()                                            // anything committed before LISTEN
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					return err
				}
				d.Wake()
			}
		}()
		if ctx.Err() != nil {
			return
		}
		d.log.Debug("LISTEN failed; polling meanwhile", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

type claim struct {
	id, subID, partnerID, environment, eventID string
	body                                       []byte
	attempts                                   int // recorded so far, an interrupted one included
	token                                      uuid.UUID
}

// Reasons of a delivery log's attempts that are not the receiver's answer.
const (
	// reasonBlocked: the address guard refused the endpoint's address.
	// Permanent: retrying the same URL reaches the same address.
	reasonBlocked = "blocked_address"
	// reasonInterrupted: an attempt was claimed but its outcome never
	// written (its dispatcher crashed, or wrote too late and lost its
	// lease); whether the receiver got it is unknown.
	reasonInterrupted = "interrupted"
)

// interruptedError is the delivery log's error of an interrupted attempt.
const interruptedError = "the attempt was interrupted before its outcome was recorded (the dispatcher stopped or lost its lease); the receiver may or may not have received it"

// claim leases up to n due deliveries. Candidates are ranked within their
// subscription and taken round-robin across subscriptions (rank first), and
// a subscription never has more than PerEndpoint leased at once, so one
// endpoint's backlog or slowness cannot starve the others.
//
// Its cost follows the number of subscriptions with pending deliveries and
// n, not the backlog: it walks those subscriptions with a skip scan of
// webhook_deliveries_sub_due_idx and takes at most the first few due
// deliveries of each.
func (d *Dispatcher) claim(ctx context.Context, n int) ([]claim, error) {
	token := uuid.New()
	// Lease times are the database's clock (statement_timestamp), never a
	// process's: dispatchers on hosts whose clocks disagree would otherwise
	// take over each other's live leases and send one delivery twice.
	rows, err := d.pool.Query(ctx, `
WITH RECURSIVE subs AS (
    (SELECT subscription_id AS id FROM webhook_deliveries WHERE status = 'PENDING' ORDER BY subscription_id LIMIT 1)
  UNION ALL
    SELECT (SELECT w.subscription_id FROM webhook_deliveries w
            WHERE w.status = 'PENDING' AND w.subscription_id > s.id ORDER BY w.subscription_id LIMIT 1)
    FROM subs s WHERE s.id IS NOT NULL
), cand AS (
    SELECT c.id, c.subscription_id, c.next_attempt_at FROM subs s CROSS JOIN LATERAL (
        SELECT w.id, w.subscription_id, w.next_attempt_at FROM webhook_deliveries w
        WHERE w.subscription_id = s.id AND w.status = 'PENDING' AND w.next_attempt_at <= statement_timestamp()
          AND (w.lease_until IS NULL OR w.lease_until <= statement_timestamp())
        ORDER BY w.subscription_id, w.next_attempt_at, w.id
        LIMIT least($2, greatest(0, $1 - (SELECT count(*) FROM webhook_deliveries b
            WHERE b.subscription_id = s.id AND b.status = 'PENDING' AND b.lease_until IS NOT NULL AND b.lease_until > statement_timestamp())))
    ) c WHERE s.id IS NOT NULL
), pick AS (
    SELECT id FROM (
        SELECT id, next_attempt_at, row_number() OVER (PARTITION BY subscription_id ORDER BY next_attempt_at, id) AS rn FROM cand
    ) r ORDER BY rn, next_attempt_at, id LIMIT $2
), locked AS (
    -- A lease that ran out without being cleared (writing an outcome,
    -- releasing and cancelling all clear it) is an interrupted attempt.
    SELECT w.id, w.lease_until AS stale FROM webhook_deliveries w
    WHERE w.id IN (SELECT id FROM pick) AND w.status = 'PENDING' AND (w.lease_until IS NULL OR w.lease_until <= statement_timestamp())
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET lease_until = statement_timestamp() + $3::interval, lease_token = $4,
        attempts = d.attempts + CASE WHEN locked.stale IS NULL THEN 0 ELSE 1 END,
        last_error = CASE WHEN locked.stale IS NULL THEN d.last_error ELSE $5 END
    FROM locked WHERE d.id = locked.id
    RETURNING d.id, d.subscription_id, d.partner_id, d.environment, d.event_id, d.body, d.attempts, locked.stale
), interrupted AS (
    -- Recorded as it began: when its lease was taken.
    INSERT INTO webhook_attempts (delivery_id, attempt, subscription_id, partner_id, environment,
        attempted_at, success, status_code, latency_ms, reason, error, response_body)
    SELECT id, attempts, subscription_id, partner_id, environment, stale - $3::interval, false, NULL, 0, $6, $5, NULL
    FROM claimed WHERE stale IS NOT NULL
)
SELECT id, subscription_id, partner_id, environment, event_id, body, attempts FROM claimed`,
		d.opts.PerEndpoint, n, d.opts.Lease, token, interruptedError, reasonInterrupted)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (claim, error) {
		c := claim{token: token}
		err := row.Scan(&c.id, &c.subID, &c.partnerID, &c.environment, &c.eventID, &c.body, &c.attempts)
		return c, err
	})
}

// nextDue is how long until the earliest unleased pending delivery is due.
func (d *Dispatcher) nextDue(ctx context.Context) (time.Duration, bool) {
	var at *time.Time
	err := d.pool.QueryRow(ctx, `SELECT next_attempt_at FROM webhook_deliveries
		WHERE status = 'PENDING' AND lease_until IS NULL ORDER BY next_attempt_at LIMIT 1`).Scan(&at)
	if err != nil || at == nil {
		return 0, false
	}
	return time.Until(*at), true
}

func (d *Dispatcher) updateGauges(ctx context.Context) {
	var n int64
	var oldest *time.Time
	if err := d.pool.QueryRow(ctx, `SELECT count(*), min(enqueued_at) FROM webhook_deliveries WHERE status = 'PENDING'`).Scan(&n, &oldest); err != nil {
		return
	}
	d.m.depth.Set(float64(n))
	if oldest != nil {
		d.m.oldest.Set(time.Since(*oldest).Seconds())
	} else {
		d.m.oldest.Set(0)
	}
}

// outcome is what one attempt came to.
type outcome struct {
	at         time.Time
	ok         bool
	statusCode int
	latency    time.Duration
	reason     string
	errText    string
	body       string
	retryAfter time.Duration
}

// maxLoggedBody is how much of a response the delivery log keeps.
const maxLoggedBody = 1024

func (d *Dispatcher) attempt(ctx context.Context, c claim) {
	d.subsMu.Lock()
	sub, ok := d.subs[c.subID]
	d.subsMu.Unlock()
	if !ok || time.Since(sub.at) > subscriptionTTL {
		var sealed []byte
		var deleted, disabled bool
		err := d.pool.QueryRow(ctx, `SELECT url, secret_sealed, deleted_at IS NOT NULL, disabled_at IS NOT NULL FROM `+
			projections.Table(projections.WebhooksName, "subscriptions")+` WHERE id = $1`, c.subID).Scan(&sub.url, &sealed, &deleted, &disabled)
		switch {
		case errors.Is(err, pgx.ErrNoRows) || deleted:
			d.cancel(c, "webhook deleted")
			return
		case err != nil:
			d.release(c)
			return
		case disabled:
			d.cancel(c, "webhook disabled")
			return
		}
		secret, err := secretbox.Open(d.key, c.subID, sealed)
		if err != nil {
			d.log.Error("cannot decrypt webhook secret (wrong master key?)", "webhook", c.subID, "err", err)
			d.release(c)
			return
		}
		sub.secret, sub.at = string(secret), time.Now()
		d.subsMu.Lock()
		if len(d.subs) > 100000 {
			d.subs = map[string]subscription{}
		}
		d.subs[c.subID] = sub
		d.subsMu.Unlock()
	}
	url, secret := sub.url, sub.secret
	o := d.send(ctx, url, secret, c.body)
	if ctx.Err() != nil && o.statusCode == 0 {
		// Shutting down cut the attempt short before the receiver
		// answered: not the receiver's failure, so it is not recorded.
		// An answer that did arrive is recorded, success included, or the
		// event would be sent again by the next dispatcher.
		d.release(c)
		return
	}
	d.record(c, o)
}

func (d *Dispatcher) send(ctx context.Context, url, secret string, body []byte) outcome {
	o := outcome{at: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		o.reason, o.errText = "invalid_url", err.Error()
		return o
	}
	ts := o.at.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := d.client.Do(req)
	if err != nil {
		o.latency = time.Since(o.at)
		o.reason, o.errText = classify(err), err.Error()
		return o
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxLoggedBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	o.latency = time.Since(o.at)
	o.statusCode, o.body = resp.StatusCode, string(b) // made storable by record
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		o.ok = true
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		o.reason, o.errText = "redirect", fmt.Sprintf("HTTP %d: redirects are not followed", resp.StatusCode)
	case resp.StatusCode == 429:
		o.reason, o.errText = "http_429", "HTTP 429"
	case resp.StatusCode < 500:
		o.reason, o.errText = "http_4xx", fmt.Sprintf("HTTP %d", resp.StatusCode)
	default:
		o.reason, o.errText = "http_5xx", fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	if resp.StatusCode == 429 || resp.StatusCode == 503 {
		o.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), o.at)
	}
	return o
}

func classify(err error) string {
	var ne net.Error
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, netguard.ErrBlocked):
		return reasonBlocked
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &certErr):
		return "tls"
	case errors.Is(err, errConnRefused):
		return "connection_refused"
	default:
		return "network"
	}
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (d *Dispatcher) delay(attempts int, retryAfter time.Duration) time.Duration {
	base := d.opts.Schedule[attempts]
	if d.opts.Jitter > 0 && base > 0 {
		base += time.Duration((rand.Float64()*2 - 1) * d.opts.Jitter * float64(base))
	}
	if retryAfter > d.opts.MaxRetryAfter {
		retryAfter = d.opts.MaxRetryAfter
	}
	if retryAfter > base {
		base = retryAfter
	}
	return base
}

// recordable is a finished attempt waiting to be written.
type recordable struct {
	c      claim
	o      outcome
	status string // the delivery's next status
	next   time.Time
}

// record hands an attempt's outcome to the recorder. The delivery stays
// leased until the recorder writes it, so no one else attempts it
// meanwhile; if this process dies first, the lease runs out and the
// delivery is attempted again (never lost, and never recorded twice:
// writes are conditional on the lease token).
func (d *Dispatcher) record(c claim, o outcome) {
	// Receivers choose these bytes; PostgreSQL text refuses NUL.
	o.body, o.errText = pgText(o.body), pgText(o.errText)
	r := recordable{c: c, o: o, status: "PENDING", next: o.at}
	switch n := c.attempts + 1; {
	case o.ok:
		r.status = "SUCCEEDED"
	case o.reason == reasonBlocked:
		// The guard decides on the resolved address, which a retry would
		// resolve again to the same refusal for a day: fail it now, and
		// say so in the log.
		r.status = "FAILED"
		r.o.errText = "the endpoint's address is not allowed (private, loopback or otherwise internal); not retried: " + o.errText
	case n >= len(d.opts.Schedule):
		r.status = "FAILED"
	default:
		r.next = time.Now().Add(d.delay(n, o.retryAfter))
	}
	d.outcomes <- r
}

// pgText makes s storable as PostgreSQL text: valid UTF-8 without NUL.
// Invalid bytes become "?", as the delivery log has always shown them.
func pgText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// maxRecordBatch bounds how many outcomes one statement writes.
const maxRecordBatch = 256

// recorder writes outcomes until d.outcomes is closed and drained. It takes
// whatever has queued up while the previous write ran, so batches grow
// with the load and an outcome never waits for a timer.
func (d *Dispatcher) recorder() {
	var batch []recordable
	for r := range d.outcomes {
		batch = append(batch[:0], r)
	more:
		for len(batch) < maxRecordBatch {
			select {
			case r, ok := <-d.outcomes:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		if d.flushGate != nil && !d.flushGate() {
			continue
		}
		if err := d.flush(batch); err != nil && len(batch) > 1 {
			// One outcome the database refuses must not take the others
			// down with it (they would be attempted again): write them
			// one by one, so only that one waits for its lease to end.
			for _, r := range batch {
				_ = d.flush([]recordable{r})
			}
		}
		// The written deliveries' leases are gone: their endpoints have
		// room again (until now they counted against PerEndpoint).
		d.Wake()
	}
}

// flush writes a batch of attempts and their deliveries' next states in
// one statement (one round trip, one transaction): each attempt is written
// only if its dispatcher still holds the delivery's lease, together with
// the delivery's state and its endpoint's health.
func (d *Dispatcher) flush(batch []recordable) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := d.pool.Query(ctx, recordSQL, append(recordColumns(batch), quietSpell)...)
	if err != nil {
		d.log.Warn("recording delivery attempts failed; they will be retried when their leases end", "attempts", len(batch), "err", err)
		return err
	}
	written, endpoints, err := readRecorded(rows)
	if err != nil {
		d.log.Warn("recording delivery attempts failed; they will be retried when their leases end", "attempts", len(batch), "err", err)
		return err
	}
	d.afterRecorded(ctx, batch, written, endpoints)
	return nil
}

// recordColumns are recordSQL's first sixteen parameters: the batch's
// attempts as column arrays.
func recordColumns(batch []recordable) []any {
	k := len(batch)
	ids, tokens, statuses, subs, partners, envs, reasons, bodies := make([]string, k), make([]string, k), make([]string, k),
		make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
	attempts, latencies := make([]int32, k), make([]int64, k)
	next, at := make([]time.Time, k), make([]time.Time, k)
	completed := make([]*time.Time, k)
	codes := make([]*int32, k)
	errTexts := make([]*string, k)
	oks := make([]bool, k)
	for i, r := range batch {
		ids[i], tokens[i], statuses[i] = r.c.id, r.c.token.String(), r.status
		subs[i], partners[i], envs[i] = r.c.subID, r.c.partnerID, r.c.environment
		reasons[i], bodies[i] = r.o.reason, r.o.body
		attempts[i], latencies[i] = int32(r.c.attempts+1), r.o.latency.Milliseconds()
		next[i], at[i], oks[i] = r.next, r.o.at, r.o.ok
		if r.status != "PENDING" {
			completed[i] = &batch[i].o.at
		}
		if r.o.statusCode != 0 {
			c := int32(r.o.statusCode)
			codes[i] = &c
		}
		if !r.o.ok {
			errTexts[i] = &batch[i].o.errText
		}
	}
	return []any{ids, tokens, attempts, statuses, next, at, codes, errTexts, completed, subs, partners, envs, oks, latencies, reasons, bodies}
}

// recordSQL writes attempts, deliveries and endpoint health at once. An
// endpoint's health folds its attempts in the order they started: a
// success clears failing_since, the first failure after the last success
// sets it. It returns a row per delivery written (id, token) and per
// endpoint touched (subscription, failing since, disabled at).
const recordSQL = `
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::int[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::int[], $8::text[],
        $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::bigint[], $15::text[], $16::text[])
        AS o(id, token, attempt, status, next_at, at, code, err, completed, sub, partner, env, ok, latency, reason, body)
), upd AS (
    UPDATE webhook_deliveries d SET attempts = o.attempt, status = o.status, next_attempt_at = o.next_at,
        lease_until = NULL, lease_token = NULL, last_attempt_at = o.at, last_status_code = o.code, last_error = o.err,
        completed_at = o.completed
    FROM o WHERE d.id = o.id AND d.lease_token = o.token
    RETURNING d.id, o.token
), rec AS (
    -- By lease too: a process can hold a stale outcome and a fresh one
    -- for the same delivery; only the current lease's attempt is written.
    SELECT o.* FROM o JOIN upd USING (id, token)
), att AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, subscription_id, partner_id, environment,
        attempted_at, success, status_code, latency_ms, reason, error, response_body)
    SELECT id, attempt, sub, partner, env, at, ok, code, latency, nullif(reason, ''), err, body FROM rec
), agg AS (
    SELECT g.sub, g.partner, g.env, g.ok_at, g.last_fail,
        (SELECT min(r.at) FROM rec r WHERE r.sub = g.sub AND NOT r.ok AND (g.ok_at IS NULL OR r.at > g.ok_at)) AS fail_at
    FROM (SELECT sub, min(partner) AS partner, min(env) AS env, max(at) FILTER (WHERE ok) AS ok_at,
            max(at) FILTER (WHERE NOT ok) AS last_fail FROM rec GROUP BY sub) g
), ep AS (
    INSERT INTO webhook_endpoints AS e (subscription_id, partner_id, environment, last_success_at, failing_since, last_failure_at)
    SELECT sub, partner, env, ok_at, fail_at, last_fail FROM agg
    ON CONFLICT (subscription_id) DO UPDATE SET
        last_success_at = greatest(e.last_success_at, excluded.last_success_at),
        failing_since = CASE
            WHEN excluded.last_success_at IS NOT NULL THEN excluded.failing_since
            -- Silent longer than quietSpell since the last failure: no
            -- evidence it kept failing, so a new streak starts.
            WHEN excluded.failing_since - e.last_failure_at > $17::interval THEN excluded.failing_since
            ELSE coalesce(e.failing_since, excluded.failing_since) END,
        last_failure_at = greatest(e.last_failure_at, excluded.last_failure_at)
    RETURNING subscription_id, failing_since, disabled_at
)
SELECT id, token::text, NULL, NULL, NULL FROM upd
UNION ALL
SELECT NULL, NULL, subscription_id, failing_since, disabled_at FROM ep`

// endpointHealth is an endpoint's failure streak after a recorded batch.
type endpointHealth struct{ failingSince, disabledAt *time.Time }

// readRecorded reads recordSQL's answer: which attempts were written (their
// dispatcher still held the lease) and each touched endpoint's health.
func readRecorded(rows pgx.Rows) (map[claimKey]bool, map[string]endpointHealth, error) {
	defer rows.Close()
	written := map[claimKey]bool{}
	endpoints := map[string]endpointHealth{}
	for rows.Next() {
		var id, token, sub *string
		var h endpointHealth
		if err := rows.Scan(&id, &token, &sub, &h.failingSince, &h.disabledAt); err != nil {
			return nil, nil, err
		}
		if id != nil && token != nil {
			written[claimKey{*id, *token}] = true
		} else if sub != nil {
			endpoints[*sub] = h
		}
	}
	return written, endpoints, rows.Err()
}

// afterRecorded counts the written attempts and disables the endpoints
// whose failure streak has lasted DisableAfter.
func (d *Dispatcher) afterRecorded(ctx context.Context, batch []recordable, written map[claimKey]bool, endpoints map[string]endpointHealth) {
	lastFailure := map[string]recordable{}
	for _, r := range batch {
		if !written[claimKey{r.c.id, r.c.token.String()}] {
			continue // lease lost: another dispatcher owns the delivery now
		}
		d.m.latency.Observe(r.o.latency.Seconds())
		if r.o.ok {
			d.m.attempts.WithLabelValues("success", "").Inc()
		} else {
			d.m.attempts.WithLabelValues("failure", r.o.reason).Inc()
			if l, ok := lastFailure[r.c.subID]; !ok || r.o.at.After(l.o.at) {
				lastFailure[r.c.subID] = r
			}
		}
		if r.status != "PENDING" {
			d.m.deliveries.WithLabelValues(map[string]string{"SUCCEEDED": "succeeded", "FAILED": "failed"}[r.status]).Inc()
		}
	}
	for sub, r := range lastFailure {
		h := endpoints[sub]
		if h.failingSince != nil && h.disabledAt == nil && r.o.at.Sub(*h.failingSince) >= d.opts.DisableAfter {
			d.disable(ctx, r.c, *h.failingSince)
		}
	}
}

// quietSpell is how long an endpoint may go without attempts before its
// next failure starts a new failure streak. The retry schedule never
// leaves a failing delivery this long between attempts (10 h at most).
const quietSpell = 24 * time.Hour

// claimKey names one lease of one delivery.
type claimKey struct{ id, token string }

func (d *Dispatcher) disable(ctx context.Context, c claim, since time.Time) {
	scope := eventstore.Tenant{PartnerID: c.partnerID, Environment: c.environment}
	reason := fmt.Sprintf("no successful delivery since %s", since.UTC().Format(time.RFC3339))
	if _, err := d.hooks.DisableWebhook(ctx, scope, c.subID, events.WebhookDisabled{Reason: reason, FailingSince: since.UTC()}); err != nil {
		d.log.Warn("disabling failing webhook failed", "webhook", c.subID, "err", err)
		return
	}
	_, _ = d.pool.Exec(ctx, `UPDATE webhook_endpoints SET disabled_at = $2 WHERE subscription_id = $1 AND disabled_at IS NULL`, c.subID, time.Now())
	d.log.Info("disabled failing webhook", "webhook", c.subID, "failingSince", since)
}

// cancel ends a delivery whose subscription is gone without an attempt.
func (d *Dispatcher) cancel(c claim, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tag, err := d.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'FAILED', last_error = $3, completed_at = $4,
		lease_until = NULL, lease_token = NULL WHERE id = $1 AND lease_token = $2`, c.id, c.token, why, time.Now())
	if err == nil && tag.RowsAffected() > 0 {
		d.m.deliveries.WithLabelValues("canceled").Inc()
	}
}

// release gives a claimed delivery back without an attempt.
func (d *Dispatcher) release(c claim) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = d.pool.Exec(ctx, `UPDATE webhook_deliveries SET lease_until = NULL, lease_token = NULL WHERE id = $1 AND lease_token = $2`, c.id, c.token)
}
