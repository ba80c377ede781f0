package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// AuthDB is what the authenticator needs from PostgreSQL (a pgxpool.Pool).
type AuthDB interface {
	eventstore.Querier
	projections.Execer
}

// DefaultRateLimits are requests per minute per partner by tier, used for
// tiers RATE_LIMITS does not set.
var DefaultRateLimits = map[string]int{
	ledger.TierStandard:     600,
	ledger.TierProfessional: 3000,
	ledger.TierEnterprise:   10000,
}

// KeyAuthConfig configures KeyAuth.
type KeyAuthConfig struct {
	DB        AuthDB
	MasterKey []byte
	JWTSecret []byte
	// Bookkeeping, if set, takes the replay-guard and lastUsedAt writes
	// (and the accounts-revision read that shares the claim statement): a
	// pool whose sessions commit asynchronously, so a request does not wait
	// for an fsync of its own signature. A database crash can forget the
	// last fraction of a second of signatures; every token movement is
	// still fully durable. Nil uses DB.
	Bookkeeping AuthDB
	// RateLimits are requests per minute per partner by tier; missing tiers
	// take DefaultRateLimits.
	RateLimits map[string]int
	// Login bounds password login attempts per email and per client
	// address; zero fields take DefaultLoginLimits.
	Login LoginLimits
	// TokenTTL is the lifetime of portal tokens (default 12 h).
	TokenTTL time.Duration
	// Now is the clock (default time.Now); tests pin it.
	Now    func() time.Time
	Logger *slog.Logger
}

// KeyAuth is the Authenticator of the partner API: portal JWTs, widget
// publishable keys and HMAC-signed key requests (CONTRACT §2), with
// per-partner rate limits (CONTRACT §3).
//
// Keys are served from process memory, and exactly: a deactivation,
// expiry, revocation or partner suspension committed by any process takes
// effect from the next request on. The cache is a fold of the key events
// of the event store, and every key request learns the accounts revision
// (the position of the last key event) in the same statement that claims
// its signature; a request that sees a revision newer than the cache
// brings the cache up to it before it is authorised. A refusal from the
// cache is confirmed the same way, so a key re-activated elsewhere works
// at once too. Expiry is checked against the clock on every request.
//
// Replay refusal uses the shared seen_signatures table, so it holds across
// processes; the claims of concurrent requests share one statement. Rate
// limits hold across processes too, without a round trip per request: each
// process leases slices of a partner's minute from a shared counter
// (ratelimit.go), so N processes admit at most the limit.
type KeyAuth struct {
	cfg     KeyAuthConfig
	limiter *rateLimiter
	logins  *attemptLimiter
	keys    *keyCache
	claims  *claimBatcher

	usedMu sync.Mutex
	used   map[string]time.Time
}

// NewKeyAuth builds the authenticator. Call Run to flush lastUsedAt and
// prune old signatures.
func NewKeyAuth(cfg KeyAuthConfig) *KeyAuth {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 12 * time.Hour
	}
	if cfg.Bookkeeping == nil {
		cfg.Bookkeeping = cfg.DB
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	limits := map[string]int{}
	for k, v := range DefaultRateLimits {
		limits[k] = v
	}
	for k, v := range cfg.RateLimits {
		limits[k] = v
	}
	cfg.RateLimits = limits
	cfg.Login = cfg.Login.withDefaults()
	return &KeyAuth{cfg: cfg, limiter: newRateLimiter(cfg.Bookkeeping, cfg.Logger), logins: newAttemptLimiter(), used: map[string]time.Time{},
		keys: newKeyCache(cfg.DB, cfg.MasterKey), claims: newClaimBatcher(cfg.Bookkeeping)}
}

// ParseRateLimits reads "STANDARD=60,PROFESSIONAL=300,ENTERPRISE=1000"
// (requests per minute).
func ParseRateLimits(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		k = strings.ToUpper(strings.TrimSpace(k))
		if !ok || err != nil || n < 1 || !ledger.ValidTier(k) {
			return nil, fmt.Errorf("RATE_LIMITS: %q is not TIER=requests-per-minute with TIER one of STANDARD, PROFESSIONAL, ENTERPRISE", part)
		}
		out[k] = n
	}
	return out, nil
}

