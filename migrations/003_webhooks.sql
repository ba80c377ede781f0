-- Webhook delivery log. These tables live outside every projection schema
-- on purpose: a projection rebuild drops and replaces proj_webhooks, and
-- must neither lose this log nor create deliveries again (the fan-out only
-- inserts here when it is not replaying, and the unique key makes a
-- redelivered event a no-op).

CREATE TABLE webhook_deliveries (
    id               text        PRIMARY KEY,             -- whd_…
    subscription_id  text        NOT NULL,                -- wh_…
    partner_id       text        NOT NULL,
    environment      text        NOT NULL,
    event_id         text        NOT NULL,                -- evt_…, the envelope id
    event_type       text        NOT NULL,                -- webhook type
    source_position  bigint      NOT NULL,                -- event store position it came from
    body             bytea       NOT NULL,                -- exact envelope bytes, signed per attempt
    status           text        NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    attempts         integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,                -- source event's recorded_at
    enqueued_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    next_attempt_at  timestamptz NOT NULL,
    lease_until      timestamptz,                         -- claimed by a dispatcher until then
    lease_token      uuid,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    completed_at     timestamptz,
    UNIQUE (subscription_id, event_id)
);
-- When the next unleased delivery is due (the dispatcher's sleep). Leased
-- rows are left out so that the claim below cannot mistake this index for
-- a way to find one subscription's due deliveries.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING' AND lease_until IS NULL;
-- The dispatcher's claim walks the subscriptions with pending deliveries
-- (a skip scan of this index) and takes the first few due of each, so its
-- cost follows the number of subscriptions and the batch size, not the
-- backlog.
CREATE INDEX webhook_deliveries_sub_due_idx ON webhook_deliveries (subscription_id, next_attempt_at, id) WHERE status = 'PENDING';
-- Deliveries leased right now, counted per subscription against its
-- concurrency cap.
CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (subscription_id, lease_until) WHERE status = 'PENDING' AND lease_until IS NOT NULL;
CREATE INDEX webhook_deliveries_sub_idx ON webhook_deliveries (subscription_id, source_position DESC);

CREATE TABLE webhook_attempts (
    delivery_id     text        NOT NULL REFERENCES webhook_deliveries (id),
    attempt         integer     NOT NULL,
    subscription_id text        NOT NULL,
    partner_id      text        NOT NULL,
    environment     text        NOT NULL,
    attempted_at    timestamptz NOT NULL,
    success         boolean     NOT NULL,
    status_code     integer,
    latency_ms      integer     NOT NULL,
    reason          text,                                 -- failure class: timeout, http_5xx, …
    error           text,
    response_body   text,                                 -- first 1 KiB
    PRIMARY KEY (delivery_id, attempt)
);
CREATE INDEX webhook_attempts_tenant_idx ON webhook_attempts (partner_id, environment, attempted_at);

-- Per-endpoint health, for disabling endpoints that fail for days.
CREATE TABLE webhook_endpoints (
    subscription_id text        PRIMARY KEY,
    partner_id      text        NOT NULL,
    environment     text        NOT NULL,
    last_success_at timestamptz,
    failing_since   timestamptz,                          -- first failure since the last success
    disabled_at     timestamptz
);
