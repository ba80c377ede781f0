package apiusage

import (
	"context"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// StatusClasses are the keys of every byStatusClass object.
var StatusClasses = []string{"2xx", "3xx", "4xx", "5xx"}

func classOf(status int) string {
	switch {
	case status < 300:
		return "2xx"
	case status < 400:
		return "3xx"
	case status < 500:
		return "4xx"
	}
	return "5xx"
}

func newClasses() map[string]int64 {
	m := make(map[string]int64, len(StatusClasses))
	for _, c := range StatusClasses {
		m[c] = 0
	}
	return m
}

// rate is part / whole rounded to 4 places; nil when whole is 0. It is a
// statistic, not an amount, so a float is the right type.
func rate(part, whole int64) *float64 {
	if whole == 0 {
		return nil
	}
	r := math.Round(float64(part)/float64(whole)*10000) / 10000
	return &r
}

// Latency is an estimate of latency percentiles in milliseconds from the
// fixed-bucket histogram; nil without requests.
type Latency struct {
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
}

// percentile estimates the q-quantile of a histogram by linear
// interpolation inside the bucket holding it. In the open-ended last
// bucket it answers that bucket's lower bound.
func percentile(h []int64, q float64) *float64 {
	var total int64
	for _, v := range h {
		total += v
	}
	if total == 0 {
		return nil
	}
	rank := q * float64(total)
	var cum int64
	for i, v := range h {
		if v == 0 || float64(cum+v) < rank {
			cum += v
			continue
		}
		lower := 0.0
		if i > 0 {
			lower = LatencyBoundsMs[i-1]
		}
		est := lower
		if i < len(LatencyBoundsMs) {
			est = lower + (LatencyBoundsMs[i]-lower)*(rank-float64(cum))/float64(v)
		}
		est = math.Round(est*10) / 10
		return &est
	}
	last := LatencyBoundsMs[len(LatencyBoundsMs)-1]
	return &last
}

// CodeCount is how often an error code was answered.
type CodeCount struct {
	Code   string `json:"code"`
	Status int    `json:"status"`
	Count  int64  `json:"count"`
}

// DayUsage is one UTC day of requests.
type DayUsage struct {
	Date          string           `json:"date"`
	Requests      int64            `json:"requests"`
	Errors        int64            `json:"errors"`
	ByStatusClass map[string]int64 `json:"byStatusClass"`
}

// EndpointUsage is one endpoint's requests in the window.
type EndpointUsage struct {
	Endpoint      string           `json:"endpoint"`
	Method        string           `json:"method"`
	Path          string           `json:"path"`
	Requests      int64            `json:"requests"`
	Errors        int64            `json:"errors"`
	ErrorRate     *float64         `json:"errorRate"`
	ByStatusClass map[string]int64 `json:"byStatusClass"`
	LatencyMs     Latency          `json:"latencyMs"`
}

// Totals are the window's request counts.
type Totals struct {
	Requests  int64    `json:"requests"`
	Errors    int64    `json:"errors"`
	ErrorRate *float64 `json:"errorRate"`
}

// Report is a tenant's API usage over the last Days UTC days.
type Report struct {
	Environment   string           `json:"environment"`
	From          string           `json:"from"`
	To            string           `json:"to"`
	Days          int              `json:"days"`
	GeneratedAt   time.Time        `json:"generatedAt"`
	Totals        Totals           `json:"totals"`
	ByStatusClass map[string]int64 `json:"byStatusClass"`
	Daily         []DayUsage       `json:"daily"`
	ByEndpoint    []EndpointUsage  `json:"byEndpoint"`
	ByErrorCode   []CodeCount      `json:"byErrorCode"`
}

// Usage reports the tenant's requests over the last days UTC days, today
// included: per day (every day present, zeros included), per endpoint
// (busiest first, with latency percentiles), per status class and per
// error code. Counts reach the table within a flush period.
func Usage(ctx context.Context, q eventstore.Querier, sc eventstore.Tenant, days int, now time.Time) (Report, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	from := today.AddDate(0, 0, -(days - 1))
	end := today.AddDate(0, 0, 1)
	rep := Report{Environment: sc.Environment, From: from.Format("2006-01-02"), To: today.Format("2006-01-02"), Days: days,
		GeneratedAt: now.UTC(), ByStatusClass: newClasses(), Daily: make([]DayUsage, 0, days),
		ByEndpoint: []EndpointUsage{}, ByErrorCode: []CodeCount{}}
	dayIdx := map[string]int{}
	for d := from; d.Before(end); d = d.AddDate(0, 0, 1) {
		dayIdx[d.Format("2006-01-02")] = len(rep.Daily)
		rep.Daily = append(rep.Daily, DayUsage{Date: d.Format("2006-01-02"), ByStatusClass: newClasses()})
	}

	rows, err := q.Query(ctx, `SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD'), route, status, code, sum(requests)::bigint
		FROM api_usage WHERE partner_id = $1 AND environment = $2 AND hour >= $3 AND hour < $4
		GROUP BY 1, 2, 3, 4`, sc.PartnerID, sc.Environment, from, end)
	if err != nil {
		return rep, err
	}
	endpoints := map[string]*EndpointUsage{}
	codes := map[[2]any]int64{}
	for rows.Next() {
		var day, route, code string
		var status int
		var n int64
		if err := rows.Scan(&day, &route, &status, &code, &n); err != nil {
			rows.Close()
			return rep, err
		}
		class, isErr := classOf(status), status >= 400
		rep.Totals.Requests += n
		rep.ByStatusClass[class] += n
		e := endpoints[route]
		if e == nil {
			method, path, _ := strings.Cut(route, " ")
			e = &EndpointUsage{Endpoint: route, Method: method, Path: path, ByStatusClass: newClasses()}
			endpoints[route] = e
		}
		e.Requests += n
		e.ByStatusClass[class] += n
		if i, ok := dayIdx[day]; ok {
			rep.Daily[i].Requests += n
			rep.Daily[i].ByStatusClass[class] += n
			if isErr {
				rep.Daily[i].Errors += n
			}
		}
		if isErr {
			rep.Totals.Errors += n
			e.Errors += n
			if code == "" {
				code = "HTTP_" + classOf(status)
			}
			codes[[2]any{code, status}] += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, err
	}
	rep.Totals.ErrorRate = rate(rep.Totals.Errors, rep.Totals.Requests)

	hists, err := histograms(ctx, q, sc, from, end)
	if err != nil {
		return rep, err
	}
	for route, e := range endpoints {
		e.ErrorRate = rate(e.Errors, e.Requests)
		h := hists[route]
		e.LatencyMs = Latency{P50: percentile(h, 0.5), P99: percentile(h, 0.99)}
		rep.ByEndpoint = append(rep.ByEndpoint, *e)
	}
	sort.Slice(rep.ByEndpoint, func(i, j int) bool {
		a, b := rep.ByEndpoint[i], rep.ByEndpoint[j]
		if a.Requests != b.Requests {
			return a.Requests > b.Requests
		}
		return a.Endpoint < b.Endpoint
	})
	for k, n := range codes {
		rep.ByErrorCode = append(rep.ByErrorCode, CodeCount{Code: k[0].(string), Status: k[1].(int), Count: n})
	}
	sortCodes(rep.ByErrorCode)
	return rep, nil
}

func sortCodes(cs []CodeCount) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Count != cs[j].Count {
			return cs[i].Count > cs[j].Count
		}
		if cs[i].Code != cs[j].Code {
			return cs[i].Code < cs[j].Code
		}
		return cs[i].Status < cs[j].Status
	})
}

