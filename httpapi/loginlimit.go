package httpapi

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// LoginLimits bound password logins, which are unauthenticated and cost a
// bcrypt check each: a flood is a CPU denial of service and a way to
// stuff credentials. Zero fields take DefaultLoginLimits' values. Counts
// hold across ledgerd processes (loginshared.go says how, and the one rule
// that is per process).
type LoginLimits struct {
	// PerEmail failed attempts per normalized email and client address
	// within EmailWindow; past it that address is refused for that account,
	// even with the right password, until the window ends. A successful
	// login clears the address's count. Failures are also added up per
	// email over all addresses: once they reach PerEmail, an address that
	// has failed recently may try again only every EmailWindow/PerEmail,
	// while an address with no recent failure is never refused, so a
	// stranger's guesses cannot lock the owner out.
	PerEmail    int
	EmailWindow time.Duration
	// PerIP attempts (successful or not) per client address within
	// IPWindow. The address is the connection's peer, or, when the peer
	// is one of TrustedProxies, the client it forwarded for.
	PerIP    int
	IPWindow time.Duration
	// TrustedProxies are the balancers whose X-Forwarded-For is believed.
	// Behind one, every peer address is the balancer's, so without this
	// all portal users would share one per-address budget. Empty trusts
	// no header: a client cannot pick its own address.
	TrustedProxies []netip.Prefix
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
// the key's first attempt, and failed logins per account (takeLogin).
type attemptLimiter struct {
	mu      sync.Mutex
	windows map[string]*attempts
	emails  map[string]*accountFailures
}

type attempts struct {
	until time.Time
	count int
	last  time.Time // the latest attempt counted
}

// accountFailures are one account's recent failed logins: in total, in a
// window of its own, and per client address, each address in its own.
type accountFailures struct {
	until time.Time
	total int
	from  map[string]*attempts
}

func newAttemptLimiter() *attemptLimiter {
	return &attemptLimiter{windows: map[string]*attempts{}, emails: map[string]*accountFailures{}}
}

// takeLogin counts a login attempt on email from addr as a failure (until
// loginOK says otherwise), or refuses it and says until when. See
// LoginLimits.PerEmail for the rules.
func (l *attemptLimiter) takeLogin(email, addr string, lim LoginLimits, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.emails[email]
	if e == nil {
		e = &accountFailures{until: now.Add(lim.EmailWindow), from: map[string]*attempts{}}
		l.emails[email] = e
	}
	if !now.Before(e.until) {
		e.until, e.total = now.Add(lim.EmailWindow), 0
	}
	f := e.from[addr]
	if f != nil && !now.Before(f.until) {
		delete(e.from, addr)
		f = nil
	}
	if f != nil {
		if f.count >= lim.PerEmail {
			return f.until, false
		}
		if next := f.last.Add(lim.EmailWindow / time.Duration(lim.PerEmail)); e.total >= lim.PerEmail && now.Before(next) {
			return next, false
		}
	} else {
		f = &attempts{until: now.Add(lim.EmailWindow)}
		e.from[addr] = f
	}
	f.count++
	f.last = now
	e.total++
	return time.Time{}, true
}

// loginOK forgets addr's failures on email, the attempt just taken
// included: they were the owner's own typing. Other addresses' failures
// stay, so a success from the owner does not give a guesser a new budget.
func (l *attemptLimiter) loginOK(email, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.emails[email]
	if e == nil {
		return
	}
	if f := e.from[addr]; f != nil {
		e.total = max(0, e.total-f.count)
		delete(e.from, addr)
	}
	if len(e.from) == 0 {
		delete(l.emails, email)
	}
}

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

func (l *attemptLimiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, w := range l.windows {
		if !now.Before(w.until) {
			delete(l.windows, k)
		}
	}
	for k, e := range l.emails {
		for a, f := range e.from {
			if !now.Before(f.until) {
				delete(e.from, a)
			}
		}
		if len(e.from) == 0 {
			delete(l.emails, k)
		}
	}
}

// clientIP is the address a request came from: the connection's peer,
// unless the peer is a trusted proxy, in which case X-Forwarded-For is
// read from the right (the entries the proxies appended) and the first
// address that is not itself a trusted proxy is the client. Entries left
// of it were written by the client and prove nothing.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		peer = host
	}
	isTrusted := func(s string) bool {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return false
		}
		addr = addr.Unmap()
		for _, p := range trusted {
			if p.Contains(addr) {
				return true
			}
		}
		return false
	}
	if len(trusted) == 0 || !isTrusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			break // garbage: trust nothing further left
		}
		if !isTrusted(hop) {
			return hop
		}
	}
	return peer
}

