// Package httpapi is the HTTP transport of the partner API: routing,
// authentication, and the mapping of requests to domain calls and of
// results and errors back to the wire contract. Handlers decode, call and
// encode; they hold no business rules.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sirgiving/ledger/apiusage"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// AuthKind is the `auth` column of endpoints.tsv.
type AuthKind string

// The four authentication kinds of CONTRACT §2, plus the login endpoint's.
const (
	AuthJWT        AuthKind = "JWT"
	AuthLogin      AuthKind = "Email/password"
	AuthWidget     AuthKind = "Widget"
	AuthHMAC       AuthKind = "HMAC"
	AuthHMACSecret AuthKind = "HMAC, secret key"
)

// Principal is who an authenticated request acts as. Every partner-scoped
// query and command takes its tenant from here, never from the request.
type Principal struct {
	PartnerID   string
	Environment string // "sandbox" or "production"; empty for JWT
	KeyID       string // for key-authenticated requests
	SecretKey   bool   // authenticated with an sk_ key
	UserID      string // portal user, for JWT requests
	Tier        string
}

type principalKey struct{}

// PrincipalFrom returns the authenticated principal of ctx, if any.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// WithPrincipal attaches p to ctx.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Authenticator checks a request's credentials for one auth kind and
// returns the principal, or a *eventstore.Error of kind Unauthorized or
// Forbidden. It may also answer rate-limit headers.
type Authenticator interface {
	Authenticate(w http.ResponseWriter, r *http.Request, kind AuthKind) (*Principal, error)
}

// Deps are the server's collaborators.
type Deps struct {
	Auth Authenticator
	// Handlers provides the endpoint implementations; routes without one
	// answer 501 NOT_IMPLEMENTED.
	Handlers map[RouteKey]http.HandlerFunc
	// Ready reports whether dependencies are usable, for /readyz.
	Ready      func(ctx context.Context) error
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	Logger     *slog.Logger
	// Extra registers additional routes (docs pages and the like).
	Extra func(r *mux.Router)
	// Usage, if set, counts every request whose tenant (partner and
	// environment) is known: authenticated ones, and those refused after
	// their key was resolved (bad signature, replay, rate limit…).
	Usage *apiusage.Recorder
}

// RouteKey identifies an endpoint as written in endpoints.tsv.
type RouteKey struct {
	Method string
	Path   string // e.g. /v1/partner/users/:externalId
}

// Server is the HTTP handler of the service.
type Server struct {
	deps     Deps
	router   *mux.Router
	latency  *prometheus.HistogramVec
	inflight prometheus.Gauge
}

// Healthz answers that the process is up ({"status":"ok"}); it checks
// nothing else (readiness is /readyz).
func Healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// New builds the handler with every endpoint of the contract routed.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	s := &Server{deps: d, router: mux.NewRouter()}
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "HTTP request latency by route template, method and status.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"route", "method", "status"})
	s.inflight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "http_requests_in_flight", Help: "Requests being served."})
	if d.Registerer != nil {
		d.Registerer.MustRegister(s.latency, s.inflight)
	}
	s.router.Use(s.observe)
	s.router.HandleFunc("/healthz", Healthz).Methods(http.MethodGet)
	s.router.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)
	if d.Gatherer != nil {
		s.router.Handle("/metrics", promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	}
	routeDocs(s.router)
	preflighted := map[string]bool{}
	for _, rt := range Routes() {
		h := d.Handlers[rt.Key()]
		if h == nil {
			h = notImplemented
		}
		var handler http.Handler = s.authenticated(rt, h)
		if rt.Auth == AuthWidget {
			// Widget endpoints are called from browser pages on partners'
			// origins: answer CORS preflights and label every response.
			handler = withCORS(handler)
			if !preflighted[rt.MuxPath()] {
				preflighted[rt.MuxPath()] = true
				s.router.Handle(rt.MuxPath(), withCORS(http.HandlerFunc(preflight))).Methods(http.MethodOptions)
			}
		}
		s.router.Handle(rt.MuxPath(), handler).Methods(rt.Method).Name(rt.Method + " " + rt.Path)
	}
	if d.Extra != nil {
		d.Extra(s.router)
	}
	s.router.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errNotFoundRoute)
	})
	s.router.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errMethodNotAllowed)
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Assigned here rather than in mux middleware so that 404s and 405s,
	// which bypass middleware, carry one too. A client-sent X-Request-Id is
	// not trusted as ours: it is kept in the log as clientRequestId.
	id := newRequestID()
	w.Header().Set("X-Request-Id", id)
	ctx := withRequestID(r.Context(), id, s.deps.Logger)
	if c := r.Header.Get("X-Request-Id"); c != "" && len(c) <= 128 {
		ctx = withLogAttrs(ctx, "clientRequestId", c)
	}
	r = r.WithContext(ctx)
	// A NUL in a path segment or query value would reach events and read
	// models (PostgreSQL text refuses it); refuse it before routing.
	// ("%00" has no letters, so no case folding is needed.)
	if strings.ContainsRune(r.URL.Path, 0) || strings.Contains(r.URL.RawQuery, "%00") {
		writeError(w, r, eventstore.Invalid("the URL may not contain the NUL character", eventstore.FieldIssue{Field: "url", Issue: "contains %00"}))
		return
	}
	s.router.ServeHTTP(w, r)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.deps.Ready == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) authenticated(rt Route, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.deps.Auth != nil && rt.Auth != AuthLogin {
			p, err := s.deps.Auth.Authenticate(w, r, rt.Auth)
			if err != nil {
				writeError(w, r, err)
				return
			}
			if p.Environment != "" {
				noteTenant(r.Context(), p.PartnerID, p.Environment)
			}
			ctx := WithPrincipal(r.Context(), p)
			ctx = withLogAttrs(ctx, "partnerId", p.PartnerID, "environment", p.Environment)
			r = r.WithContext(ctx)
		}
		h(w, r)
	})
}

