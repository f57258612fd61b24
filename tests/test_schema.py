"""Schema creation and migration: on first use, idempotent, safe from several processes at once,
append-only enforced by the database itself."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from cronica import AppendOnlyViolationError, EventStore, NewEvent, SQLiteEventStore, StoreError
from cronica.store import postgres as pg_backend
from cronica.store import sqlite as sqlite_backend
from cronica.store import sqlite_schema
from tests.conftest import POSTGRES_URL


def open_concurrently(opener: Callable[[], EventStore], count: int = 6) -> list[EventStore]:
    barrier = threading.Barrier(count)
    stores: list[EventStore] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            stores.append(opener())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return stores


def test_sqlite_migrations_are_safe_from_many_openers_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    stores = open_concurrently(lambda: SQLiteEventStore(path))
    stores[0].append("s", [NewEvent("A", {})])
    assert stores[-1].read_stream("s")[0].event_type == "A"
    for store in stores:
        store.close()
    with sqlite3.connect(path) as conn:
        versions = conn.execute("SELECT version FROM cronica_schema").fetchall()
        assert versions == [(v,) for v in range(1, sqlite_schema.SCHEMA_VERSION + 1)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_postgres_migrations_are_safe_from_many_openers_at_once(pg_schema: str) -> None:
    stores = open_concurrently(
        lambda: pg_backend.PostgresEventStore(POSTGRES_URL, schema=pg_schema)
    )
    stores[0].append("s", [NewEvent("A", {})])
    assert stores[-1].read_stream("s")[0].event_type == "A"
    for store in stores:
        store.close()
    with psycopg.connect(POSTGRES_URL) as conn:
        rows = conn.execute(f"SELECT version FROM {pg_schema}.cronica_schema").fetchall()
    assert rows == [(v,) for v in range(1, sqlite_schema.SCHEMA_VERSION + 1)]


def test_a_newer_schema_than_known_is_refused(tmp_path: Path, pg_schema: str) -> None:
    path = tmp_path / "future.db"
    SQLiteEventStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO cronica_schema VALUES (99)")
    with pytest.raises(StoreError, match="newer"):
        SQLiteEventStore(path)
    pg_backend.PostgresEventStore(POSTGRES_URL, schema=pg_schema).close()
    with psycopg.connect(POSTGRES_URL) as conn:
        conn.execute(f"INSERT INTO {pg_schema}.cronica_schema VALUES (99)")
    with pytest.raises(StoreError, match="newer"):
        pg_backend.PostgresEventStore(POSTGRES_URL, schema=pg_schema)


def test_sqlite_refuses_update_and_delete_of_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SQLiteEventStore(path) as store:
        store.append("s", [NewEvent("A", {"x": 1})])
    conn = sqlite3.connect(path)
    for statement in ("UPDATE events SET event_data = '{}'", "DELETE FROM events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only") as info:
            conn.execute(statement)
        assert isinstance(sqlite_backend._translate(info.value), AppendOnlyViolationError)
    conn.close()
    with SQLiteEventStore(path) as store:
        assert store.read_stream("s")[0].data == {"x": 1}


def test_postgres_refuses_update_delete_and_truncate_of_events(pg_schema: str) -> None:
    with pg_backend.PostgresEventStore(POSTGRES_URL, schema=pg_schema) as store:
        store.append("s", [NewEvent("A", {"x": 1})])
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for statement in (
            "UPDATE {}.events SET event_data = '{{}}'",
            "DELETE FROM {}.events",
            "TRUNCATE {}.events",
        ):
            with pytest.raises(psycopg.Error, match="append-only") as info:
                conn.execute(statement.format(pg_schema))
            assert isinstance(pg_backend._translate(info.value), AppendOnlyViolationError)
    with pg_backend.PostgresEventStore(POSTGRES_URL, schema=pg_schema) as store:
        assert store.read_stream("s")[0].data == {"x": 1}


def test_positions_stay_above_stored_ones_after_a_restore(pg_schema: str) -> None:
    """A logical dump restored into a new cluster starts transaction ids low again: the store
    raises its position offset on start so new positions stay above the restored ones."""
    store = pg_backend.PostgresEventStore(POSTGRES_URL, schema=pg_schema)
    store.append("s", [NewEvent("Before", {})])
    top = store.read_all()[-1].position
    store.close()
    with psycopg.connect(POSTGRES_URL) as conn:  # as if transaction ids had restarted low
        conn.execute(f"UPDATE {pg_schema}.cronica_settings SET value = value - 1000000")
    store = pg_backend.PostgresEventStore(POSTGRES_URL, schema=pg_schema)
    result = store.append("s", [NewEvent("After", {})])
    assert result.position > top
    assert [e.event_type for e in store.read_all()] == ["Before", "After"]
    assert [e.event_type for e in store.read_all(after=top)] == ["After"]
    store.close()


def test_schema_names_are_checked() -> None:
    from cronica import InvalidInputError

    with pytest.raises(InvalidInputError):
        pg_backend.PostgresEventStore(POSTGRES_URL, schema="x; DROP TABLE events")
