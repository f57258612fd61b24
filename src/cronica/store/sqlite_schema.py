"""The SQLite schema and its migrations, applied on first use and by ``cronica init``.

Migrations run inside ``BEGIN IMMEDIATE``: a second process opening the same file waits for the
first to finish, then finds the schema current and does nothing.
"""

from __future__ import annotations

import sqlite3

from cronica.errors import StoreError

SCHEMA_VERSION = 3

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE events (
        position       INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id       TEXT NOT NULL UNIQUE,
        aggregate_id   TEXT NOT NULL,
        aggregate_type TEXT NOT NULL,
        event_type     TEXT NOT NULL,
        event_version  INTEGER NOT NULL,
        event_data     TEXT NOT NULL,
        metadata       TEXT,
        timestamp      TEXT NOT NULL,
        CONSTRAINT unique_version UNIQUE (aggregate_id, event_version)
    );
    CREATE TABLE cronica_streams (
        aggregate_id   TEXT PRIMARY KEY,
        aggregate_type TEXT NOT NULL,
        version        INTEGER NOT NULL,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX idx_streams_type ON cronica_streams (aggregate_type, aggregate_id);
    CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'cronica: events are append-only; UPDATE refused'); END;
    CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'cronica: events are append-only; DELETE refused'); END;
    """,
    # Snapshots: a cache of aggregate state, one row per aggregate, apart from the events.
    2: """
    CREATE TABLE cronica_snapshots (
        aggregate_id    TEXT PRIMARY KEY,
        aggregate_type  TEXT NOT NULL,
        version         INTEGER NOT NULL,
        schema_version  INTEGER NOT NULL,
        state           TEXT NOT NULL,
        event_timestamp TEXT NOT NULL,
        created_at      TEXT NOT NULL
    ) WITHOUT ROWID;
    -- Progress of copies into this store (cronica migrate), one row per source.
    CREATE TABLE cronica_copies (
        source        TEXT PRIMARY KEY,
        last_position INTEGER NOT NULL,
        events_read   INTEGER NOT NULL,
        events_written INTEGER NOT NULL,
        checksum      TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # Archiving (cronica archive): whole streams moved to Parquet files, an index of what went
    # where, and the one way to delete events: inside a transaction holding an archive permit.
    3: """
    CREATE TABLE cronica_archive_batches (
        batch       TEXT PRIMARY KEY,
        file        TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        events      INTEGER NOT NULL,
        streams     INTEGER NOT NULL,
        archived_at TEXT NOT NULL,
        actor       TEXT NOT NULL,
        reason      TEXT NOT NULL,
        last_position INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE cronica_archived_streams (
        aggregate_id  TEXT NOT NULL,
        batch         TEXT NOT NULL,
        first_version INTEGER NOT NULL,
        last_version  INTEGER NOT NULL,
        events        INTEGER NOT NULL,
        PRIMARY KEY (aggregate_id, batch)
    ) WITHOUT ROWID;
    CREATE INDEX idx_archived_by_batch ON cronica_archived_streams (batch);
    CREATE TABLE cronica_change_permits (operation TEXT NOT NULL);
    DROP TRIGGER events_refuse_delete;
    CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    WHEN NOT EXISTS (SELECT 1 FROM cronica_change_permits WHERE operation = 'archive')
    BEGIN SELECT RAISE(ABORT, 'cronica: events are append-only; DELETE refused'); END;
    """,
}


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; return the version found before."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS cronica_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM cronica_schema").fetchone()
        found = int(row[0] or 0)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"schema version {found} is newer than this cronica knows ({SCHEMA_VERSION})"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in _split(_MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute("INSERT INTO cronica_schema (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def _split(script: str) -> list[str]:
    """Statements of a migration script (triggers hold ';' inside BEGIN ... END)."""
    statements: list[str] = []
    current = ""
    for part in script.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                statements.append(current.strip())
            current = ""
    return statements
