"""The PostgreSQL schema, its migrations, and the server-side append function.

Global order without a global lock (see ``docs/design/global-order.md``): every event's position
is ``(transaction id + offset) << 20 | n``, where the transaction id is ``pg_current_xact_id()``
of the appending transaction and ``n`` counts the events that transaction wrote. Readers of the
global log only return positions below ``(snapshot xmin + offset) << 20``: every transaction
with a lower id has ended, so no event can later appear below what a reader has seen. Writers
never wait for each other except on the same stream's row lock.

Migrations run under a transaction-scoped advisory lock: two processes starting at once apply
them one after the other, and the second finds nothing to do.
"""

from __future__ import annotations

from typing import Any

from cronica.errors import StoreError

SCHEMA_VERSION = 3

POSITION_SHIFT = 20
"""Low bits of a position that number the events within one transaction."""

_MIGRATIONS: dict[int, str] = {
    1: r"""
CREATE TABLE events (
    event_id       UUID PRIMARY KEY,
    aggregate_id   VARCHAR(255) NOT NULL,
    aggregate_type VARCHAR(100) NOT NULL,
    event_type     VARCHAR(100) NOT NULL,
    event_version  INT NOT NULL,
    event_data     JSONB NOT NULL,
    metadata       JSONB,
    timestamp      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    position       BIGINT NOT NULL,
    CONSTRAINT unique_version UNIQUE (aggregate_id, event_version),
    CONSTRAINT unique_position UNIQUE (position)
);
CREATE INDEX idx_aggregate ON events (aggregate_id, event_version);
CREATE INDEX idx_timestamp ON events (timestamp);

CREATE TABLE cronica_streams (
    aggregate_id   VARCHAR(255) PRIMARY KEY,
    aggregate_type VARCHAR(100) NOT NULL,
    version        INT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_streams_type ON cronica_streams (aggregate_type, aggregate_id COLLATE "C");

CREATE TABLE cronica_settings (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO cronica_settings VALUES ('position_xid_offset', 0);

CREATE FUNCTION cronica_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'cronica: events are append-only; % refused', TG_OP
        USING ERRCODE = 'CR001';
END
$fn$;
CREATE TRIGGER events_refuse_change BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION cronica_refuse_change();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION cronica_refuse_change();

-- The highest position a reader of the global log may see now, plus one. (These helpers are
-- PL/pgSQL, not SQL, functions: PL/pgSQL caches its plans, SQL functions plan every call.)
CREATE FUNCTION cronica_readable_bound() RETURNS BIGINT LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN (SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + value) << 20
              FROM cronica_settings WHERE name = 'position_xid_offset');
END
$fn$;

-- Reserve p_count positions in the calling transaction; returns the one before the first.
-- Positions are (transaction id + offset) << 20 plus 1, 2, ...; the count used so far lives in a
-- transaction-local setting, so several calls in one transaction never collide.
CREATE FUNCTION cronica_reserve_positions(p_count bigint) RETURNS BIGINT LANGUAGE plpgsql
VOLATILE AS $fn$
DECLARE
    v_base bigint;
    v_used bigint;
BEGIN
    SELECT (pg_current_xact_id()::text::bigint + value) << 20 INTO v_base
      FROM cronica_settings WHERE name = 'position_xid_offset';
    v_used := coalesce(nullif(current_setting('cronica.positions_used', true), ''), '0')::bigint;
    IF v_used + p_count >= (1 << 20) THEN
        RAISE EXCEPTION 'cronica: more than 1048575 events in one transaction'
            USING ERRCODE = 'CR002';
    END IF;
    PERFORM set_config('cronica.positions_used', (v_used + p_count)::text, true);
    RETURN v_base + v_used;
END
$fn$;

-- The request-by-request path of cronica_append, for batches where some event id is already
-- stored (retries, duplicates). The steps mirror cronica/store/_append_logic.py.
CREATE FUNCTION cronica_append_each(
    p_aggregate_ids text[], p_aggregate_types text[], p_expected bigint[], p_counts int[],
    p_event_ids uuid[], p_event_types text[], p_data text[], p_metadata text[],
    OUT status text, OUT from_version int, OUT to_version int, OUT last_position bigint,
    OUT actual_version int, OUT actual_type text, OUT detail_event_id uuid, OUT detail text)
RETURNS SETOF record LANGUAGE plpgsql AS $fn$
DECLARE
    v_base bigint;
    v_k int := 0;
    v_n int;
    v_id text;
    v_expected bigint;
    v_current int;
    v_type text;
    v_exists boolean;
    v_now timestamptz;
    v_found int;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_aggregate_ids, 1), 0) LOOP
        v_n := p_counts[i];
        v_id := p_aggregate_ids[i];
        v_expected := p_expected[i];
        status := NULL; from_version := NULL; to_version := NULL; last_position := NULL;
        actual_version := NULL; actual_type := NULL; detail_event_id := NULL; detail := NULL;

        -- 1. Idempotency: a stored event id makes this request a retry, or a duplicate.
        SELECT count(*) INTO v_found FROM events
         WHERE event_id = ANY (p_event_ids[v_k + 1 : v_k + v_n]);
        IF v_found > 0 THEN
            status := 'duplicate';
            IF v_found < v_n THEN
                SELECT e.event_id INTO detail_event_id FROM events e
                 WHERE e.event_id = ANY (p_event_ids[v_k + 1 : v_k + v_n]) LIMIT 1;
                detail := 'but other events of this append are new';
            ELSE
                SELECT e.event_version INTO from_version FROM events e
                 WHERE e.event_id = p_event_ids[v_k + 1];
                SELECT x.id,
                       CASE WHEN e.aggregate_id <> v_id
                                THEN 'in stream ' || quote_literal(e.aggregate_id)
                            WHEN e.event_version <> from_version + x.ord - 1
                                THEN 'but not in the order of this append'
                            ELSE 'with different content' END
                  INTO detail_event_id, detail
                  FROM unnest(p_event_ids[v_k + 1 : v_k + v_n]) WITH ORDINALITY AS x(id, ord)
                  JOIN events e ON e.event_id = x.id
                 WHERE e.aggregate_id <> v_id
                    OR e.event_version <> from_version + x.ord - 1
                    OR e.event_type <> p_event_types[v_k + x.ord]
                    OR e.event_data <> p_data[v_k + x.ord]::jsonb
                    OR e.metadata IS DISTINCT FROM p_metadata[v_k + x.ord]::jsonb
                 ORDER BY x.ord LIMIT 1;
                IF NOT FOUND THEN
                    status := 'ok';
                    SELECT e.event_version, e.position INTO to_version, last_position
                      FROM events e WHERE e.event_id = p_event_ids[v_k + v_n];
                ELSE
                    from_version := NULL;
                END IF;
            END IF;
            RETURN NEXT;
            v_k := v_k + v_n;
            CONTINUE;
        END IF;

        -- 2. The expectation, checked with the stream's row locked.
        v_now := NULL;
        SELECT s.version, s.aggregate_type INTO v_current, v_type
          FROM cronica_streams s WHERE s.aggregate_id = v_id FOR UPDATE;
        v_exists := FOUND;
        IF NOT v_exists AND v_expected IN (-1, -2, 0) THEN
            v_now := clock_timestamp();
            v_type := coalesce(p_aggregate_types[i], '');
            INSERT INTO cronica_streams VALUES (v_id, v_type, 0, v_now, v_now)
                ON CONFLICT (aggregate_id) DO NOTHING;
            IF FOUND THEN
                v_current := 0;
            ELSE  -- created meanwhile by another transaction, which has committed by now
                SELECT s.version, s.aggregate_type INTO v_current, v_type
                  FROM cronica_streams s WHERE s.aggregate_id = v_id FOR UPDATE;
                v_exists := true;
                v_now := NULL;
            END IF;
        END IF;
        IF NOT (v_expected = -1
                OR (v_expected = -2 AND NOT v_exists)
                OR (v_expected = -3 AND v_exists)
                OR (v_expected >= 0 AND v_expected = coalesce(v_current, 0))) THEN
            status := 'conflict';
            actual_version := CASE WHEN v_exists THEN v_current ELSE 0 END;
            RETURN NEXT;
            v_k := v_k + v_n;
            CONTINUE;
        END IF;
        IF v_exists AND p_aggregate_types[i] IS NOT NULL AND p_aggregate_types[i] <> v_type THEN
            status := 'type_mismatch';
            actual_type := v_type;
            RETURN NEXT;
            v_k := v_k + v_n;
            CONTINUE;
        END IF;

        -- 3. Write. The clock is read after the row lock, so a stream's timestamps never go back.
        IF v_now IS NULL THEN
            v_now := clock_timestamp();
        END IF;
        v_base := cronica_reserve_positions(v_n);
        INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, event_version,
                            event_data, metadata, timestamp, position)
        SELECT p_event_ids[v_k + g], v_id, v_type, p_event_types[v_k + g], v_current + g,
               p_data[v_k + g]::jsonb, p_metadata[v_k + g]::jsonb, v_now, v_base + g
          FROM generate_series(1, v_n) AS g;
        UPDATE cronica_streams SET version = v_current + v_n, updated_at = v_now
         WHERE aggregate_id = v_id;
        status := 'ok';
        from_version := v_current + 1;
        to_version := v_current + v_n;
        last_position := v_base + v_n;
        RETURN NEXT;
        v_k := v_k + v_n;
    END LOOP;
END
$fn$;
ALTER FUNCTION cronica_append_each SET plan_cache_mode = force_generic_plan;

-- Append a batch of requests in the calling transaction; one result row per request, in order.
-- Expected versions: -1 any, -2 no stream, -3 exists, n >= 0 exactly n. A failed request writes
-- nothing. Set-based: a handful of statements per batch, whatever its size.
-- Callers must:
-- * pass each stream and each event id at most once per call (the function itself takes its
--   row locks in aggregate-id order, so concurrent batches do not deadlock);
-- * give p_event_req, the (1-based) request of each event;
-- * re-run with cronica_append_each the requests answered 'stored' (they failed and one of
--   their event ids is already stored: a retry, decided by the idempotency rules), and the whole
--   batch when this call fails on the events_pkey (an accepted request reused a stored event id).
CREATE FUNCTION cronica_append(
    p_aggregate_ids text[], p_aggregate_types text[], p_expected bigint[], p_counts int[],
    p_event_req int[], p_event_ids uuid[], p_event_types text[], p_data text[],
    p_metadata text[],
    OUT status text, OUT from_version int, OUT to_version int, OUT last_position bigint,
    OUT actual_version int, OUT actual_type text, OUT detail_event_id uuid, OUT detail text)
RETURNS SETOF record LANGUAGE plpgsql AS $fn$
DECLARE
    v_base bigint;
    v_now timestamptz;
    h_ids text[];
    h_versions int[];
    h_types text[];
    h_existed boolean[];
BEGIN
    IF cardinality(p_aggregate_ids) = 1 AND p_expected[1] <> -2 THEN
        -- One request to a stream that exists (the common case): lock it, check the
        -- expectation and move its version in one statement. Anything else takes the
        -- general path below.
        UPDATE cronica_streams s
           SET version = s.version + p_counts[1],
               updated_at = greatest(clock_timestamp(), s.updated_at)
         WHERE s.aggregate_id = p_aggregate_ids[1]
           AND (p_expected[1] IN (-1, -3) OR s.version = p_expected[1])
           AND (p_aggregate_types[1] IS NULL OR s.aggregate_type = p_aggregate_types[1])
        RETURNING s.version - p_counts[1], s.aggregate_type, s.updated_at
             INTO from_version, actual_type, v_now;
        IF FOUND THEN
            v_base := cronica_reserve_positions(p_counts[1]);
            INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type,
                                event_version, event_data, metadata, timestamp, position)
            SELECT p_event_ids[g], p_aggregate_ids[1], actual_type, p_event_types[g],
                   from_version + g, p_data[g]::jsonb, p_metadata[g]::jsonb, v_now, v_base + g
              FROM generate_series(1, p_counts[1]) AS g;
            status := 'ok';
            to_version := from_version + p_counts[1];
            from_version := from_version + 1;
            last_position := v_base + p_counts[1];
            actual_type := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
        from_version := NULL;
        actual_type := NULL;
    END IF;

    -- 1. Lock the streams that exist, in code-point order.
    SELECT array_agg(l.aggregate_id), array_agg(l.version), array_agg(l.aggregate_type),
           array_agg(true)
      INTO h_ids, h_versions, h_types, h_existed
      FROM (SELECT s.aggregate_id, s.version, s.aggregate_type FROM cronica_streams s
             WHERE s.aggregate_id = ANY (p_aggregate_ids)
             ORDER BY s.aggregate_id COLLATE "C" FOR UPDATE) AS l;
    h_ids := coalesce(h_ids, '{}');

    -- 2. Create the missing streams whose request allows a new stream; a stream created
    --    meanwhile by another transaction (now committed) is locked instead.
    v_now := clock_timestamp();
    IF cardinality(h_ids) < cardinality(p_aggregate_ids) THEN
        WITH created AS (
            INSERT INTO cronica_streams
                   (aggregate_id, aggregate_type, version, created_at, updated_at)
            SELECT a.id, coalesce(a.typ, ''), 0, v_now, v_now
              FROM unnest(p_aggregate_ids, p_aggregate_types, p_expected) AS a(id, typ, exp)
             WHERE a.exp IN (-1, -2, 0) AND NOT a.id = ANY (h_ids)
             ORDER BY a.id COLLATE "C"
            ON CONFLICT (aggregate_id) DO NOTHING
            RETURNING aggregate_id, aggregate_type
        )
        SELECT h_ids || coalesce(array_agg(c.aggregate_id), '{}'),
               h_versions || coalesce(array_agg(0), '{}'),
               h_types || coalesce(array_agg(c.aggregate_type::text), '{}'),
               h_existed || coalesce(array_agg(false), '{}')
          INTO h_ids, h_versions, h_types, h_existed
          FROM created c;
        IF EXISTS (SELECT 1 FROM unnest(p_aggregate_ids, p_expected) AS a(id, exp)
                    WHERE a.exp IN (-1, -2, 0) AND NOT a.id = ANY (h_ids)) THEN
            SELECT h_ids || array_agg(l.aggregate_id), h_versions || array_agg(l.version),
                   h_types || array_agg(l.aggregate_type::text), h_existed || array_agg(true)
              INTO h_ids, h_versions, h_types, h_existed
              FROM (SELECT s.aggregate_id, s.version, s.aggregate_type FROM cronica_streams s
                     WHERE s.aggregate_id = ANY (p_aggregate_ids)
                       AND NOT s.aggregate_id = ANY (h_ids)
                     ORDER BY s.aggregate_id COLLATE "C" FOR UPDATE) AS l;
            v_now := clock_timestamp();
        END IF;
    END IF;

    -- 3. Decide every request, place the accepted events, write them, answer.
    v_base := cronica_reserve_positions(cardinality(p_event_ids));
    RETURN QUERY
    WITH req AS (
        SELECT r.*, sum(r.cnt) OVER (ORDER BY r.ord) - r.cnt AS k
          FROM unnest(p_aggregate_ids, p_aggregate_types, p_expected, p_counts)
               WITH ORDINALITY AS r(id, typ, exp, cnt, ord)
    ), heads AS (
        SELECT * FROM unnest(h_ids, h_versions, h_types, h_existed) AS h(id, version, typ, existed)
    ), judged AS (
        SELECT r.ord, r.id, r.cnt, r.k, coalesce(h.version, 0) AS cur, h.typ AS stream_typ,
               CASE WHEN NOT (r.exp = -1
                              OR (r.exp = -2 AND NOT coalesce(h.existed, false))
                              OR (r.exp = -3 AND coalesce(h.existed, false))
                              OR (r.exp >= 0 AND r.exp = coalesce(h.version, 0)))
                        THEN 'conflict'
                    WHEN h.existed AND r.typ IS NOT NULL AND r.typ <> h.typ THEN 'type_mismatch'
                    ELSE 'ok' END AS verdict
          FROM req r LEFT JOIN heads h ON h.id = r.id
    ), decided AS (
        SELECT j.*,
               CASE WHEN j.verdict <> 'ok' AND EXISTS (
                        SELECT 1 FROM events e
                         WHERE e.event_id = ANY (p_event_ids[j.k + 1 : j.k + j.cnt]))
                    THEN 'stored' ELSE j.verdict END AS outcome
          FROM judged j
    ), placed AS (
        SELECT d.*, v_base
                    + sum(CASE WHEN d.outcome = 'ok' THEN d.cnt ELSE 0 END) OVER (ORDER BY d.ord)
                    AS last_pos
          FROM decided d
    ), inserted AS (
        INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, event_version,
                            event_data, metadata, timestamp, position)
        SELECT e.id, p.id, p.stream_typ, e.typ, p.cur + (e.n - p.k), e.data::jsonb,
               e.meta::jsonb, v_now, p.last_pos - p.cnt + (e.n - p.k)
          FROM unnest(p_event_req, p_event_ids, p_event_types, p_data, p_metadata)
               WITH ORDINALITY AS e(req, id, typ, data, meta, n)
          JOIN placed p ON p.ord = e.req
         WHERE p.outcome = 'ok'
    ), updated AS (
        UPDATE cronica_streams s SET version = p.cur + p.cnt, updated_at = v_now
          FROM placed p WHERE p.outcome = 'ok' AND s.aggregate_id = p.id
    )
    SELECT p.outcome,
           CASE WHEN p.outcome = 'ok' THEN p.cur + 1 END,
           CASE WHEN p.outcome = 'ok' THEN p.cur + p.cnt END,
           CASE WHEN p.outcome = 'ok' THEN p.last_pos END,
           CASE WHEN p.outcome = 'conflict' THEN p.cur END,
           CASE WHEN p.outcome = 'type_mismatch' THEN p.stream_typ END,
           NULL::uuid, NULL::text
      FROM placed p ORDER BY p.ord;
END
$fn$;
ALTER FUNCTION cronica_append SET plan_cache_mode = force_generic_plan;

-- One event to one stream, with plain parameters (the client sends scalars, not arrays):
-- the common single append. Same answer row as cronica_append, which it defers to for
-- anything but an existing stream whose expectation holds.
CREATE FUNCTION cronica_append_one(
    p_aggregate_id text, p_aggregate_type text, p_expected bigint, p_event_id uuid,
    p_event_type text, p_data text, p_metadata text,
    OUT status text, OUT from_version int, OUT to_version int, OUT last_position bigint,
    OUT actual_version int, OUT actual_type text, OUT detail_event_id uuid, OUT detail text)
RETURNS SETOF record LANGUAGE plpgsql AS $fn$
DECLARE
    v_base bigint;
    v_now timestamptz;
BEGIN
    IF p_expected <> -2 THEN
        UPDATE cronica_streams s
           SET version = s.version + 1, updated_at = greatest(clock_timestamp(), s.updated_at)
         WHERE s.aggregate_id = p_aggregate_id
           AND (p_expected IN (-1, -3) OR s.version = p_expected)
           AND (p_aggregate_type IS NULL OR s.aggregate_type = p_aggregate_type)
        RETURNING s.version, s.aggregate_type, s.updated_at INTO to_version, actual_type, v_now;
        IF FOUND THEN
            v_base := cronica_reserve_positions(1);
            INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type,
                                event_version, event_data, metadata, timestamp, position)
            VALUES (p_event_id, p_aggregate_id, actual_type, p_event_type, to_version,
                    p_data::jsonb, p_metadata::jsonb, v_now, v_base + 1);
            status := 'ok';
            from_version := to_version;
            last_position := v_base + 1;
            actual_type := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM cronica_append(ARRAY[p_aggregate_id], ARRAY[p_aggregate_type],
        ARRAY[p_expected], ARRAY[1], ARRAY[1], ARRAY[p_event_id], ARRAY[p_event_type],
        ARRAY[p_data], ARRAY[p_metadata]);
END
$fn$;
ALTER FUNCTION cronica_append_one SET plan_cache_mode = force_generic_plan;
""",
    # Snapshots: a cache of aggregate state, one row per aggregate, apart from the events.
    2: r"""
CREATE TABLE cronica_snapshots (
    aggregate_id    VARCHAR(255) PRIMARY KEY,
    aggregate_type  VARCHAR(100) NOT NULL,
    version         INT NOT NULL,
    schema_version  INT NOT NULL,
    state           JSONB NOT NULL,
    event_timestamp TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Progress of copies into this store (cronica migrate), one row per source.
CREATE TABLE cronica_copies (
    source         TEXT PRIMARY KEY,
    last_position  BIGINT NOT NULL,
    events_read    BIGINT NOT NULL,
    events_written BIGINT NOT NULL,
    checksum       TEXT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
""",
    # Archiving (cronica archive): whole streams moved to Parquet files, an index of what went
    # where, and the one way to delete events: inside a transaction holding an archive permit.
    3: r"""
CREATE TABLE cronica_archive_batches (
    batch       TEXT PRIMARY KEY,
    file        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    events      BIGINT NOT NULL,
    streams     INT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    last_position BIGINT NOT NULL
);
CREATE TABLE cronica_archived_streams (
    aggregate_id  VARCHAR(255) NOT NULL,
    batch         TEXT NOT NULL,
    first_version INT NOT NULL,
    last_version  INT NOT NULL,
    events        INT NOT NULL,
    PRIMARY KEY (aggregate_id, batch)
);
CREATE INDEX idx_archived_by_batch ON cronica_archived_streams (batch);
CREATE TABLE cronica_change_permits (operation TEXT NOT NULL);
-- SET search_path FROM CURRENT: the function finds the permits table of its own schema, also
-- when a session with another search_path (an operator's psql) touches the events.
CREATE OR REPLACE FUNCTION cronica_refuse_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'DELETE'
       AND EXISTS (SELECT 1 FROM cronica_change_permits WHERE operation = 'archive') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'cronica: events are append-only; % refused', TG_OP
        USING ERRCODE = 'CR001';
END
$fn$;
""",
}


