-- Request-authentication bookkeeping. These tables are not read models:
-- they are not derived from events, so a projection rebuild leaves them be.

-- seen_signatures makes HMAC replay refusal hold across every ledgerd
-- process: the first INSERT of a signature wins, any later one inserts
-- nothing. Rows are pruned once past expires_at (the end of the window in
-- which the signed timestamp is still accepted).
CREATE TABLE seen_signatures (
    signature  text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX seen_signatures_expires_idx ON seen_signatures (expires_at);

-- api_key_usage keeps lastUsedAt per key, written in batches every few
-- seconds rather than once per request.
CREATE TABLE api_key_usage (
    key_id       text        PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);
