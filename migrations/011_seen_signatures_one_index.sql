-- seen_signatures kept two indexes: the signature (the replay guard) and
-- expires_at (the pruning). Every signed request paid for both, at a random
-- place in each. One key, (expires_at, signature), does both jobs:
--
--   - a replay is the same signed request again, so the same timestamp and
--     the same expires_at (X-Timestamp + the window + a minute, as every
--     version of ledgerd computes it): the insert conflicts exactly as it
--     did on the signature alone. The same signature under another
--     timestamp cannot be presented, because the signature covers the
--     timestamp;
--   - pruning deletes a range at the key's low end;
--   - new claims land at its high end, on the few pages the last seconds
--     filled, instead of anywhere in the index.
--
-- The claim statement names no conflict target (ON CONFLICT DO NOTHING),
-- so processes still running the previous version keep working against
-- this table during a rolling upgrade.
ALTER TABLE seen_signatures DROP CONSTRAINT seen_signatures_pkey;
DROP INDEX seen_signatures_expires_idx;
ALTER TABLE seen_signatures ADD PRIMARY KEY (expires_at, signature);
