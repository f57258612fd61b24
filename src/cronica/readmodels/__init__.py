"""Read-model databases: SQL tables that projections write and queries read.

``connect_read_models(url)`` takes the same URLs as the event store: ``sqlite:///read.db``,
``postgresql://...?schema=name``, and ``memory://`` (a private scratch SQLite database, deleted
on close).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronica.connect import check_url, postgres_url_parts, sqlite_url_parts
from cronica.errors import InvalidURLError
from cronica.readmodels.base import ReadModelDatabase, ReadModelTransaction
from cronica.readmodels.sqlite import SQLiteReadModels

if TYPE_CHECKING:
    from cronica.store.base import EventStore

__all__ = [
    "ReadModelDatabase",
    "ReadModelTransaction",
    "SQLiteReadModels",
    "connect_read_models",
    "read_models_for",
]


def read_models_for(store: EventStore) -> ReadModelDatabase:
    """Read models in the event store's own database: the same SQLite file, the same PostgreSQL
    database and schema; for an in-memory store, a scratch SQLite database deleted on close."""
    from cronica.store.sqlite import SQLiteEventStore

    if isinstance(store, SQLiteEventStore):
        return SQLiteReadModels(str(store.path))
    if store.backend_name == "postgresql":
        from cronica.readmodels.postgres import PostgresReadModels
        from cronica.store.postgres import PostgresEventStore

        assert isinstance(store, PostgresEventStore)
        return PostgresReadModels(store.conninfo, schema=store.schema)
    return SQLiteReadModels(":memory:")


def connect_read_models(url: str) -> ReadModelDatabase:
    """Open the read-model database at ``url``.

    >>> db = connect_read_models("memory://")
    >>> db.dialect
    'sqlite'
    >>> db.close()
    """
    check_url(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return SQLiteReadModels(":memory:")
    if scheme == "sqlite":
        return SQLiteReadModels(sqlite_url_parts(url)[0])
    if scheme in ("postgresql", "postgres"):
        try:
            from cronica.readmodels.postgres import PostgresReadModels
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            message = "PostgreSQL needs the driver: pip install 'cronica[postgres]'"
            raise InvalidURLError(message) from exc
        conninfo, parameters = postgres_url_parts(url)
        return PostgresReadModels(conninfo, schema=parameters.get("schema", "public"))
    raise InvalidURLError(
        f"not a read-model URL: {url!r} (use memory://, sqlite:///path or postgresql://...)"
    )