// histograms sums the latency histograms of each route in [from, end).
func histograms(ctx context.Context, q eventstore.Querier, sc eventstore.Tenant, from, end time.Time) (map[string][]int64, error) {
	rows, err := q.Query(ctx, `SELECT route, b.i, sum(b.x)::bigint
		FROM api_usage, unnest(latency_buckets) WITH ORDINALITY AS b(x, i)
		WHERE partner_id = $1 AND environment = $2 AND hour >= $3 AND hour < $4
		GROUP BY route, b.i`, sc.PartnerID, sc.Environment, from, end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var route string
		var i, n int64
		if err := rows.Scan(&route, &i, &n); err != nil {
			return nil, err
		}
		if i < 1 || i > int64(NumBuckets) {
			continue
		}
		h := out[route]
		if h == nil {
			h = make([]int64, NumBuckets)
			out[route] = h
		}
		h[i-1] += n
	}
	return out, rows.Err()
}

// Window is the tenant's request counts since Since.
type Window struct {
	Since        time.Time `json:"since"`
	Requests     int64     `json:"requests"`
	Errors       int64     `json:"errors"`
	ServerErrors int64     `json:"serverErrors"`
	ErrorRate    *float64  `json:"errorRate"`
}

// SignatureFailureCodes are the request-signing failures counted by
// integration health. They are answered before the request has a
// principal; they are counted for the tenant whose key the request named.
var SignatureFailureCodes = []string{"INVALID_SIGNATURE", "TIMESTAMP_OUT_OF_RANGE", "REPLAYED_REQUEST"}

