-- The event store: the only source of truth. Everything else in the database
-- is a read model that can be dropped and rebuilt from this table.

-- event_head is the single row every append locks. Holding it while
-- positions are assigned and until COMMIT is what makes positions gap-free
-- in commit order (no late-committing lower position can ever appear), and
-- it carries the tip of the hash chain.
CREATE TABLE event_head (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    position bigint  NOT NULL,
    hash     bytea   NOT NULL
);
INSERT INTO event_head (id, position, hash) VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE events (
    position       bigint      PRIMARY KEY,
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL CHECK (stream_version > 0),
    event_id       uuid        NOT NULL UNIQUE,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version > 0),
    partner_id     text        NOT NULL,
    environment    text        NOT NULL,
    -- json, not jsonb: the hash covers the exact bytes, and jsonb would
    -- re-order keys and break verification.
    payload        json        NOT NULL,
    metadata       json        NOT NULL,
    recorded_at    timestamptz NOT NULL,
    prev_hash      bytea       NOT NULL,
    hash           bytea       NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_tenant_position_idx ON events (partner_id, environment, position);
CREATE INDEX events_type_position_idx ON events (event_type, position);

-- Events are immutable: the database itself refuses edits, deletes and
-- truncation, whatever the application does.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- relay_checkpoints records how far each relay has published to JetStream.
CREATE TABLE relay_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- projection_checkpoints records, per read model, the last event position
-- applied. It is written in the same transaction as the read model.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    version    integer     NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