// Run flushes lastUsedAt every few seconds and prunes expired signatures
// every minute, until ctx ends (then flushes once more).
func (a *KeyAuth) Run(ctx context.Context) {
	flush := time.NewTicker(3 * time.Second)
	prune := time.NewTicker(time.Minute)
	defer flush.Stop()
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			a.FlushUsage(fctx)
			cancel()
			return
		case <-flush.C:
			a.FlushUsage(ctx)
		case <-prune.C:
			if _, err := projections.PruneSignatures(ctx, a.cfg.Bookkeeping, a.cfg.Now().Add(-time.Minute)); err != nil && ctx.Err() == nil {
				a.cfg.Logger.Warn("pruning seen signatures failed", "err", err)
			}
			a.limiter.prune(ctx, a.cfg.Now())
			a.logins.prune(a.cfg.Now())
			a.pruneLoginAttempts(ctx)
		}
	}
}

// FlushUsage writes the lastUsedAt times gathered since the last flush.
func (a *KeyAuth) FlushUsage(ctx context.Context) {
	a.usedMu.Lock()
	batch := a.used
	a.used = map[string]time.Time{}
	a.usedMu.Unlock()
	if err := projections.TouchKeys(ctx, a.cfg.Bookkeeping, batch); err != nil {
		a.cfg.Logger.Warn("recording key lastUsedAt failed", "err", err, "keys", len(batch))
		a.usedMu.Lock()
		for k, v := range batch {
			if cur, ok := a.used[k]; !ok || v.After(cur) {
				a.used[k] = v
			}
		}
		a.usedMu.Unlock()
	}
}

func (a *KeyAuth) markUsed(keyID string, at time.Time) {
	a.usedMu.Lock()
	a.used[keyID] = at
	a.usedMu.Unlock()
}

// Authenticate implements Authenticator.
func (a *KeyAuth) Authenticate(w http.ResponseWriter, r *http.Request, kind AuthKind) (*Principal, error) {
	var p *Principal
	var k *keyRequest
	var err error
	switch kind {
	case AuthJWT:
		p, err = a.authJWT(r)
	case AuthWidget:
		p, k, err = a.authWidget(r)
	case AuthHMAC, AuthHMACSecret:
		p, k, err = a.authHMAC(r, kind == AuthHMACSecret)
	case AuthLogin:
		return &Principal{}, nil
	default:
		return nil, fmt.Errorf("httpapi: unknown auth kind %q", kind)
	}
	if err != nil {
		return nil, err
	}
	return a.admit(w, r, p, k)
}

// admit rate limits an authenticated request and, for a key request,
// claims its signature and confirms the key's standing as of the accounts
// revision the claim returned.
func (a *KeyAuth) admit(w http.ResponseWriter, r *http.Request, p *Principal, k *keyRequest) (*Principal, error) {
	bucket := p.PartnerID
	if bucket == "" {
		bucket = "user:" + p.UserID
	}
	now := a.cfg.Now()
	limit, err := a.rateLimit(r.Context(), w, bucket, p.Tier, now)
	if err != nil && k != nil {
		// The cached tier may be behind a tier change committed
		// elsewhere: confirm it before refusing (without claiming).
		if tier, terr := a.currentTier(r.Context(), k); terr != nil {
			return nil, terr
		} else if tier != p.Tier {
			p.Tier = tier
			limit, err = a.rateLimit(r.Context(), w, bucket, p.Tier, now)
		}
	}
	if err != nil {
		// The signature is not claimed: a request refused with 429 can be
		// sent again, unchanged, after Retry-After (CONTRACT §3).
		return nil, err
	}
	if k == nil {
		return p, nil
	}
	// One statement claims the signature (if any) and reads the accounts
	// revision: the key's standing is then checked as of that revision.
	fresh, rev, err := a.claims.claim(r.Context(), k.sig, k.until)
	if err != nil {
		return nil, err
	}
	if k.sig != "" && !fresh {
		// A replay is refused before it reaches the handler; it does
		// not spend the partner's allowance.
		remaining := a.limiter.give(bucket, limit, now)
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
		return nil, errReplayed
	}
	if k.judgedAt < rev {
		// A key event was committed (here or in another process) after
		// the state the key was judged on: fold it in and judge again.
		if err := a.keys.ensure(r.Context(), rev); err != nil {
			return nil, err
		}
		cur, ok, _ := a.keys.lookup(k.key, k.secret)
		if err := a.refusal(&cur, ok, k.env, a.cfg.Now()); err != nil {
			remaining := a.limiter.give(bucket, limit, now)
			w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
			return nil, err
		}
		if cur.tier != p.Tier {
			// Admitted under the tier the request arrived with, as if the
			// change had committed a moment later; it answers with the
			// new one.
			p.Tier = cur.tier
			limit = a.limitOf(p.Tier)
			w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit))
			w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(a.limiter.remaining(bucket, limit, now)))
		}
	}
	a.markUsed(p.KeyID, now)
	return p, nil
}

