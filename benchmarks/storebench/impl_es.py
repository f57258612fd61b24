"""The ``eventsourcing`` library (9.5) as its users use it: an Application saving Aggregates.

Writes go through ``Application.save(aggregate)`` (domain events mapped and transcoded to JSON,
then ``insert_events`` of its recorder); the aggregate stays in the writer's memory between
appends, as a command handler holding it would. Reads decode into domain event objects:
``app.events.get(id)`` for a stream, ``recorder.select_notifications`` plus
``mapper.to_domain_event`` for the global log. Its settings are left at their defaults, which are
WAL with ``synchronous=FULL`` on SQLite (checked on its own connection at start) and
``synchronous_commit`` as the server has it on PostgreSQL. Its PostgreSQL recorder takes
``LOCK TABLE ... IN EXCLUSIVE MODE`` in each insert, so its writers are serialised.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from storebench.sites import Site
from storebench.subjects import EVENT_DATA, EVENT_METADATA

ES_VERSION = version("eventsourcing")
_SQLITE_FULL = 2


class Account(Aggregate):
    """A stream of deposits; its first event is the aggregate's ``Created``."""

    class Deposited(Aggregate.Event):
        amount: str
        currency: str
        note: str
        source: str

    def deposit(self) -> None:
        self.trigger_event(self.Deposited, **EVENT_DATA, **EVENT_METADATA)


class BenchApplication(Application[UUID]):
    """A plain application: no snapshots, no cache, default JSON transcoder."""


def es_environment(site: Site) -> dict[str, str]:
    """The environment that points eventsourcing's persistence module at ``site``."""
    if site.backend == "sqlite":
        assert site.sqlite_path is not None
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(site.sqlite_path),
        }
    parts = urlsplit(site.conninfo)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_SCHEMA": site.schema,
    }


class EsWriter:
    """Holds one aggregate: its first append creates it (the ``Created`` event counts as one)."""

    def __init__(self, app: BenchApplication, ids: dict[str, UUID], stream: str) -> None:
        self._app = app
        self._ids = ids
        self._stream = stream
        self._account: Account | None = None

    def append(self, count: int) -> None:
        account = self._account
        if account is None:
            account = self._account = Account()
            self._ids[self._stream] = account.id
            count -= 1
        for _ in range(count):
            account.deposit()
        self._app.save(account)

    def close(self) -> None:
        """Nothing to release: the writers share the application."""


class EsSubject:
    """One application shared by every writer (threads), as a web app would share it."""

    def __init__(self, site: Site) -> None:
        self.app = BenchApplication(env=es_environment(site))
        self._ids: dict[str, UUID] = {}
        if site.backend == "sqlite":
            _check_sqlite_durability(self.app)

    def writer(self, stream: str) -> EsWriter:
        return EsWriter(self.app, self._ids, stream)

    def load_stream(self, stream: str) -> int:
        return sum(1 for _ in self.app.events.get(self._ids[stream]))

    def load_aggregate(self, stream: str) -> int:
        """Rebuild the aggregate with ``repository.get``: what loading means in eventsourcing."""
        account: Account = self.app.repository.get(self._ids[stream])
        return int(account.version)

    def read_log(self, page_size: int) -> int:
        recorder, mapper = self.app.recorder, self.app.mapper
        count, after = 0, 0
        while True:
            notifications = recorder.select_notifications(
                start=after, limit=page_size, inclusive_of_start=False
            )
            page = [mapper.to_domain_event(notification) for notification in notifications]
            count += len(page)
            if len(page) < page_size:
                return count
            after = notifications[-1].id

    def close(self) -> None:
        self.app.close()


def _check_sqlite_durability(app: BenchApplication) -> None:
    """eventsourcing sets WAL itself and leaves ``synchronous`` at SQLite's default: check both."""
    datastore: Any = app.factory.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
    if str(journal_mode).lower() != "wal" or synchronous != _SQLITE_FULL:
        raise RuntimeError(
            f"eventsourcing's SQLite connection runs journal_mode={journal_mode},"
            f" synchronous={synchronous}; the benchmark needs WAL and FULL (2)"
        )
