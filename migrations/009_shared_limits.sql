-- Limits that hold across every ledgerd process. Like seen_signatures, this
-- is operational data, not derived from events and not part of the ledger:
-- the tables are UNLOGGED (no WAL, no fsync on the request path), so a
-- database crash empties them, which at worst gives every partner a fresh
-- window once.

-- rate_limit_windows is the shared count of one partner's requests in one
-- fixed minute. Processes do not add one per request: each leases a slice
-- of the allowance (granted) and spends it from memory, so a request pays a
-- round trip only when its process's slice is used up (httpapi ratelimit.go).
CREATE UNLOGGED TABLE rate_limit_windows (
    bucket       text    NOT NULL,
    window_start bigint  NOT NULL, -- Unix second the minute began
    used         integer NOT NULL, -- slots leased by all processes
    granted      integer NOT NULL, -- the slots the latest lease got
    PRIMARY KEY (bucket, window_start)
);

-- login_attempts counts password login attempts per key (a client address,
-- or an account and a client address) in a window that opens at the key's
-- first attempt. Logins are checked here one statement per attempt: each
-- admitted attempt costs a bcrypt check anyway, which dwarfs it.
CREATE UNLOGGED TABLE login_attempts (
    key     text        PRIMARY KEY,
    until   timestamptz NOT NULL,
    count   integer     NOT NULL,
    refused boolean     NOT NULL DEFAULT false -- the latest attempt was over the limit
);
CREATE INDEX login_attempts_until_idx ON login_attempts (until);
