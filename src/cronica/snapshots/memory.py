"""Snapshots in a dict: for the in-memory event store and tests."""

from __future__ import annotations

import threading

from cronica.snapshots.base import Snapshot, SnapshotStore


class MemorySnapshotStore(SnapshotStore):
    """Snapshots held in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}

    def _save(self, snapshot: Snapshot) -> None:
        with self._lock:
            stored = self._snapshots.get(snapshot.aggregate_id)
            if (
                stored is None
                or stored.schema_version != snapshot.schema_version
                or stored.version <= snapshot.version
            ):
                self._snapshots[snapshot.aggregate_id] = snapshot

    def _load(self, aggregate_id: str) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(aggregate_id)

    def _delete(self, aggregate_id: str) -> None:
        with self._lock:
            self._snapshots.pop(aggregate_id, None)
