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
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/netguard"
	"github.com/sirgiving/ledger/internal/secretbox"
	"github.com/sirgiving/ledger/ledger"
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

// Dispatcher sends due deliveries. Any number may run against one
// database; each delivery is attempted by one of them at a time.
type Dispatcher struct {
	pool   *pgxpool.Pool
	hooks  *ledger.Webhooks
	key    []byte
	opts   Options
	log    *slog.Logger
	client *http.Client
	m      *metrics
	wake   chan struct{}

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
func New(pool *pgxpool.Pool, hooks *ledger.Webhooks, masterKey []byte, opts Options) *Dispatcher {
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
// ctx also cancels; their deliveries are released for a later attempt).
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.listen(ctx) }()
	sem := make(chan struct{}, d.opts.Workers)
	var lastGauge time.Time
	for ctx.Err() == nil {
		free := d.opts.Workers - len(sem)
		claimed := 0
		if free > 0 {
			batch, err := d.claim(ctx, free)
			if err != nil && ctx.Err() == nil {
				d.log.Warn("claiming deliveries failed", "err", err)
			}
			claimed = len(batch)
			for _, c := range batch {
				sem <- struct{}{}
				wg.Add(1)
				go func(c claim) {
					defer wg.Done()
					d.attempt(ctx, c)
					<-sem
					d.Wake()
				}(c)
			}
		}
		if time.Since(lastGauge) >= d.opts.Poll {
			d.updateGauges(ctx)
			lastGauge = time.Now()
		}
		if claimed > 0 && claimed == free {
			continue // probably more due
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
	attempts                                   int
	token                                      uuid.UUID
}

// claim leases up to n due deliveries. Candidates are ranked within their
// subscription and taken round-robin across subscriptions (rank first), and
// a subscription never has more than PerEndpoint leased at once, so one
// endpoint's backlog or slowness cannot starve the others.
func (d *Dispatcher) claim(ctx context.Context, n int) ([]claim, error) {
	now := time.Now()
	token := uuid.New()
	rows, err := d.pool.Query(ctx, `
WITH busy AS (
    SELECT subscription_id, count(*) AS n FROM webhook_deliveries
    WHERE status = 'PENDING' AND lease_until > $1 GROUP BY subscription_id
), ranked AS (
    SELECT id, subscription_id, next_attempt_at,
           row_number() OVER (PARTITION BY subscription_id ORDER BY next_attempt_at, id) AS rn
    FROM webhook_deliveries
    WHERE status = 'PENDING' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
), pick AS (
    SELECT r.id FROM ranked r LEFT JOIN busy b USING (subscription_id)
    WHERE r.rn + coalesce(b.n, 0) <= $2
    ORDER BY r.rn, r.next_attempt_at, r.id
    LIMIT $3
), locked AS (
    SELECT w.id FROM webhook_deliveries w
    WHERE w.id IN (SELECT id FROM pick) AND w.status = 'PENDING' AND (w.lease_until IS NULL OR w.lease_until <= $1)
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d SET lease_until = $4, lease_token = $5
FROM locked WHERE d.id = locked.id
RETURNING d.id, d.subscription_id, d.partner_id, d.environment, d.event_id, d.body, d.attempts`,
		now, d.opts.PerEndpoint, n, now.Add(d.opts.Lease), token)
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
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short by us, not the receiver.
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
	o.statusCode, o.body = resp.StatusCode, string(bytes.ToValidUTF8(b, []byte("?")))
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
		return "blocked_address"
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

// record writes one attempt and the delivery's next state in one
// transaction, if this dispatcher still holds the lease.
func (d *Dispatcher) record(c claim, o outcome) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := c.attempts + 1
	status, next := "PENDING", o.at
	var completed *time.Time
	switch {
	case o.ok:
		status, completed = "SUCCEEDED", &o.at
	case n >= len(d.opts.Schedule):
		status, completed = "FAILED", &o.at
	default:
		next = time.Now().Add(d.delay(n, o.retryAfter))
	}
	var code *int
	if o.statusCode != 0 {
		code = &o.statusCode
	}
	var errText *string
	if !o.ok {
		errText = &o.errText
	}
	var failingSince, disabledAt *time.Time
	var recorded int
	// One statement, so one round trip and one implicit transaction: the
	// attempt, the delivery's next state and the endpoint's health move
	// together, and only while this dispatcher holds the lease.
	err := d.pool.QueryRow(ctx, `
WITH upd AS (
    UPDATE webhook_deliveries SET attempts = $3, status = $4, next_attempt_at = $5,
        lease_until = NULL, lease_token = NULL, last_attempt_at = $6, last_status_code = $7, last_error = $8, completed_at = $9
    WHERE id = $1 AND lease_token = $2 RETURNING id
), att AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, subscription_id, partner_id, environment,
        attempted_at, success, status_code, latency_ms, reason, error, response_body)
    SELECT id, $3, $10, $11, $12, $6, $13, $7, $14, nullif($15, ''), $8, $16 FROM upd
), ep AS (
    INSERT INTO webhook_endpoints (subscription_id, partner_id, environment, last_success_at, failing_since)
    SELECT $10, $11, $12, CASE WHEN $13 THEN $6::timestamptz END, CASE WHEN $13 THEN NULL ELSE $6::timestamptz END FROM upd
    ON CONFLICT (subscription_id) DO UPDATE SET
        last_success_at = CASE WHEN $13 THEN $6::timestamptz ELSE webhook_endpoints.last_success_at END,
        failing_since = CASE WHEN $13 THEN NULL ELSE coalesce(webhook_endpoints.failing_since, $6::timestamptz) END
    RETURNING failing_since, disabled_at
)
SELECT (SELECT count(*) FROM upd)::int, (SELECT failing_since FROM ep), (SELECT disabled_at FROM ep)`,
		c.id, c.token, n, status, next, o.at, code, errText, completed,
		c.subID, c.partnerID, c.environment, o.ok, o.latency.Milliseconds(), o.reason, o.body).Scan(&recorded, &failingSince, &disabledAt)
	if err != nil {
		d.log.Warn("recording a delivery attempt failed; it will be retried when its lease ends", "delivery", c.id, "err", err)
		return
	}
	if recorded == 0 {
		return // lease lost: another dispatcher owns the delivery now
	}
	d.m.latency.Observe(o.latency.Seconds())
	if o.ok {
		d.m.attempts.WithLabelValues("success", "").Inc()
	} else {
		d.m.attempts.WithLabelValues("failure", o.reason).Inc()
	}
	if status != "PENDING" {
		d.m.deliveries.WithLabelValues(map[string]string{"SUCCEEDED": "succeeded", "FAILED": "failed"}[status]).Inc()
	}
	if !o.ok && failingSince != nil && disabledAt == nil && o.at.Sub(*failingSince) >= d.opts.DisableAfter {
		d.disable(ctx, c, *failingSince)
	}
}

func (d *Dispatcher) disable(ctx context.Context, c claim, since time.Time) {
	scope := ledger.Scope{PartnerID: c.partnerID, Environment: c.environment}
	reason := fmt.Sprintf("no successful delivery since %s", since.UTC().Format(time.RFC3339))
	if _, err := d.hooks.Disable(ctx, scope, c.subID, events.WebhookDisabled{Reason: reason, FailingSince: since.UTC()}); err != nil {
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