type requestIDKey struct{}
type loggerKey struct{}
type usageNoteKey struct{}

// usageNote collects, while a request is served, what API usage counts
// about it. It is written only by the request's own goroutine and read by
// observe after the handler returned.
type usageNote struct {
	partnerID, environment string
	code                   string
}

func noteFrom(ctx context.Context) *usageNote {
	n, _ := ctx.Value(usageNoteKey{}).(*usageNote)
	return n
}

// noteTenant attributes the request to a tenant, as soon as it is known:
// from the principal, or from the key a refused request named.
func noteTenant(ctx context.Context, partnerID, environment string) {
	if n := noteFrom(ctx); n != nil {
		n.partnerID, n.environment = partnerID, environment
	}
}

func noteCode(ctx context.Context, code string) {
	if n := noteFrom(ctx); n != nil {
		n.code = code
	}
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

func withRequestID(ctx context.Context, id string, log *slog.Logger) context.Context {
	ctx = context.WithValue(ctx, requestIDKey{}, id)
	return context.WithValue(ctx, loggerKey{}, &requestLog{base: log, attrs: []any{"requestId", id}})
}

// requestLog is a request's logger, built only when something is logged:
// most requests log nothing, and slog's With formats its attributes at
// once (an allocation and the handler's encoding, twice per request).
type requestLog struct {
	base  *slog.Logger
	attrs []any
	once  sync.Once
	built *slog.Logger
}

func (l *requestLog) logger() *slog.Logger {
	l.once.Do(func() { l.built = l.base.With(l.attrs...) })
	return l.built
}

// withLogAttrs adds attributes to the request's logger from here on.
func withLogAttrs(ctx context.Context, attrs ...any) context.Context {
	l, _ := ctx.Value(loggerKey{}).(*requestLog)
	if l == nil {
		return context.WithValue(ctx, loggerKey{}, &requestLog{base: slog.Default(), attrs: attrs})
	}
	all := make([]any, 0, len(l.attrs)+len(attrs))
	return context.WithValue(ctx, loggerKey{}, &requestLog{base: l.base, attrs: append(append(all, l.attrs...), attrs...)})
}

// RequestIDFrom returns the request id assigned to ctx's request.
func RequestIDFrom(ctx context.Context) string { return requestIDFrom(ctx) }

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*requestLog); ok {
		return l.logger()
	}
	return slog.Default()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// observe logs the request and records latency by
// route template (never by raw path, which would explode cardinality),
// and counts the request in the tenant's API usage.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route, endpoint := "unmatched", ""
		if cr := mux.CurrentRoute(r); cr != nil {
			if t, err := cr.GetPathTemplate(); err == nil {
				route = t
			}
			endpoint = cr.GetName() // "METHOD /path/:param", as in endpoints.tsv
		}
		note := &usageNote{}
		r = r.WithContext(context.WithValue(r.Context(), usageNoteKey{}, note))
		s.inflight.Inc()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		s.inflight.Dec()
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		d := time.Since(start)
		s.latency.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Observe(d.Seconds())
		if s.deps.Usage != nil && endpoint != "" {
			s.deps.Usage.Record(apiusage.Request{PartnerID: note.partnerID, Environment: note.environment,
				Route: endpoint, Status: rec.status, Code: note.code, Latency: d})
		}
		if s.deps.Logger.Enabled(r.Context(), slog.LevelDebug) {
			loggerFrom(r.Context()).Debug("request", "method", r.Method, "route", route, "status", rec.status, "duration", d)
		}
	})
}
