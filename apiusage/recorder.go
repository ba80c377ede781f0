// Package apiusage counts the partner API's authenticated requests per
// tenant and answers the usage and integration-health dashboards.
//
// API usage is operational data, not a fact of the ledger: it is not
// derived from events and no projection rebuild touches it. Each process
// aggregates requests in memory (Recorder.Record takes a mutex and bumps
// counters) and adds its counts to the api_usage table every few seconds
// with one upsert, so a request never waits for a write of its own. A
// process crash loses at most the last few seconds of counts.
package apiusage

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirgiving/ledger/projections"
)

// LatencyBoundsMs are the upper bounds, in milliseconds, of the latency
// histogram kept per usage row; a last bucket holds everything slower.
// Changing them changes the meaning of stored rows: add bounds only at the
// end, and never reorder.
var LatencyBoundsMs = [...]float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// NumBuckets is the length of a stored histogram (the bounds plus overflow).
const NumBuckets = len(LatencyBoundsMs) + 1

// Retention is how long usage rows are kept; the dashboard looks back at
// most 90 days.
const Retention = 92 * 24 * time.Hour

// Request is the outcome of one authenticated request.
type Request struct {
	PartnerID   string
	Environment string
	// Route is the endpoint as in endpoints.tsv, e.g. "GET /v1/partner/actions/:id".
	Route   string
	Status  int
	Code    string // error code of a non-2xx answer
	Latency time.Duration
}

type rowKey struct {
	partnerID, environment string
	hour                   int64 // Unix seconds of the UTC hour's start
	route                  string
	status                 int
	code                   string
}

type counts struct {
	requests int64
	buckets  [NumBuckets]int64
	last     time.Time
}

func (c *counts) add(o *counts) {
	c.requests += o.requests
	for i := range c.buckets {
		c.buckets[i] += o.buckets[i]
	}
	if o.last.After(c.last) {
		c.last = o.last
	}
}

// Options configure a Recorder.
type Options struct {
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// FlushEvery is the flush period of Run (default 3 s).
	FlushEvery time.Duration
}

// Recorder aggregates request outcomes in memory and flushes them to the
// api_usage table. It is safe for concurrent use.
type Recorder struct {
	db   projections.Execer
	opts Options

	mu      sync.Mutex
	pending map[rowKey]*counts

	// flushMu makes flushes one at a time, so that a Flush returns only
	// once everything recorded before it is in the table (a concurrent
	// flush may have taken part of it).
	flushMu sync.Mutex
}

// NewRecorder builds a recorder writing through db (the bookkeeping pool:
// asynchronous commit is fine for counters).
func NewRecorder(db projections.Execer, opts Options) *Recorder {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 3 * time.Second
	}
	return &Recorder{db: db, opts: opts, pending: map[rowKey]*counts{}}
}

// bucketOf is the histogram bucket of a latency.
func bucketOf(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	for i, b := range LatencyBoundsMs {
		if ms <= b {
			return i
		}
	}
	return len(LatencyBoundsMs)
}

// Record counts one request. Requests without a tenant (partner and
// environment) are not counted.
func (r *Recorder) Record(req Request) {
	if req.PartnerID == "" || req.Environment == "" || req.Route == "" {
		return
	}
	now := r.opts.Now()
	hour := now.Unix() - now.Unix()%3600
	k := rowKey{req.PartnerID, req.Environment, hour, req.Route, req.Status, req.Code}
	b := bucketOf(req.Latency)
	r.mu.Lock()
	c := r.pending[k]
	if c == nil {
		c = &counts{}
		r.pending[k] = c
	}
	c.requests++
	c.buckets[b]++
	if now.After(c.last) {
		c.last = now
	}
	r.mu.Unlock()
}

// Flush adds every count recorded so far to the table. On failure the
// counts are kept for the next flush.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	batch := r.pending
	r.pending = map[rowKey]*counts{}
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := write(ctx, r.db, batch); err != nil {
		r.mu.Lock()
		for k, c := range batch {
			if cur := r.pending[k]; cur != nil {
				cur.add(c)
			} else {
				r.pending[k] = c
			}
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every FlushEvery and prunes rows past Retention every hour,
// until ctx ends; then it flushes once more (call it after the HTTP server
// has drained so the last requests are counted).
func (r *Recorder) Run(ctx context.Context) {
	flush := time.NewTicker(r.opts.FlushEvery)
	prune := time.NewTicker(time.Hour)
	defer flush.Stop()
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.Flush(fctx); err != nil {
				r.opts.Logger.Warn("final API usage flush failed", "err", err)
			}
			cancel()
			return
		case <-flush.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("flushing API usage failed; kept for the next flush", "err", err)
			}
		case <-prune.C:
			if _, err := Prune(ctx, r.db, r.opts.Now().Add(-Retention)); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("pruning API usage failed", "err", err)
			}
		}
	}
}

// write upserts a batch in one statement. Rows go in key order so that
// concurrent flushes (of several processes) lock rows in the same order.
func write(ctx context.Context, db projections.Execer, batch map[rowKey]*counts) error {
	keys := make([]rowKey, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		switch {
		case a.partnerID != b.partnerID:
			return a.partnerID < b.partnerID
		case a.environment != b.environment:
			return a.environment < b.environment
		case a.hour != b.hour:
			return a.hour < b.hour
		case a.route != b.route:
			return a.route < b.route
		case a.status != b.status:
			return a.status < b.status
		}
		return a.code < b.code
	})
	n := len(keys)
	partners, envs, routes, codes, hists := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	hours, lasts := make([]time.Time, n), make([]time.Time, n)
	statuses := make([]int32, n)
	reqs := make([]int64, n)
	for i, k := range keys {
		c := batch[k]
		partners[i], envs[i], routes[i], codes[i] = k.partnerID, k.environment, k.route, k.code
		hours[i], lasts[i] = time.Unix(k.hour, 0).UTC(), c.last.UTC()
		statuses[i], reqs[i] = int32(k.status), c.requests
		hists[i] = histLiteral(c.buckets[:])
	}
	_, err := db.Exec(ctx, `INSERT INTO api_usage AS u (partner_id, environment, hour, route, status, code, requests, latency_buckets, last_at)
		SELECT p, e, h, r, s::smallint, c, n, b::bigint[], l
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int4[], $6::text[], $7::int8[], $8::text[], $9::timestamptz[])
		  AS t(p, e, h, r, s, c, n, b, l)
		ON CONFLICT (partner_id, environment, hour, route, status, code) DO UPDATE SET
		  requests = u.requests + excluded.requests,
		  latency_buckets = ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0)
		    FROM unnest(u.latency_buckets, excluded.latency_buckets) WITH ORDINALITY AS a(x, y, i) ORDER BY i),
		  last_at = greatest(u.last_at, excluded.last_at)`,
		partners, envs, hours, routes, statuses, codes, reqs, hists, lasts)
	return err
}

// histLiteral is a PostgreSQL array literal ("{1,0,2}"), passed as text
// because unnest cannot take an array of arrays row by row.
func histLiteral(b []int64) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, v := range b {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatInt(v, 10))
	}
	sb.WriteByte('}')
	return sb.String()
}

// Prune deletes usage rows of hours that began before before.
func Prune(ctx context.Context, db projections.Execer, before time.Time) (int64, error) {
	tag, err := db.Exec(ctx, `DELETE FROM api_usage WHERE hour < $1`, before)
	return tag.RowsAffected(), err
}
