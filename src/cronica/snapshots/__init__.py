"""Snapshot stores: one small base class, one module per backend."""

from cronica.snapshots.base import Snapshot, SnapshotStore
from cronica.snapshots.memory import MemorySnapshotStore

__all__ = ["MemorySnapshotStore", "Snapshot", "SnapshotStore"]