// ParseTrustedProxies reads TRUSTED_PROXIES: comma-separated CIDR prefixes
// or single addresses.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("TRUSTED_PROXIES: %q is neither an address nor a CIDR prefix", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// ParseLoginLimits reads LOGIN_LIMITS, e.g. "PER_EMAIL=10/15m,PER_IP=60/1m"
// (attempts per window); parts left out take DefaultLoginLimits.
func ParseLoginLimits(s string) (LoginLimits, error) {
	var l LoginLimits
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		ns, ws, _ := strings.Cut(v, "/")
		n, err1 := strconv.Atoi(strings.TrimSpace(ns))
		w, err2 := time.ParseDuration(strings.TrimSpace(ws))
		if err1 != nil || err2 != nil || n < 1 || w <= 0 {
			return l, fmt.Errorf("LOGIN_LIMITS: %q is not PER_EMAIL=n/window or PER_IP=n/window (e.g. PER_IP=60/1m)", part)
		}
		switch strings.ToUpper(strings.TrimSpace(k)) {
		case "PER_EMAIL":
			l.PerEmail, l.EmailWindow = n, w
		case "PER_IP":
			l.PerIP, l.IPWindow = n, w
		default:
			return l, fmt.Errorf("LOGIN_LIMITS: unknown limit %q (PER_EMAIL or PER_IP)", k)
		}
	}
	return l, nil
}

func loginRefused(w http.ResponseWriter, now, until time.Time, what string) error {
	retry := int64(math.Ceil(until.Sub(now).Seconds()))
	if retry < 1 {
		retry = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
	return &eventstore.Error{Kind: eventstore.KindRateLimited, Code: "RATE_LIMITED",
		Message: fmt.Sprintf("too many login attempts %s; retry after %d s", what, retry)}
}

// admitLoginFrom counts a login attempt from r's client address, or
// refuses it (429 RATE_LIMITED with Retry-After).
func (a *KeyAuth) admitLoginFrom(w http.ResponseWriter, r *http.Request) error {
	now := a.cfg.Now()
	addr := clientIP(r, a.cfg.Login.TrustedProxies)
	until, ok := a.logins.take("ip:"+addr, a.cfg.Login.PerIP, a.cfg.Login.IPWindow, now)
	if ok {
		until, ok = a.sharedAttempt(r.Context(), loginIPKey(addr), a.cfg.Login.PerIP, a.cfg.Login.IPWindow, now)
	}
	if !ok {
		return loginRefused(w, now, until, "from this address")
	}
	return nil
}

// admitLoginAs counts a login attempt for email from r's client address,
// or refuses it. The attempt counts as a failure until loginSucceeded
// clears it, so concurrent guesses cannot overshoot the limit.
func (a *KeyAuth) admitLoginAs(w http.ResponseWriter, r *http.Request, email string) error {
	now := a.cfg.Now()
	email, addr := ledger.NormalizeEmail(email), clientIP(r, a.cfg.Login.TrustedProxies)
	until, ok := a.logins.takeLogin(email, addr, a.cfg.Login, now)
	if ok {
		until, ok = a.sharedAttempt(r.Context(), loginAccountKey(email, addr), a.cfg.Login.PerEmail, a.cfg.Login.EmailWindow, now)
	}
	if !ok {
		return loginRefused(w, now, until, "for this account from this address")
	}
	return nil
}

// loginSucceeded clears the failed attempts on email from r's client
// address.
func (a *KeyAuth) loginSucceeded(r *http.Request, email string) {
	email, addr := ledger.NormalizeEmail(email), clientIP(r, a.cfg.Login.TrustedProxies)
	a.logins.loginOK(email, addr)
	a.clearSharedAttempts(r.Context(), loginAccountKey(email, addr))
}