def migrate(conn: Any, schema: str) -> int:
    """Bring ``schema`` to :data:`SCHEMA_VERSION` on a psycopg connection; return the old version.

    Also re-bases positions after a logical dump and restore (transaction ids start again low
    in a new cluster): the offset grows so new positions stay above every stored one.
    """
    from psycopg import sql

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('cronica.migrate.' || %s))", (schema,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE IF NOT EXISTS cronica_schema (version INT NOT NULL)")
        found = conn.execute("SELECT coalesce(max(version), 0) FROM cronica_schema").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"schema version {found} is newer than this cronica knows ({SCHEMA_VERSION})"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            conn.execute(_MIGRATIONS[version])
            conn.execute("INSERT INTO cronica_schema (version) VALUES (%s)", (version,))
        _rebase_positions(conn)
    return int(found)


def _rebase_positions(conn: Any) -> None:
    row = conn.execute(
        "SELECT greatest((SELECT coalesce(max(position), 0) FROM events),"
        " (SELECT coalesce(max(last_position), 0) FROM cronica_archive_batches)) >> 20,"
        " pg_current_xact_id()::text::bigint,"
        " (SELECT value FROM cronica_settings WHERE name = 'position_xid_offset')"
    ).fetchone()
    stored_top, current_xid, offset = row
    if stored_top >= current_xid + offset:
        conn.execute(
            "UPDATE cronica_settings SET value = %s WHERE name = 'position_xid_offset'",
            (stored_top - current_xid + 1,),
        )
