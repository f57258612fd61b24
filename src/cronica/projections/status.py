"""How far each projection is: position, lag in events and seconds, state, rebuild progress."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cronica.errors import ProjectionNotFoundError
from cronica.projections.catalog import FAILED, STOPPED, Catalog, ProjectionRecord
from cronica.readmodels.base import ReadModelDatabase
from cronica.store.base import EventStore


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    """A rebuild in progress: a new generation filling from the start of the log."""

    generation: int
    position: int
    events_done: int
    events_total: int
    started_at: datetime
    eta_seconds: float | None
    """Seconds left at the rate so far; None until there is a rate."""

    @property
    def percent(self) -> float:
        if self.events_total <= 0:
            return 100.0
        return min(100.0, 100.0 * self.events_done / self.events_total)


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """One projection, as ``cronica projections status`` and ``GET /projections`` show it.

    ``state`` is ``catching_up``, ``live``, ``stopped`` (no runner holds its lease) or
    ``failed`` (a handler raised at ``failed_position``; see ``error``).
    """

    name: str
    state: str
    position: int
    lag_events: int
    lag_seconds: float
    version: int
    generation: int
    events_processed: int
    runner: str | None
    updated_at: datetime
    error: str | None = None
    failed_position: int | None = None
    failed_event_id: str | None = None
    failed_event_type: str | None = None
    rebuild: RebuildProgress | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as RFC 3339 strings)."""
        data = asdict(self)
        data["updated_at"] = self.updated_at.isoformat()
        if self.rebuild is not None:
            data["rebuild"]["started_at"] = self.rebuild.started_at.isoformat()
            data["rebuild"]["percent"] = round(self.rebuild.percent, 1)
        return data


def projection_status(
    store: EventStore, read_models: ReadModelDatabase, names: Sequence[str] | None = None
) -> list[ProjectionStatus]:
    """The status of the projections recorded in ``read_models`` (all, or those ``names``)."""
    catalog = Catalog(read_models)
    records = catalog.records() if catalog.exists() else {}
    if names is not None:
        for name in names:
            if name not in records:
                raise ProjectionNotFoundError(name)
        records = {name: records[name] for name in names}
    now = catalog.now() if records else time.time()
    return [_status(store, record, now) for record in records.values()]


def _status(store: EventStore, record: ProjectionRecord, now: float) -> ProjectionStatus:
    lag_events = store.count_events(after=record.position)
    lag_seconds = 0.0
    if lag_events:
        oldest = store.read_all(after=record.position, limit=1)
        if oldest:
            lag_seconds = max(0.0, now - oldest[0].timestamp.timestamp())
    state = record.state
    if state != FAILED and (record.lease_owner is None or record.lease_until < now):
        state = STOPPED
    return ProjectionStatus(
        name=record.name,
        state=state,
        position=record.position,
        lag_events=lag_events,
        lag_seconds=round(lag_seconds, 3),
        version=record.version,
        generation=record.generation,
        events_processed=record.events_processed,
        runner=record.lease_owner if state != STOPPED else None,
        updated_at=datetime.fromtimestamp(record.updated_at, UTC),
        error=record.error,
        failed_position=record.failed_position,
        failed_event_id=record.failed_event_id,
        failed_event_type=record.failed_event_type,
        rebuild=_rebuild(record, now),
    )


def _rebuild(record: ProjectionRecord, now: float) -> RebuildProgress | None:
    if record.rebuild_generation is None or record.rebuild_started_at is None:
        return None
    done = record.rebuild_events or 0
    total = max(record.rebuild_total or 0, done)
    elapsed = now - record.rebuild_started_at
    eta = (total - done) * elapsed / done if done and elapsed > 0 else None
    return RebuildProgress(
        generation=record.rebuild_generation,
        position=record.rebuild_position or 0,
        events_done=done,
        events_total=total,
        started_at=datetime.fromtimestamp(record.rebuild_started_at, UTC),
        eta_seconds=None if eta is None else round(eta, 1),
    )