// keyRequest is a key request checked against the cache but not yet
// against the current accounts revision, with its HMAC signature (if any)
// verified but not yet recorded as used: Authenticate does both in one
// statement, once the request is admitted by the rate limit.
type keyRequest struct {
	key      string
	secret   bool
	env      string
	judgedAt int64  // the cache revision the key was judged at
	sig      string // empty for widget requests
	until    time.Time
}

// currentTier is k's partner's tier as of the current accounts revision.
func (a *KeyAuth) currentTier(ctx context.Context, k *keyRequest) (string, error) {
	rev, err := a.claims.revision(ctx)
	if err != nil {
		return "", err
	}
	if err := a.keys.ensure(ctx, rev); err != nil {
		return "", err
	}
	cur, _, _ := a.keys.lookup(k.key, k.secret)
	return cur.tier, nil
}

// limitOf is the per-minute request limit of tier.
func (a *KeyAuth) limitOf(tier string) int {
	limit := a.cfg.RateLimits[tier]
	if limit == 0 {
		limit = a.cfg.RateLimits[ledger.TierStandard]
	}
	return limit
}

// rateLimit spends one request of bucket's per-minute allowance, setting
// the X-RateLimit headers; it returns the limit applied.
func (a *KeyAuth) rateLimit(ctx context.Context, w http.ResponseWriter, bucket, tier string, now time.Time) (int, error) {
	limit := a.limitOf(tier)
	remaining, reset, ok := a.limiter.take(ctx, bucket, limit, now)
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
	if !ok {
		retry := reset - now.Unix()
		if retry < 1 {
			retry = 1
		}
		h.Set("Retry-After", strconv.FormatInt(retry, 10))
		return limit, &eventstore.Error{Kind: eventstore.KindRateLimited, Code: "RATE_LIMITED",
			Message: fmt.Sprintf("rate limit of %d requests per minute reached; retry after %d s", limit, retry)}
	}
	return limit, nil
}

// keyEnvironment returns the environment and kind of a well-formed key.
func keyEnvironment(key string) (env string, secret, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(key, "pk_test_"):
		env, rest = ledger.EnvSandbox, key[8:]
	case strings.HasPrefix(key, "sk_test_"):
		env, secret, rest = ledger.EnvSandbox, true, key[8:]
	case strings.HasPrefix(key, "pk_live_"):
		env, rest = ledger.EnvProduction, key[8:]
	case strings.HasPrefix(key, "sk_live_"):
		env, secret, rest = ledger.EnvProduction, true, key[8:]
	default:
		return "", false, false
	}
	if len(rest) != 64 {
		return "", false, false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false, false
		}
	}
	return env, secret, true
}

// refusal is why k may not authenticate a request for env at now (nil:
// it may): unknown, inactive, expired or revoked key, suspended or (for
// production) unapproved partner.
func (a *KeyAuth) refusal(k *authKey, found bool, env string, now time.Time) error {
	switch {
	case !found || k.env != env || !k.usable(now):
		return errInvalidKey
	case k.partnerStatus == ledger.PartnerSuspended:
		return errSuspended
	case k.env == ledger.EnvProduction && k.partnerStatus != ledger.PartnerActive:
		return errNotApproved
	}
	return nil
}

// lookupKey finds a key in the cache and checks its standing. A refusal is
// confirmed against the current accounts revision before it stands: the
// cache may not yet know of a key created, re-activated or approved by
// another process. (An acceptance is confirmed by Authenticate.) A
// signature check, when there is one, runs between the two steps, so a
// bad signature is reported as such whatever the key's standing.
func (a *KeyAuth) lookupKey(ctx context.Context, key string, verify func(*authKey) error) (*keyRequest, *authKey, error) {
	env, secret, ok := keyEnvironment(key)
	if !ok {
		return nil, nil, errInvalidKey
	}
	if a.keys.revision() < 0 {
		if err := a.keys.ensure(ctx, 0); err != nil {
			return nil, nil, err
		}
	}
	var judgedAt int64
	judge := func() (*authKey, error) {
		k, found, at := a.keys.lookup(key, secret)
		judgedAt = at
		if found && k.env == env {
			// From here on, refusals (expired key, bad signature, replay,
			// rate limit…) count in the key's tenant's API usage.
			noteTenant(ctx, k.partnerID, env)
		}
		if !found || k.env != env || !k.usable(a.cfg.Now()) {
			return nil, errInvalidKey
		}
		if verify != nil {
			if err := verify(&k); err != nil {
				return nil, err
			}
		}
		return &k, a.refusal(&k, true, env, a.cfg.Now())
	}
	k, err := judge()
	if err == errInvalidKey || err == errSuspended || err == errNotApproved {
		rev, rerr := a.claims.revision(ctx)
		if rerr != nil {
			return nil, nil, rerr
		}
		if judgedAt >= rev {
			return nil, nil, err // judged on current state: the refusal stands
		}
		if err := a.keys.ensure(ctx, rev); err != nil {
			return nil, nil, err
		}
		k, err = judge()
	}
	if err != nil {
		return nil, nil, err
	}
	return &keyRequest{key: key, secret: secret, env: env, judgedAt: judgedAt}, k, nil
}

