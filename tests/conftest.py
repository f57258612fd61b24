"""Fixtures shared by the suite: one store per backend, fresh for each test.

PostgreSQL tests use ``CRONICA_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), each test in a schema of its own that is dropped
afterwards. In CI (``CI`` set) an unreachable PostgreSQL fails the run; elsewhere those tests skip
and say how to enable them.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cronica import EventStore, MemoryEventStore, SQLiteEventStore

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from cronica.server.auth import KeyRing
    from tests.processes import Server

POSTGRES_URL = os.environ.get(
    "CRONICA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["memory", "sqlite", "postgresql"]

_postgres_checked: str | None = None


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per run)."""
    global _postgres_checked
    if _postgres_checked is None:
        try:
            import psycopg

            with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _postgres_checked = ""
        except Exception as exc:  # any failure means: not usable here
            _postgres_checked = f"{type(exc).__name__}: {exc}"
    return _postgres_checked or None


def require_postgres() -> None:
    """Skip (outside CI) or fail (in CI) when PostgreSQL cannot be reached."""
    problem = postgres_available()
    if problem is None:
        return
    _skip_or_fail(
        "PostgreSQL",
        f"PostgreSQL is not reachable at {POSTGRES_URL} ({problem}). Start it, or point "
        "CRONICA_TEST_POSTGRES_URL at a server (database 'test', user 'postgres', trust auth).",
    )


def _skip_or_fail(service: str, message: str) -> None:
    """A server the test needs is missing: fail in CI, skip (saying how to fix it) elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"CI requires {service}: {message}", pytrace=False)
    pytest.skip(message)


REDIS_URL = os.environ.get("CRONICA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    """Skip (outside CI) or fail (in CI) when Redis cannot be reached."""
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        return
    except Exception as exc:  # any failure means: not usable here
        problem = f"{type(exc).__name__}: {exc}"
    _skip_or_fail(
        "Redis",
        f"Redis is not reachable at {REDIS_URL} ({problem}). Start it, or point "
        "CRONICA_TEST_REDIS_URL at a server.",
    )


NATS_URL = os.environ.get("CRONICA_TEST_NATS_URL", "nats://127.0.0.1:4222")


def require_nats() -> None:
    """Skip (outside CI) or fail (in CI) when NATS with JetStream cannot be reached."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(NATS_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 4222), timeout=3).close()
        return
    except OSError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    _skip_or_fail(
        "NATS",
        f"NATS is not reachable at {NATS_URL} ({problem}). Start nats-server -js, or point "
        "CRONICA_TEST_NATS_URL at one.",
    )


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped after the test."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield schema
    drop_schema(schema)


@pytest.fixture
def pg_schema_factory() -> Iterator[Callable[[], str]]:
    """``make()``: a fresh PostgreSQL schema name per call, all dropped after the test."""
    made: list[str] = []

    def make() -> str:
        require_postgres()
        made.append(f"t_{uuid.uuid4().hex[:16]}")
        return made[-1]

    yield make
    for schema in made:
        drop_schema(schema)


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., EventStore]]:
    """``make_store(backend, **options)``: a new store; several calls on SQLite or PostgreSQL
    open the same database (as another process would)."""
    opened: list[EventStore] = []
    schema = f"t_{uuid.uuid4().hex[:16]}"
    used_postgres = False

    def make(backend: str, **options: Any) -> EventStore:
        nonlocal used_postgres
        store: EventStore
        if backend == "memory":
            store = MemoryEventStore(**options)
        elif backend == "sqlite":
            store = SQLiteEventStore(tmp_path / "events.db", **options)
        elif backend == "postgresql":
            require_postgres()
            from cronica.store.postgres import PostgresEventStore

            used_postgres = True
            store = PostgresEventStore(POSTGRES_URL, schema=schema, **options)
        else:
            raise ValueError(backend)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    if used_postgres:
        drop_schema(schema)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgresql":
        require_postgres()
    return name


@pytest.fixture
def store(backend: str, make_store: Callable[..., EventStore]) -> EventStore:
    """A fresh, empty store of each backend in turn."""
    return make_store(backend)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``serve(*args)``: ``cronica serve`` in a subprocess, killed after the test."""
    from tests.processes import Server

    started: list[Server] = []

    def start(*args: str, env: dict[str, str | None] | None = None) -> Server:
        server = Server(*args, cwd=tmp_path, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture
def make_client(store: EventStore) -> Iterator[Callable[..., TestClient]]:
    """``make(**settings)``: a started application on the test's store."""
    opened: list[TestClient] = []

    def make(keys: KeyRing | None = None, **settings: Any) -> TestClient:
        from fastapi.testclient import TestClient

        from cronica.server import ServerSettings, create_app

        settings.setdefault("min_position_timeout", 5.0)
        app = create_app(ServerSettings(**settings), store=store, keys=keys)
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)
