package httpapi

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sirgiving/ledger/ledger"
)

// LoginLimits bound password logins, which are unauthenticated and cost a
// bcrypt check each: a flood is a CPU denial of service and a way to
// stuff credentials. Zero fields take DefaultLoginLimits' values. Counts
// are kept in process memory, like the partner rate limits.
type LoginLimits struct {
	// PerEmail attempts per normalized email within EmailWindow that did
	// not succeed; a successful login clears the count.
	PerEmail    int
	EmailWindow time.Duration
	// PerIP attempts (successful or not) per client address within
	// IPWindow. The address is the connection's peer (RemoteAddr):
	// X-Forwarded-For is not trusted.
	PerIP    int
	IPWindow time.Duration
}

// DefaultLoginLimits are the login limits used for unset fields.
var DefaultLoginLimits = LoginLimits{PerEmail: 10, EmailWindow: 15 * time.Minute, PerIP: 60, IPWindow: time.Minute}

func (l LoginLimits) withDefaults() LoginLimits {
	d := DefaultLoginLimits
	if l.PerEmail <= 0 {
		l.PerEmail = d.PerEmail
	}
	if l.EmailWindow <= 0 {
		l.EmailWindow = d.EmailWindow
	}
	if l.PerIP <= 0 {
		l.PerIP = d.PerIP
	}
	if l.IPWindow <= 0 {
		l.IPWindow = d.IPWindow
	}
	return l
}

// attemptLimiter counts attempts per key in fixed windows that open at
// the key's first attempt.
type attemptLimiter struct {
	mu      sync.Mutex
	windows map[string]*attempts
}

type attempts struct {
	until time.Time
	count int
}

func newAttemptLimiter() *attemptLimiter { return &attemptLimiter{windows: map[string]*attempts{}} }

// take counts an attempt on key unless limit attempts were already made
// in the current window; if refused, it says when the window ends.
func (l *attemptLimiter) take(key string, limit int, per time.Duration, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[key]
	if w == nil || !now.Before(w.until) {
		w = &attempts{until: now.Add(per)}
		l.windows[key] = w
	}
	if w.count >= limit {
		return w.until, false
	}
	w.count++
	return w.until, true
}

func (l *attemptLimiter) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.windows, key)
}

func (l *attemptLimiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, w := range l.windows {
		if !now.Before(w.until) {
			delete(l.windows, k)
		}
	}
}

// clientIP is the host of the connection's peer address.
func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func loginRefused(w http.ResponseWriter, now, until time.Time, what string) error {
	retry := int64(math.Ceil(until.Sub(now).Seconds()))
	if retry < 1 {
		retry = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
	return &ledger.Error{Kind: ledger.KindRateLimited, Code: "RATE_LIMITED",
		Message: fmt.Sprintf("too many login attempts %s; retry after %d s", what, retry)}
}

// admitLoginFrom counts a login attempt from r's client address, or
// refuses it (429 RATE_LIMITED with Retry-After).
func (a *KeyAuth) admitLoginFrom(w http.ResponseWriter, r *http.Request) error {
	now := a.cfg.Now()
	until, ok := a.logins.take("ip:"+clientIP(r), a.cfg.Login.PerIP, a.cfg.Login.IPWindow, now)
	if !ok {
		return loginRefused(w, now, until, "from this address")
	}
	return nil
}

// admitLoginAs counts a login attempt for email, or refuses it. The
// attempt counts as a failure until loginSucceeded clears it, so
// concurrent guesses cannot overshoot the limit.
func (a *KeyAuth) admitLoginAs(w http.ResponseWriter, email string) error {
	now := a.cfg.Now()
	until, ok := a.logins.take("email:"+ledger.NormalizeEmail(email), a.cfg.Login.PerEmail, a.cfg.Login.EmailWindow, now)
	if !ok {
		return loginRefused(w, now, until, "for this account")
	}
	return nil
}

// loginSucceeded clears email's failed attempts.
func (a *KeyAuth) loginSucceeded(email string) {
	a.logins.forget("email:" + ledger.NormalizeEmail(email))
}
