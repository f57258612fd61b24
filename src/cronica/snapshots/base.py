"""Snapshots: an aggregate's state at a version, stored apart from its events.

A snapshot is a cache, never the truth: it can be dropped at any time, and the aggregate is
rebuilt from its events. Each aggregate keeps its newest snapshot only. ``schema_version`` is the
aggregate class's ``snapshot_version`` when it was taken: a snapshot taken by older code is
ignored and replaced, never misread.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronica._closing import Closing


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of ``aggregate_id`` after its event ``version`` (recorded at ``timestamp``)."""

    aggregate_id: str
    aggregate_type: str
    version: int
    schema_version: int
    state: dict[str, Any]
    timestamp: datetime


class SnapshotStore(Closing, abc.ABC):
    """Where snapshots live; one module per backend, beside the event store's."""

    @abc.abstractmethod
    def save(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` unless a newer one of the same schema version is stored."""

    @abc.abstractmethod
    def load(self, aggregate_id: str) -> Snapshot | None:
        """The newest snapshot of ``aggregate_id``, or None."""

    @abc.abstractmethod
    def delete(self, aggregate_id: str) -> None:
        """Drop the snapshot of ``aggregate_id`` (if any)."""

    def close(self) -> None:
        """Release connections."""