// SignatureFailures counts signing failures since Since.
type SignatureFailures struct {
	Since  time.Time        `json:"since"`
	Total  int64            `json:"total"`
	ByCode map[string]int64 `json:"byCode"`
}

// APIHealth is the request side of integration health.
type APIHealth struct {
	LastHour Window `json:"lastHour"`
	Last24h  Window `json:"last24h"`
	// TopErrorCodes are the most frequent error codes of the last 24 h.
	TopErrorCodes []CodeCount `json:"topErrorCodes"`
	// LastSuccessAt is the time of the latest 2xx/3xx answer.
	LastSuccessAt     *time.Time        `json:"lastSuccessAt"`
	SignatureFailures SignatureFailures `json:"signatureFailures"`
}

// Health summarises the tenant's recent requests. Counts are kept per
// clock hour, so "last hour" starts at the beginning of the hour an hour
// ago (60 to 120 minutes back) and "last 24 h" likewise; Since says where.
func Health(ctx context.Context, q eventstore.Querier, sc eventstore.Tenant, now time.Time) (APIHealth, error) {
	hourAgo := now.UTC().Add(-time.Hour).Truncate(time.Hour)
	dayAgo := now.UTC().Add(-24 * time.Hour).Truncate(time.Hour)
	h := APIHealth{LastHour: Window{Since: hourAgo}, Last24h: Window{Since: dayAgo}, TopErrorCodes: []CodeCount{},
		SignatureFailures: SignatureFailures{Since: dayAgo, ByCode: map[string]int64{}}}
	for _, c := range SignatureFailureCodes {
		h.SignatureFailures.ByCode[c] = 0
	}
	rows, err := q.Query(ctx, `SELECT hour >= $4, status, code, sum(requests)::bigint FROM api_usage
		WHERE partner_id = $1 AND environment = $2 AND hour >= $3 GROUP BY 1, 2, 3`, sc.PartnerID, sc.Environment, dayAgo, hourAgo)
	if err != nil {
		return h, err
	}
	codes := map[[2]any]int64{}
	for rows.Next() {
		var recent bool
		var status int
		var code string
		var n int64
		if err := rows.Scan(&recent, &status, &code, &n); err != nil {
			rows.Close()
			return h, err
		}
		ws := []*Window{&h.Last24h}
		if recent {
			ws = append(ws, &h.LastHour)
		}
		for _, w := range ws {
			w.Requests += n
			if status >= 400 {
				w.Errors += n
			}
			if status >= 500 {
				w.ServerErrors += n
			}
		}
		if status >= 400 {
			if code == "" {
				code = "HTTP_" + classOf(status)
			}
			codes[[2]any{code, status}] += n
		}
		if _, ok := h.SignatureFailures.ByCode[code]; ok {
			h.SignatureFailures.ByCode[code] += n
			h.SignatureFailures.Total += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return h, err
	}
	h.LastHour.ErrorRate = rate(h.LastHour.Errors, h.LastHour.Requests)
	h.Last24h.ErrorRate = rate(h.Last24h.Errors, h.Last24h.Requests)
	for k, n := range codes {
		h.TopErrorCodes = append(h.TopErrorCodes, CodeCount{Code: k[0].(string), Status: k[1].(int), Count: n})
	}
	sortCodes(h.TopErrorCodes)
	if len(h.TopErrorCodes) > 5 {
		h.TopErrorCodes = h.TopErrorCodes[:5]
	}
	if err := q.QueryRow(ctx, `SELECT max(last_at) FROM api_usage WHERE partner_id = $1 AND environment = $2 AND status < 400`,
		sc.PartnerID, sc.Environment).Scan(&h.LastSuccessAt); err != nil {
		return h, err
	}
	if h.LastSuccessAt != nil {
		t := h.LastSuccessAt.UTC()
		h.LastSuccessAt = &t
	}
	return h, nil
}
