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

-- append_events appends one group commit in a single statement, so the
-- committer pays one round trip (and one fsync) per group. It refuses, by
-- raising serialization_failure, when the head is not where the caller
-- decided against: another process appended meanwhile, and the caller
-- must re-decide with fresh state.
CREATE FUNCTION append_events(
    expected_head   bigint,
    p_position      bigint[],
    p_stream_id     text[],
    p_stream_version bigint[],
    p_event_id      uuid[],
    p_event_type    text[],
    p_schema_version integer[],
    p_partner_id    text[],
    p_environment   text[],
    p_payload       text[],
    p_metadata      text[],
    p_recorded_at   timestamptz[],
    p_prev_hash     bytea[],
    p_hash          bytea[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    current_head bigint;
    n integer := coalesce(array_length(p_position, 1), 0);
BEGIN
    SELECT position INTO current_head FROM event_head FOR UPDATE;
    IF current_head <> expected_head THEN
        RAISE EXCEPTION 'event head moved: expected %, found %', expected_head, current_head
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF n = 0 THEN
        RETURN current_head;
    END IF;
    INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version,
                        partner_id, environment, payload, metadata, recorded_at, prev_hash, hash)
    SELECT u.pos, u.sid, u.ver, u.eid, u.typ, u.sv, u.pid, u.env, u.pl::json, u.md::json, u.rec, u.ph, u.h
    FROM unnest(p_position, p_stream_id, p_stream_version, p_event_id, p_event_type, p_schema_version,
                p_partner_id, p_environment, p_payload, p_metadata, p_recorded_at, p_prev_hash, p_hash)
         AS u(pos, sid, ver, eid, typ, sv, pid, env, pl, md, rec, ph, h);
    UPDATE event_head SET position = p_position[n], hash = p_hash[n];
    PERFORM pg_notify('ledger_events', p_position[n]::text);
    RETURN p_position[n];
END;
$$;
