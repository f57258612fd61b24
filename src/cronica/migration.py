"""Copy a store into a new one, upcasting and compacting on the way (``cronica migrate``).

The seed's batch transformation (1.7.3, strategy 4) and compaction (1.7.5), done the safe way:
never in place. The source is read in log order (through its upcasters, so the copy holds every
event at its newest schema version), optional compaction rules merge or drop events, and the
result is written to an empty destination, any backend to any backend, keeping event ids, types,
timestamps, data and metadata; versions stay dense per stream (renumbered where compaction
removed events) and positions are the destination's.

Personal data is copied as stored, encrypted; the subjects' keys and the list of forgotten
subjects are copied into the destination's key table first (compaction rules and upcasters see
personal fields encrypted and must leave them as they are).

Each batch is written together with the copy's progress, in one transaction: an interrupted
copy resumes where it stopped. Every written event extends a SHA-256 chain; at the end the
destination is read back and its chain and count must match what was written.

Compaction, the seed's example (three ``ProductAdded qty=1`` become one ``qty=3``):

>>> rules = CompactionRules()
>>> @rules.merge("ProductAdded")
... def add_up(first, second):
...     if first["productId"] != second["productId"]:
...         return None  # different products: keep both
...     return {**first, "quantity": first["quantity"] + second["quantity"]}

Only consecutive events of one stream merge; the merged event takes the place (id, timestamp,
metadata) of the last one it absorbs, since the sum holds only from then on.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cronica._validation import check_event_type
from cronica.errors import InvalidInputError, StoreError, StreamNotFoundError
from cronica.events import RecordedEvent, format_timestamp
from cronica.store.base import CopyProgress, EventStore

MergeRule = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None]
"""Takes the data of two consecutive events of one type and stream; returns the merged data,
or None to keep both."""

Progress = Callable[[int, int], None]
"""Called after each batch with (events read so far, events in the source)."""

DEFAULT_BATCH_SIZE = 1000


class CompactionRules:
    """Which events a copy merges (consecutive, same stream and type) or drops."""

    def __init__(self) -> None:
        self.merges: dict[str, MergeRule] = {}
        self.drops: set[str] = set()

    def merge(self, event_type: str) -> Callable[[MergeRule], MergeRule]:
        """Decorator: ``rule(first_data, second_data)`` merges two ``event_type`` events."""

        def decorate(rule: MergeRule) -> MergeRule:
            check_event_type(event_type)
            if event_type in self.merges or event_type in self.drops:
                raise InvalidInputError(f"{event_type} already has a compaction rule")
            self.merges[event_type] = rule
            return rule

        return decorate

    def drop(self, *event_types: str) -> None:
        """Leave events of these types out of the copy (their streams are renumbered)."""
        for event_type in event_types:
            check_event_type(event_type)
            if event_type in self.merges:
                raise InvalidInputError(f"{event_type} already has a compaction rule")
            self.drops.add(event_type)


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What a copy did, and whether the destination checked out."""

    source: str
    events_read: int
    events_written: int
    events_merged: int
    events_dropped: int
    checksum: str
    verified: bool
    resumed_after: int


