"""Snapshots in the event store's SQLite file, table ``cronica_snapshots``.

A connection of its own, with ``synchronous=NORMAL``: a snapshot lost in a power cut is rebuilt
from the events, so it does not pay for a full fsync.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cronica import _json
from cronica.errors import StoreError
from cronica.snapshots.base import Snapshot, SnapshotStore

_SAVE = """
INSERT INTO cronica_snapshots
    (aggregate_id, aggregate_type, version, schema_version, state, event_timestamp, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (aggregate_id) DO UPDATE SET
    aggregate_type = excluded.aggregate_type, version = excluded.version,
    schema_version = excluded.schema_version, state = excluded.state,
    event_timestamp = excluded.event_timestamp, created_at = excluded.created_at
WHERE cronica_snapshots.version <= excluded.version
   OR cronica_snapshots.schema_version <> excluded.schema_version
"""


class SQLiteSnapshotStore(SnapshotStore):
    """Snapshots beside the events of a SQLite store (its schema creates the table)."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000) -> None:
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=0
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    def _save(self, snapshot: Snapshot) -> None:
        params = (
            snapshot.aggregate_id,
            snapshot.aggregate_type,
            snapshot.version,
            snapshot.schema_version,
            _json.dumps(snapshot.state).decode(),
            snapshot.timestamp.astimezone(UTC).isoformat(timespec="microseconds"),
            datetime.now(UTC).isoformat(timespec="microseconds"),
        )
        self._run(_SAVE, params)

    def _load(self, aggregate_id: str) -> Snapshot | None:
        rows = self._run(
            "SELECT aggregate_id, aggregate_type, version, schema_version, state,"
            " event_timestamp FROM cronica_snapshots WHERE aggregate_id = ?",
            (aggregate_id,),
        )
        if not rows:
            return None
        ident, kind, version, schema, state, stamp = rows[0]
        return Snapshot(
            ident, kind, version, schema, _json.loads(state), datetime.fromisoformat(stamp)
        )

    def _delete(self, aggregate_id: str) -> None:
        self._run("DELETE FROM cronica_snapshots WHERE aggregate_id = ?", (aggregate_id,))

    def _run(self, query: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    def close(self) -> None:
        self._conn.close()
