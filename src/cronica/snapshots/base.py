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
from cronica._json import dump_object
from cronica._validation import check_aggregate_id, check_aggregate_type
from cronica.errors import InvalidInputError
from cronica.events import MAX_VERSION


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
    """Where snapshots live; one module per backend, beside the event store's. The public
    methods check their arguments (``InvalidInputError`` and nothing stored, the same on every
    backend) and leave the storing to the backend's ``_save``, ``_load`` and ``_delete``."""

    def save(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` unless a newer one of the same schema version is stored."""
        check_snapshot(snapshot)
        self._save(snapshot)

    def load(self, aggregate_id: str) -> Snapshot | None:
        """The newest snapshot of ``aggregate_id``, or None."""
        return self._load(check_aggregate_id(aggregate_id))

    def delete(self, aggregate_id: str) -> None:
        """Drop the snapshot of ``aggregate_id`` (if any)."""
        self._delete(check_aggregate_id(aggregate_id))

    @abc.abstractmethod
    def _save(self, snapshot: Snapshot) -> None: ...

    @abc.abstractmethod
    def _load(self, aggregate_id: str) -> Snapshot | None: ...

    @abc.abstractmethod
    def _delete(self, aggregate_id: str) -> None: ...

    def close(self) -> None:
        """Release connections."""


def check_snapshot(snapshot: Any) -> None:
    """Refuse a snapshot that could not be stored, or would not read back as it was taken."""
    if not isinstance(snapshot, Snapshot):
        raise InvalidInputError(f"save takes a Snapshot, not {type(snapshot).__name__}")
    check_aggregate_id(snapshot.aggregate_id)
    check_aggregate_type(snapshot.aggregate_type)
    for name in ("version", "schema_version"):
        value = getattr(snapshot, name)
        if type(value) is not int or not 0 <= value <= MAX_VERSION:
            raise InvalidInputError(f"a snapshot's {name} must be an integer >= 0, not {value!r}")
    if not isinstance(snapshot.timestamp, datetime) or snapshot.timestamp.utcoffset() is None:
        raise InvalidInputError("a snapshot's timestamp must be a timezone-aware datetime")
    dump_object(snapshot.state, "snapshot state")