def migrate_store(
    source: EventStore,
    destination: EventStore,
    *,
    source_name: str,
    compaction: CompactionRules | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy ``source`` into ``destination`` (empty, or holding an interrupted copy of the same
    ``source_name``); see the module docstring. Raises ``InvalidInputError`` for a destination
    that is the source or holds other events, ``StoreError`` when verification fails."""
    if source is destination:
        raise InvalidInputError("a store cannot be migrated into itself: copy into a new one")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an integer >= 1, not {batch_size!r}")
    check_source(source)
    done = destination.copy_progress(source_name)
    if done is None:
        if destination.status().events:
            raise InvalidInputError(
                "the destination holds events, and no interrupted copy of this source:"
                " migrate into an empty store"
            )
        done = CopyProgress(source_name, 0, 0, 0, "")
    plan = (
        _plan_compaction(source, compaction, done.last_position, destination)
        if compaction
        else _Plan()
    )
    # The events' personal data stays encrypted: its keys (and who was forgotten) go along.
    source.subject_keys().copy_to(destination.subject_keys())
    total = source.status().events
    resumed_after = done.last_position
    # A copy that has written nothing yet knows every stream starts at 0: no lookups.
    versions = _DestinationVersions(destination, empty=done.events_written == 0)
    read, written, checksum = done.events_read, done.events_written, done.checksum
    after = done.last_position
    while True:
        page = source.read_all(after=after, limit=batch_size)
        if not page:
            break
        batch: list[RecordedEvent] = []
        for event in page:
            read += 1
            if event.event_id in plan.skipped:
                continue
            copied = event._replace(
                version=versions.next(event.aggregate_id),
                data=plan.merged_data.get(event.event_id, event.data),
            )
            checksum = chain(checksum, copied)
            batch.append(copied)
        after = page[-1].position
        written += len(batch)
        destination.import_events(batch, CopyProgress(source_name, after, read, written, checksum))
        if progress is not None:
            progress(read, max(total, read))
    # Again at the end: keys made and subjects forgotten while the copy ran.
    source.subject_keys().copy_to(destination.subject_keys())
    verified = _verify(destination, written, checksum)
    return MigrationReport(
        source_name,
        read,
        written,
        plan.merged,
        plan.dropped,
        checksum,
        verified,
        resumed_after,
    )


def check_source(source: EventStore) -> None:
    """``InvalidInputError`` when the source's log does not serve all its events (archived
    streams)."""
    if source.has_archived_streams():
        raise InvalidInputError(
            "the source has archived streams, which its log does not serve: restore them"
            " first (cronica restore --batch ...)"
        )


def chain(previous: str, event: RecordedEvent) -> str:
    """The checksum chain extended by ``event`` (everything but its position)."""
    canonical = orjson.dumps(
        [
            str(event.event_id),
            event.event_type,
            event.aggregate_id,
            event.aggregate_type,
            event.version,
            format_timestamp(event.timestamp),
            event.data,
            event.metadata,
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(previous.encode() + canonical).hexdigest()


@dataclass
class _Plan:
    """What compaction does to the source: ids left out, and merged data by surviving id."""

    skipped: set[uuid.UUID] = field(default_factory=set)
    merged_data: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    merged: int = 0
    dropped: int = 0


def _plan_compaction(
    source: EventStore,
    rules: CompactionRules,
    copied_up_to: int = 0,
    destination: EventStore | None = None,
) -> _Plan:
    """A first pass over the source log: decide every merge and drop before writing.

    ``copied_up_to``: where an interrupted copy into ``destination`` stopped. What it wrote
    stays as written, so no event after it merges into one at or before it that the
    destination holds: the source may have grown since that copy planned, and the written
    event would be counted again in the merged one. (One it did not write, it had merged
    forward too: the same decision is taken again.)"""
    plan = _Plan()
    # Per stream, the last event kept so far: (id, type, data, position), a merge candidate.
    open_groups: dict[str, tuple[uuid.UUID, str, dict[str, Any], int]] = {}
    after = 0
    while page := source.read_all(after=after, limit=DEFAULT_BATCH_SIZE):
        after = page[-1].position
        for event in page:
            if event.event_type in rules.drops:
                plan.skipped.add(event.event_id)
                plan.dropped += 1
                continue
            previous = open_groups.get(event.aggregate_id)
            rule = rules.merges.get(event.event_type)
            if (
                previous is not None
                and rule is not None
                and previous[1] == event.event_type
                and not (
                    previous[3] <= copied_up_to < event.position
                    and destination is not None
                    and destination.read_event(previous[0]) is not None
                )
            ):
                merged = rule(dict(previous[2]), dict(event.data))
                if merged is not None:
                    if not isinstance(merged, dict):
                        raise InvalidInputError(
                            f"compaction rule for {event.event_type} returned"
                            f" {type(merged).__name__}, not a dict"
                        )
                    plan.skipped.add(previous[0])
                    plan.merged_data.pop(previous[0], None)
                    plan.merged_data[event.event_id] = merged
                    plan.merged += 1
                    open_groups[event.aggregate_id] = (
                        event.event_id, event.event_type, merged, event.position
                    )  # fmt: skip
                    continue
            open_groups[event.aggregate_id] = (
                event.event_id, event.event_type, event.data, event.position
            )  # fmt: skip
    return plan


class _DestinationVersions:
    """Each stream's next version in the destination (read once, then counted; not read at all
    when the destination is ``empty``)."""

    def __init__(self, destination: EventStore, *, empty: bool) -> None:
        self._destination = destination
        self._empty = empty
        self._versions: dict[str, int] = {}

    def next(self, aggregate_id: str) -> int:
        current = self._versions.get(aggregate_id)
        if current is None and self._empty:
            current = 0
        elif current is None:
            try:
                current = self._destination.stream_info(aggregate_id).version
            except StreamNotFoundError:
                current = 0
        self._versions[aggregate_id] = current + 1
        return current + 1


def _verify(destination: EventStore, expected_count: int, expected_checksum: str) -> bool:
    """Read the destination back: its count and checksum chain must match what was written."""
    checksum, count, after = "", 0, 0
    upcasters, destination.upcasters = destination.upcasters, None
    try:
        while page := destination.read_all(after=after, limit=DEFAULT_BATCH_SIZE):
            for event in page:
                checksum = chain(checksum, event)
            count += len(page)
            after = page[-1].position
    finally:
        destination.upcasters = upcasters
    if count != expected_count or checksum != expected_checksum:
        raise StoreError(
            f"the copy does not check out: {count} events read back, {expected_count} written;"
            f" checksum {checksum[:12]}..., expected {expected_checksum[:12]}..."
        )
    return True
