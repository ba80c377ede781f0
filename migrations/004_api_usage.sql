-- API usage counters. Operational data, like the replay guard: not derived
-- from events, so no projection rebuild touches it. Each process counts
-- authenticated requests in memory and adds its counts here every few
-- seconds (one upsert per flush, never a write per request).
--
-- One row per tenant, UTC clock hour, route template, status and error
-- code. latency_buckets is a fixed-bucket histogram of the rows' request
-- latencies (bucket bounds are defined in Go: apiusage.LatencyBoundsMs);
-- percentiles are estimated from the summed buckets.
CREATE TABLE api_usage (
    partner_id      text        NOT NULL,
    environment     text        NOT NULL,
    hour            timestamptz NOT NULL,   -- start of the UTC hour
    route           text        NOT NULL,   -- e.g. "POST /v1/partner/actions/submit"
    status          smallint    NOT NULL,
    code            text        NOT NULL DEFAULT '',  -- error code of non-2xx answers
    requests        bigint      NOT NULL,
    latency_buckets bigint[]    NOT NULL,
    last_at         timestamptz NOT NULL,   -- latest request counted in the row
    PRIMARY KEY (partner_id, environment, hour, route, status, code)
);
-- Pruning by age across tenants.
CREATE INDEX api_usage_hour_idx ON api_usage (hour);
