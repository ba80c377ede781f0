package httpapi

import (
	"context"
	"time"
)

// Login limits across processes. The rules of LoginLimits are applied in
// process memory first (attemptLimiter), so a flood is refused without a
// query; an attempt they admit is then counted in login_attempts, shared
// by every ledgerd, in the same kind of window (opened at the key's first
// attempt), so N processes admit no more than one would: PerIP attempts
// per client address and PerEmail failures per account and address. The
// account-wide slow-down of LoginLimits.PerEmail (an address that failed
// recently may retry only every EmailWindow/PerEmail once the account
// drew PerEmail failures) stays per process: its bound across N processes
// is N times that pace, still far below a guessing rate.
//
// One statement per admitted attempt is affordable where it would not be
// for partner requests: each admitted attempt goes on to a bcrypt check
// that costs a hundred times more.

// sharedAttempt counts an attempt on key against limit per window, or
// refuses it and says until when. If PostgreSQL does not answer, the
// in-process decision already taken stands (a login needs PostgreSQL to
// succeed anyway).
func (a *KeyAuth) sharedAttempt(ctx context.Context, key string, limit int, per time.Duration, now time.Time) (time.Time, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var until time.Time
	var refused bool
	err := a.cfg.Bookkeeping.QueryRow(ctx, `
INSERT INTO login_attempts AS a (key, until, count) VALUES ($1, $2::timestamptz + $3::interval, 1)
ON CONFLICT (key) DO UPDATE SET
    count   = CASE WHEN a.until <= $2 THEN 1 WHEN a.count < $4 THEN a.count + 1 ELSE a.count END,
    until   = CASE WHEN a.until <= $2 THEN $2::timestamptz + $3::interval ELSE a.until END,
    refused = a.until > $2 AND a.count >= $4
RETURNING until, refused`, key, now, per, limit).Scan(&until, &refused)
	if err != nil {
		if ctx.Err() == nil {
			a.cfg.Logger.Warn("login limit: the shared count is unreachable; counting in this process alone", "err", err)
		}
		return time.Time{}, true
	}
	return until, !refused
}

// clearSharedAttempts forgets key's attempts (a successful login clears
// its address's failures on the account).
func (a *KeyAuth) clearSharedAttempts(ctx context.Context, key string) {
	if _, err := a.cfg.Bookkeeping.Exec(ctx, `DELETE FROM login_attempts WHERE key = $1`, key); err != nil && ctx.Err() == nil {
		a.cfg.Logger.Warn("login limit: clearing the shared count failed", "err", err)
	}
}

// pruneLoginAttempts deletes windows that have ended.
func (a *KeyAuth) pruneLoginAttempts(ctx context.Context) {
	if _, err := a.cfg.Bookkeeping.Exec(ctx, `DELETE FROM login_attempts WHERE until < $1`, a.cfg.Now()); err != nil && ctx.Err() == nil {
		a.cfg.Logger.Warn("login limit: pruning the shared count failed", "err", err)
	}
}

func loginIPKey(addr string) string             { return "ip:" + addr }
func loginAccountKey(email, addr string) string { return "email:" + email + " " + addr }
