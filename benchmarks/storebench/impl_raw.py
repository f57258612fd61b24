"""The raw-SQL baseline: the same events table as cronica, driven by hand from Python.

The table has cronica's columns and keys (event id, ``(aggregate_id, event_version)``, position)
and no other index: what a hand-written event table needs. cronica's extra structures (its
streams table, secondary indexes) are part of what it is measured on.

Each writer computes its versions itself (it is the stream's only writer), opens its own
connection and runs one transaction per append: a plain multi-row ``INSERT``. The unique key
``(aggregate_id, event_version)`` is the only concurrency check. Reads decode rows the way cronica
does (UUID, datetime, JSON parsed into dicts with orjson) into plain tuples.

On PostgreSQL the position is a ``bigserial``: concurrent writers can commit positions out of
order, so a reader following the global log could skip events. ``serialised=True`` takes a
transaction-scoped advisory lock before inserting, so positions commit in order (the usual fix).
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from storebench.sites import Site
from storebench.subjects import AGGREGATE_TYPE, EVENT_DATA, EVENT_METADATA, EVENT_TYPE

_COLUMNS: Final = (
    "event_id, event_type, aggregate_id, aggregate_type, event_version, position, timestamp,"
    " event_data, metadata"
)
Row = tuple[Any, ...]

# -- SQLite ------------------------------------------------------------------------------------

_SQLITE_SCHEMA: Final = (
    """CREATE TABLE events (
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
    )""",
)
_SQLITE_INSERT: Final = (
    "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, event_version,"
    " event_data, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A connection with the durability every implementation gets: WAL and synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _decode_sqlite(row: Row) -> Row:
    return (
        uuid.UUID(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        datetime.fromisoformat(row[6]),
        orjson.loads(row[7]),
        orjson.loads(row[8]),
    )


class RawSQLiteWriter:
    """One connection of its own; ``BEGIN IMMEDIATE``, the inserts, ``COMMIT``."""

    def __init__(self, path: Path, stream: str) -> None:
        self._conn = open_sqlite(path)
        self._stream = stream
        self._version = 0

    def append(self, count: int) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        first = self._version + 1
        rows = [
            (
                str(uuid.uuid4()),
                self._stream,
                AGGREGATE_TYPE,
                EVENT_TYPE,
                first + offset,
                orjson.dumps(EVENT_DATA).decode(),
                orjson.dumps(EVENT_METADATA).decode(),
                stamp,
            )
            for offset in range(count)
        ]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_SQLITE_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._version += count

    def close(self) -> None:
        self._conn.close()


class RawSQLiteSubject:
    """The raw baseline on one SQLite file."""

    def __init__(self, site: Site) -> None:
        assert site.sqlite_path is not None
        self._path = site.sqlite_path
        self._reader = open_sqlite(self._path)
        for statement in _SQLITE_SCHEMA:
            self._reader.execute(statement)

    def writer(self, stream: str) -> RawSQLiteWriter:
        return RawSQLiteWriter(self._path, stream)

    def load_stream(self, stream: str) -> int:
        rows = self._reader.execute(
            f"SELECT {_COLUMNS} FROM events WHERE aggregate_id = ? ORDER BY event_version",
            (stream,),
        ).fetchall()
        return len([_decode_sqlite(row) for row in rows])

    def read_log(self, page_size: int) -> int:
        query = f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        count, after = 0, 0
        while True:
            rows = self._reader.execute(query, (after, page_size)).fetchall()
            page = [_decode_sqlite(row) for row in rows]
            count += len(page)
            if len(page) < page_size:
                return count
            after = page[-1][5]

    def close(self) -> None:
        self._reader.close()


# -- PostgreSQL --------------------------------------------------------------------------------

_PG_SCHEMA: Final = """
CREATE TABLE events (
    event_id       UUID PRIMARY KEY,
    aggregate_id   VARCHAR(255) NOT NULL,
    aggregate_type VARCHAR(100) NOT NULL,
    event_type     VARCHAR(100) NOT NULL,
    event_version  INT NOT NULL,
    event_data     JSONB NOT NULL,
    metadata       JSONB,
    timestamp      TIMESTAMPTZ NOT NULL DEFAULT now(),
    position       BIGSERIAL,
    CONSTRAINT unique_version UNIQUE (aggregate_id, event_version),
    CONSTRAINT unique_position UNIQUE (position)
);
"""
_PG_LOCK: Final = "SELECT pg_advisory_xact_lock(2026)"


def _pg_insert(count: int) -> str:
    values = ", ".join(["(%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)"] * count)
    return (
        "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, event_version,"
        f" event_data, metadata) VALUES {values}"
    )


def open_postgres(site: Site) -> psycopg.Connection[Row]:
    """An autocommit connection to the site's schema, decoding JSONB with orjson like cronica."""
    conn = psycopg.connect(
        site.conninfo,
        autocommit=True,
        options=f"-c search_path={site.schema} -c TimeZone=UTC",
    )
    set_json_loads(orjson.loads, conn)
    return conn


class RawPostgresWriter:
    """One connection of its own; one ``INSERT`` statement (autocommit) per append.

    Serialised, the append is ``BEGIN; SELECT pg_advisory_xact_lock(..); INSERT ..; COMMIT``
    sent in one pipeline.
    """

    def __init__(self, site: Site, stream: str, serialised: bool) -> None:
        self._conn = open_postgres(site)
        self._stream = stream
        self._serialised = serialised
        self._version = 0
        self._statements: dict[int, str] = {}

    def append(self, count: int) -> None:
        statement = self._statements.get(count)
        if statement is None:
            statement = self._statements[count] = _pg_insert(count)
        params: list[Any] = []
        first = self._version + 1
        for offset in range(count):
            params += (
                uuid.uuid4(),
                self._stream,
                AGGREGATE_TYPE,
                EVENT_TYPE,
                first + offset,
                orjson.dumps(EVENT_DATA).decode(),
                orjson.dumps(EVENT_METADATA).decode(),
            )
        conn = self._conn
        if self._serialised:
            with conn.pipeline(), conn.transaction():
                conn.execute(_PG_LOCK)
                conn.execute(statement, params)
        else:
            conn.execute(statement, params)
        self._version += count

    def close(self) -> None:
        self._conn.close()


class RawPostgresSubject:
    """The raw baseline in one PostgreSQL schema."""

    def __init__(self, site: Site, serialised: bool = False) -> None:
        self._site = site
        self._serialised = serialised
        self._reader = open_postgres(site)
        self._reader.execute(_PG_SCHEMA)

    def writer(self, stream: str) -> RawPostgresWriter:
        return RawPostgresWriter(self._site, stream, self._serialised)

    def load_stream(self, stream: str) -> int:
        rows = self._reader.execute(
            f"SELECT {_COLUMNS} FROM events WHERE aggregate_id = %s ORDER BY event_version",
            (stream,),
        ).fetchall()
        return len(rows)

    def read_log(self, page_size: int) -> int:
        query = f"SELECT {_COLUMNS} FROM events WHERE position > %s ORDER BY position LIMIT %s"
        count, after = 0, 0
        while True:
            page = self._reader.execute(query, (after, page_size)).fetchall()
            count += len(page)
            if len(page) < page_size:
                return count
            after = page[-1][5]

    def close(self) -> None:
        self._reader.close()