func (a *KeyAuth) authWidget(r *http.Request) (*Principal, *keyRequest, error) {
	key := r.Header.Get("X-Partner-Key")
	if key == "" {
		return nil, nil, errMissingCredentials
	}
	if strings.HasPrefix(key, "sk_") {
		return nil, nil, errPublishableNeeded
	}
	kr, k, err := a.lookupKey(r.Context(), key, nil)
	if err != nil {
		return nil, nil, err
	}
	return &Principal{PartnerID: k.partnerID, Environment: kr.env, KeyID: k.keyID, Tier: k.tier}, kr, nil
}

// authHMAC verifies a signed request. The signature is returned in a
// keyRequest for Authenticate to record once the request is admitted.
func (a *KeyAuth) authHMAC(r *http.Request, needSecret bool) (*Principal, *keyRequest, error) {
	key, ts, sig := r.Header.Get("X-Partner-Key"), r.Header.Get("X-Timestamp"), r.Header.Get("X-Signature")
	if key == "" || ts == "" || sig == "" {
		return nil, nil, errMissingCredentials
	}
	body, err := bufferBody(r)
	if err != nil {
		return nil, nil, err
	}
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		uri = r.URL.RequestURI()
	}
	var tsv int64
	_, secret, _ := keyEnvironment(key)
	verify := func(k *authKey) error {
		if k.openErr != nil {
			return k.openErr
		}
		var err error
		if tsv, err = verifySignature(ts, sig, r.Method, uri, body, k.hmacSecret, a.cfg.Now()); err != nil {
			return err
		}
		if needSecret && !secret {
			return errSecretRequired
		}
		return nil
	}
	kr, k, err := a.lookupKey(r.Context(), key, verify)
	if err != nil {
		return nil, nil, err
	}
	// The signature stays refused until its timestamp leaves the window
	// (plus a minute for clock differences between processes).
	kr.sig, kr.until = sig, claimUntil(tsv)
	return &Principal{PartnerID: k.partnerID, Environment: kr.env, KeyID: k.keyID, SecretKey: kr.secret, Tier: k.tier}, kr, nil
}

// bufferBody reads the whole body (bounded) so it can be hashed, and puts
// it back for the handler.
func bufferBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if bb, ok := r.Body.(*bufferedBody); ok {
		// The signature covers the body as sent, all of it, whatever a
		// reader has taken since; authentication runs before any reader.
		return bb.b, nil
	}
	b, err := readWhole(r)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	r.Body = &bufferedBody{b: b}
	return b, nil
}

type portalClaims struct {
	jwt.RegisteredClaims
}

const tokenIssuer = "sirgiving-ledger"

// IssueToken signs a portal access token for userID; it returns the token
// and its expiry.
func (a *KeyAuth) IssueToken(userID string) (string, time.Time, error) {
	now := a.cfg.Now()
	exp := now.Add(a.cfg.TokenTTL).Truncate(time.Second)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, portalClaims{jwt.RegisteredClaims{
		Issuer: tokenIssuer, Subject: userID,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	}})
	s, err := tok.SignedString(a.cfg.JWTSecret)
	return s, exp.UTC(), err
}

func (a *KeyAuth) authJWT(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errMissingCredentials
	}
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, errInvalidToken
	}
	var claims portalClaims
	_, err := jwt.ParseWithClaims(strings.TrimSpace(raw), &claims, func(*jwt.Token) (any, error) { return a.cfg.JWTSecret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuer), jwt.WithTimeFunc(a.cfg.Now))
	if err != nil || claims.Subject == "" {
		return nil, errInvalidToken
	}
	u, err := projections.UserByID(r.Context(), a.cfg.DB, claims.Subject)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, errInvalidToken
	}
	p := &Principal{UserID: u.UserID, PartnerID: u.PartnerID, Tier: ledger.TierStandard}
	if u.PartnerID != "" {
		pr, err := projections.PartnerByID(r.Context(), a.cfg.DB, u.PartnerID)
		if err != nil {
			return nil, err
		}
		if pr != nil {
			p.Tier = pr.Tier
		}
	}
	return p, nil
}
