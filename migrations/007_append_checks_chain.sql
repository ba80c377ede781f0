-- append_events now also refuses a batch that does not extend the chain
-- exactly (a gap in positions, or a prev_hash that is not the hash before
-- it), so the database itself guarantees a gap-free, linked log whatever
-- the writer does. Same signature; only the body changes.
CREATE OR REPLACE FUNCTION append_events(
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
    current_hash bytea;
    n integer := coalesce(array_length(p_position, 1), 0);
BEGIN
    SELECT position, hash INTO current_head, current_hash FROM event_head FOR UPDATE;
    IF current_head <> expected_head THEN
        RAISE EXCEPTION 'event head moved: expected %, found %', expected_head, current_head
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF n = 0 THEN
        RETURN current_head;
    END IF;
    -- The batch must extend the chain exactly: positions head+1..head+n,
    -- each event's prev_hash the hash before it. The writer computes both;
    -- checking them here keeps a bug in any writer from leaving a gap or
    -- a broken link that only a later audit would find.
    IF p_prev_hash[1] IS DISTINCT FROM current_hash OR EXISTS (
        SELECT 1 FROM generate_subscripts(p_position, 1) AS i
        WHERE p_position[i] IS DISTINCT FROM current_head + i
           OR (i > 1 AND p_prev_hash[i] IS DISTINCT FROM p_hash[i - 1])
    ) THEN
        RAISE EXCEPTION 'append refused: the batch does not extend the hash chain at position %', current_head
            USING ERRCODE = 'data_exception';
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
