"""Snapshots in the event store's PostgreSQL schema, table ``cronica_snapshots``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cronica.errors import StoreError, StoreUnavailableError
from cronica.snapshots.base import Snapshot, SnapshotStore

_SAVE = """
INSERT INTO cronica_snapshots AS s
    (aggregate_id, aggregate_type, version, schema_version, state, event_timestamp)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (aggregate_id) DO UPDATE SET
    aggregate_type = excluded.aggregate_type, version = excluded.version,
    schema_version = excluded.schema_version, state = excluded.state,
    event_timestamp = excluded.event_timestamp, created_at = now()
WHERE s.version <= excluded.version OR s.schema_version <> excluded.schema_version
"""

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class PostgresSnapshotStore(SnapshotStore):
    """Snapshots beside the events of a PostgreSQL store, through its connection pool."""

    def __init__(self, connection: Connect) -> None:
        self._connection = connection

    def _save(self, snapshot: Snapshot) -> None:
        self._run(
            _SAVE,
            (
                snapshot.aggregate_id,
                snapshot.aggregate_type,
                snapshot.version,
                snapshot.schema_version,
                Jsonb(snapshot.state),
                snapshot.timestamp,
            ),
        )

    def _load(self, aggregate_id: str) -> Snapshot | None:
        rows = self._run(
            "SELECT aggregate_id, aggregate_type, version, schema_version, state,"
            " event_timestamp FROM cronica_snapshots WHERE aggregate_id = %s",
            (aggregate_id,),
        )
        return Snapshot(*rows[0]) if rows else None

    def _delete(self, aggregate_id: str) -> None:
        self._run("DELETE FROM cronica_snapshots WHERE aggregate_id = %s", (aggregate_id,))

    def _run(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._connection() as conn:
                cursor = conn.execute(query, params)
                return cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(f"PostgreSQL: {str(exc).strip()}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {str(exc).strip()}") from exc
