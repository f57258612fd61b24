"""The in-memory backend: for tests and examples; nothing survives the process."""

from __future__ import annotations

import bisect
import itertools
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from cronica.errors import StreamNotFoundError
from cronica.events import RecordedEvent, StreamInfo
from cronica.snapshots.memory import MemorySnapshotStore
from cronica.store._append_logic import StoredIdentity, apply_request
from cronica.store.base import (
    DEFAULT_MAX_EVENT_SIZE,
    AppendOutcome,
    AppendRequest,
    CopyProgress,
    EventStore,
    StoreStatus,
    check_import,
)
from cronica.upcasting import Upcasters


class _Stream:
    __slots__ = ("aggregate_type", "created", "events", "updated")

    def __init__(self, aggregate_type: str, created: datetime) -> None:
        self.aggregate_type = aggregate_type
        self.created = created
        self.updated = created
        self.events: list[RecordedEvent] = []

    def info(self, aggregate_id: str) -> StreamInfo:
        return StreamInfo(
            aggregate_id, self.aggregate_type, len(self.events), self.created, self.updated
        )


class MemoryEventStore(EventStore):
    """All events in Python lists, guarded by one lock; positions are dense from 1.

    >>> store = MemoryEventStore()
    """

    backend_name = "memory"

    def __init__(
        self, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE, upcasters: Upcasters | None = None
    ) -> None:
        super().__init__(max_event_size=max_event_size, upcasters=upcasters)
        self._snapshots: MemorySnapshotStore | None = None
        self._copies: dict[str, CopyProgress] = {}
        self._lock = threading.Lock()
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, _Stream] = {}
        self._by_id: dict[uuid.UUID, RecordedEvent] = {}

    # The transaction primitives of _append_logic.AppendTransaction, called under the lock.

    def find_events(self, event_ids: list[uuid.UUID]) -> list[StoredIdentity]:
        found = (self._by_id.get(event_id) for event_id in event_ids)
        return [
            StoredIdentity(
                e.event_id, e.aggregate_id, e.version, e.position, e.event_type, e.data, e.metadata
            )
            for e in found
            if e is not None
        ]

    def stream_head(self, aggregate_id: str) -> tuple[int, str, datetime] | None:
        stream = self._streams.get(aggregate_id)
        if stream is None:
            return None
        return (len(stream.events), stream.aggregate_type, stream.updated)

    def write(
        self, request: AppendRequest, first_version: int, aggregate_type: str, now: datetime
    ) -> int:
        stream = self._streams.get(request.aggregate_id)
        if stream is None:
            stream = self._streams[request.aggregate_id] = _Stream(aggregate_type, now)
        position = len(self._log)
        for offset, event in enumerate(request.events):
            position += 1
            recorded = RecordedEvent(
                event.event_id,
                event.event_type,
                request.aggregate_id,
                aggregate_type,
                first_version + offset,
                position,
                now,
                event.data,
                event.metadata,
            )
            self._log.append(recorded)
            stream.events.append(recorded)
            self._by_id[event.event_id] = recorded
        stream.updated = now
        return position

    def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        with self._lock:
            now = datetime.now(UTC)
            outcomes = [apply_request(self, request, now) for request in requests]
        self._committed_outcomes(outcomes)
        return outcomes

    def _read_stream(
        self,
        aggregate_id: str,
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backward: bool,
        limit: int | None,
    ) -> list[RecordedEvent]:
        with self._lock:
            stream = self._streams.get(aggregate_id)
            if stream is None:
                return []
            stop = len(stream.events) if to_version is None else min(to_version, len(stream.events))
            selected = stream.events[from_version - 1 : stop]
        if as_of is not None:
            selected = [e for e in selected if e.timestamp <= as_of]
        if backward:
            selected.reverse()
        return selected if limit is None else selected[:limit]

    def _read_all(
        self,
        after: int,
        limit: int | None,
        event_types: tuple[str, ...] | None,
        aggregate_types: tuple[str, ...] | None,
    ) -> list[RecordedEvent]:
        with self._lock:
            start = bisect.bisect_right(self._log, after, key=lambda e: e.position)
            tail = self._log[start:]
        if event_types is None and aggregate_types is None:
            return tail if limit is None else tail[:limit]
        result = []
        for event in tail:
            if event_types is not None and event.event_type not in event_types:
                continue
            if aggregate_types is not None and event.aggregate_type not in aggregate_types:
                continue
            result.append(event)
            if limit is not None and len(result) >= limit:
                break
        return result

    def _read_recent(self, limit: int, event_types: tuple[str, ...] | None) -> list[RecordedEvent]:
        with self._lock:
            chosen = (e for e in reversed(self._log) if event_types is None
                      or e.event_type in event_types)  # fmt: skip
            return list(itertools.islice(chosen, limit))

    def _read_event(self, event_id: uuid.UUID) -> RecordedEvent | None:
        with self._lock:
            return self._by_id.get(event_id)

    def _stream_info(self, aggregate_id: str) -> StreamInfo:
        with self._lock:
            stream = self._streams.get(aggregate_id)
            if stream is None:
                raise StreamNotFoundError(aggregate_id)
            return stream.info(aggregate_id)

    def _list_streams(
        self, aggregate_type: str | None, after: str | None, limit: int
    ) -> list[StreamInfo]:
        with self._lock:
            infos = [
                stream.info(aggregate_id)
                for aggregate_id, stream in self._streams.items()
                if (aggregate_type is None or stream.aggregate_type == aggregate_type)
                and (after is None or aggregate_id > after)
            ]
        infos.sort(key=lambda info: info.aggregate_id)
        return infos[:limit]

    def _import_events(self, events: list[RecordedEvent], progress: CopyProgress) -> None:
        with self._lock:
            heads = {
                e.aggregate_id: len(self._streams[e.aggregate_id].events)
                for e in events
                if e.aggregate_id in self._streams
            }
            check_import(events, heads, lambda ids: [i for i in ids if i in self._by_id])
            for event in events:
                stream = self._streams.get(event.aggregate_id)
                if stream is None:
                    stream = self._streams[event.aggregate_id] = _Stream(
                        event.aggregate_type, event.timestamp
                    )
                recorded = event._replace(position=len(self._log) + 1)
                self._log.append(recorded)
                stream.events.append(recorded)
                stream.updated = event.timestamp
                self._by_id[event.event_id] = recorded
            self._copies[progress.source] = progress
            head = len(self._log)
        self._committed(head)

    def copy_progress(self, source: str) -> CopyProgress | None:
        with self._lock:
            return self._copies.get(source)

    def snapshot_store(self) -> MemorySnapshotStore:
        with self._lock:
            if self._snapshots is None:
                self._snapshots = MemorySnapshotStore()
            return self._snapshots

    def status(self) -> StoreStatus:
        with self._lock:
            head = len(self._log)
            return StoreStatus(self.backend_name, 0, len(self._streams), head, head, head)

    def _head_position(self) -> int:
        with self._lock:
            return len(self._log)

    def _count_events(self, after: int) -> int:
        # Positions are dense from 1.
        with self._lock:
            return max(0, len(self._log) - after)
