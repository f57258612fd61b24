"""The event store port: one small base class, one module per backend.

A backend implements the ``_``-prefixed primitives; the public methods here validate input once
for every backend, so the three backends refuse exactly the same things with the same errors.
"""

from __future__ import annotations

import abc
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cronica._closing import Closing
from cronica._json import dump_object
from cronica._validation import (
    check_aggregate_id,
    check_aggregate_type,
    check_event_type,
    encodes,
)
from cronica.errors import CronicaError, EventTooLargeError, InvalidInputError, InvalidReadError
from cronica.events import (
    ANY,
    MAX_POSITION,
    MAX_VERSION,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamInfo,
    check_expected_version,
    check_schema_version,
)
from cronica.store._wakeup import HeadWatch, check_after, check_wait_arguments

if TYPE_CHECKING:
    from cronica.privacy.keys import SubjectKeys
    from cronica.readmodels.base import ReadModelDatabase
    from cronica.snapshots.base import SnapshotStore
    from cronica.store._archive_rows import ArchivedPart
    from cronica.upcasting import Upcasters

DEFAULT_MAX_EVENT_SIZE = 1024 * 1024
"""Default limit on an event's serialised data plus metadata, in bytes (1 MiB)."""

DEFAULT_AGGREGATE_TYPE = ""
"""The aggregate type of a stream created without one."""

MAX_EVENTS_PER_APPEND = 100_000
"""The most events one append may carry (PostgreSQL numbers up to 2**20 per transaction)."""


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One validated call to :meth:`EventStore.append`, as the backends receive it."""

    aggregate_id: str
    events: tuple[NewEvent, ...]
    expected: ExpectedVersion
    aggregate_type: str | None


AppendOutcome = AppendResult | CronicaError
"""Per request of a batch: its result, or the error to raise to its caller."""


def check_version_bound(version: Any, name: str = "version") -> None:
    """Refuse a stream version bound that is not None or an integer >= 0."""
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 0
    ):
        raise InvalidReadError(f"{name} must be an integer >= 0, not {version!r}")


def check_as_of(as_of: Any) -> None:
    """Refuse a moment that is not None or a timezone-aware datetime."""
    if as_of is not None and (not isinstance(as_of, datetime) or as_of.utcoffset() is None):
        raise InvalidReadError("as_of must be a timezone-aware datetime")


def check_imported_event(event: Any) -> None:
    """Refuse a recorded event that :meth:`EventStore.append` could not have written."""
    if not isinstance(event, RecordedEvent):
        raise InvalidInputError(f"import takes RecordedEvent objects, not {type(event).__name__}")
    if not isinstance(event.event_id, uuid.UUID):
        raise InvalidInputError(f"an event id must be a UUID, not {event.event_id!r}")
    check_aggregate_id(event.aggregate_id)
    check_aggregate_type(event.aggregate_type)
    check_event_type(event.event_type)
    if type(event.version) is not int or not 1 <= event.version <= MAX_VERSION:
        raise InvalidInputError(f"event {event.event_id}: version {event.version!r} is not valid")
    if not isinstance(event.timestamp, datetime) or event.timestamp.utcoffset() is None:
        raise InvalidInputError(f"event {event.event_id}: the timestamp needs a timezone")
    dump_object(event.data, "data")
    dump_object(event.metadata, "metadata")
    check_schema_version(event.metadata)


@dataclass(frozen=True, slots=True)
class HorizonHolder:
    """A transaction that keeps readers of the global log waiting (PostgreSQL only)."""

    pid: int
    transaction_started: datetime | None
    state: str
    query: str


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """A snapshot of the store's health, for ``cronica status`` and ``/health``.

    ``head_position`` is the highest position written; ``readable_position`` the highest a
    reader of the global log may see now. They differ while a transaction that started earlier is
    still open: ``waiting_on`` then names it.
    """

    backend: str
    schema_version: int
    streams: int
    events: int
    head_position: int
    readable_position: int
    waiting_on: list[HorizonHolder] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CopyProgress:
    """How far a copy from ``source`` into this store got (``cronica migrate``).

    ``last_position`` is the source position of the last event dealt with; ``checksum`` chains
    every event written so far (see :mod:`cronica.migration`).
    """

    source: str
    last_position: int
    events_read: int
    events_written: int
    checksum: str


class EventStore(Closing, abc.ABC):
    """An append-only log of events in streams, with one global order.

    Every backend keeps this contract (tested by one shared suite):

    - ``append`` is atomic: all the events or none, and an unmet expectation writes nothing.
    - Versions are dense per stream from 1; positions strictly increase along the global log.
    - ``read_all`` never skips an event: a reader following it from its last position sees every
      event exactly once, also when transactions commit in another order than they started.
    - Appends are idempotent by event id.
    - A follower of the global log can block in ``wait_for_events`` instead of polling
      ``read_all``: it wakes when an event above its position commits.
    """

    backend_name: str = "abstract"

    def __init__(
        self, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE, upcasters: Upcasters | None = None
    ) -> None:
        if type(max_event_size) is not int or max_event_size <= 0:
            raise InvalidInputError(
                f"max_event_size must be a positive integer (bytes), not {max_event_size!r}"
            )
        self.max_event_size = max_event_size
        self.upcasters = upcasters
        self._watch = HeadWatch()
        self._keys_lock = threading.Lock()
        self._subject_keys: SubjectKeys | None = None
        self._side_db: ReadModelDatabase | None = None

    @property
    def upcasters(self) -> Upcasters | None:
        """The upcaster chains every read applies (``read_stream``, ``read_all``), or None.

        Setting it checks the chains (``UpcastingError`` for a gap)."""
        return self._upcasters

    @upcasters.setter
    def upcasters(self, upcasters: Upcasters | None) -> None:
        if upcasters is not None:
            upcasters.check()
        self._upcasters = upcasters if upcasters else None

    def snapshot_store(self) -> SnapshotStore:
        """A snapshot store in the same database, apart from the events."""
        raise NotImplementedError(f"{type(self).__name__} keeps no snapshots")

    def subject_keys(self) -> SubjectKeys:
        """The data keys of the subjects whose personal data the events carry
        (:mod:`cronica.privacy`): by default in a table of the store's own database, opened on
        first use and closed with the store; :meth:`use_subject_keys` puts them elsewhere."""
        if self._subject_keys is None:
            from cronica.privacy.keys import SubjectKeys

            keys = SubjectKeys(self.side_database())
            with self._keys_lock:
                if self._subject_keys is None:
                    self._subject_keys = keys
        return self._subject_keys

    # -- archiving (cronica.archive) -----------------------------------------------------------

    supports_archiving: bool = False
    """Whether streams can be archived to cold files (the SQL backends)."""

    def _archived_parts(self, aggregate_id: str) -> list[ArchivedPart]:
        """The archived versions of the stream and their files (none by default)."""
        return []

    def has_archived_streams(self) -> bool:
        """Whether some streams are archived (cronica.archive): then the global log
        (``read_all``) no longer serves all the events, and what needs them all refuses."""
        return self.supports_archiving and bool(
            self.side_database().query("SELECT 1 FROM cronica_archive_batches LIMIT 1")
        )

    def side_database(self) -> ReadModelDatabase:
        """A connection to the store's own database for cronica's other tables (subject keys,
        the archive index): opened on first use, closed with the store."""
        with self._keys_lock:
            if self._side_db is None:
                from cronica.readmodels import read_models_for

                self._side_db = read_models_for(self)
            return self._side_db

    def use_subject_keys(self, keys: SubjectKeys) -> None:
        """Keep the subjects' keys in ``keys`` (another database, say) instead of the store's
        own; its database stays the caller's to close."""
        with self._keys_lock:
            self._subject_keys = keys

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        aggregate_id: str,
        events: Iterable[NewEvent],
        expected_version: ExpectedVersion | str = ANY,
        aggregate_type: str | None = None,
    ) -> AppendResult:
        """Append ``events`` to the stream ``aggregate_id``, all or none.

        ``expected_version`` is an exact version (0: the stream must not exist), or ``ANY``,
        ``NO_STREAM``, ``EXISTS``. Raises ``ConcurrencyError`` (naming expected and actual
        versions) when it does not hold, ``DuplicateEventError`` when an event id is already
        stored with other content, ``AggregateTypeMismatchError`` when ``aggregate_type`` differs
        from the stream's, and an ``InvalidInputError`` for bad input; nothing is written then.

        Retrying a batch that was already written (same event ids, same content, same stream)
        writes nothing and returns the original result.
        """
        request = self.prepare_append(aggregate_id, events, expected_version, aggregate_type)
        outcome = self._submit(request)
        if isinstance(outcome, CronicaError):
            raise outcome
        return outcome

    def prepare_append(
        self,
        aggregate_id: str,
        events: Iterable[NewEvent],
        expected_version: ExpectedVersion | str = ANY,
        aggregate_type: str | None = None,
    ) -> AppendRequest:
        """Validate an append's arguments; raise ``InvalidInputError`` subclasses."""
        check_aggregate_id(aggregate_id)
        expected = check_expected_version(expected_version)
        if aggregate_type is not None:
            check_aggregate_type(aggregate_type)
        if isinstance(events, NewEvent) or not isinstance(events, Iterable):
            raise InvalidInputError(
                f"append takes a sequence of events, not {type(events).__name__}"
            )
        batch = tuple(events)
        if not batch:
            raise InvalidInputError("append needs at least one event")
        if len(batch) > MAX_EVENTS_PER_APPEND:
            raise InvalidInputError(
                f"append carries {len(batch)} events, over the limit of {MAX_EVENTS_PER_APPEND}"
            )
        seen: set[uuid.UUID] = set()
        for event in batch:
            if not isinstance(event, NewEvent):
                raise InvalidInputError(
                    f"append takes NewEvent objects, not {type(event).__name__}"
                )
            if event.size > self.max_event_size:
                raise EventTooLargeError(event.size, self.max_event_size)
            if event.event_id in seen:
                raise InvalidInputError(f"event id {event.event_id} appears twice in one append")
            seen.add(event.event_id)
        return AppendRequest(aggregate_id, batch, expected, aggregate_type)

    def _committed(self, position: int) -> None:
        """Called right after a commit whose highest position is ``position``: wakes this
        store object's waiters (backends may tell other processes too)."""
        self._watch.advance(position)

    def _committed_outcomes(self, outcomes: Sequence[AppendOutcome]) -> None:
        """:meth:`_committed` for a committed batch (a retry's old position changes nothing)."""
        top = max((o.position for o in outcomes if isinstance(o, AppendResult)), default=0)
        if top:
            self._committed(top)

    def _submit(self, request: AppendRequest) -> AppendOutcome:
        """Run one request; SQL backends override this to share transactions (group commit)."""
        return self._append_batch([request])[0]

    @abc.abstractmethod
    def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        """Apply ``requests`` in order in one transaction and return one outcome per request.

        A request that fails (conflict, duplicate id) writes nothing and leaves the others
        untouched; later requests see the writes of earlier ones. After the commit it calls
        :meth:`_committed_outcomes`, so waiters wake.
        """

    # -- copying from another store ---------------------------------------------------------

    def import_events(self, events: Sequence[RecordedEvent], progress: CopyProgress) -> None:
        """Write events recorded by another store as they are (ids, types, versions,
        timestamps, data, metadata; positions are this store's) and record ``progress``, in one
        transaction. Each stream's versions must continue its stored version densely, else
        ``InvalidInputError`` and nothing is written. For copies (``cronica migrate``), not for
        applications: it checks no expected version and no idempotency. Each event is checked
        as an append checks a new one (ids, types, data): a bad one is ``InvalidInputError``
        (or a subclass) and nothing is written.
        """
        chosen = list(events)
        for event in chosen:
            check_imported_event(event)
        self._import_events(chosen, progress)

    def _import_events(self, events: list[RecordedEvent], progress: CopyProgress) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot import events")

    def copy_progress(self, source: str) -> CopyProgress | None:
        """The progress recorded by :meth:`import_events` for ``source``, or None."""
        raise NotImplementedError(f"{type(self).__name__} cannot import events")

    # -- reading -----------------------------------------------------------------------------

    def read_stream(
        self,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backward: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """The stream's events with ``from_version <= version <= to_version``, by version.

        ``as_of`` keeps only events recorded at or before that moment (the stream as it was
        then). ``backward`` reads from the newest down; ``limit`` caps the count. An unknown stream
        reads as empty.
        """
        check_aggregate_id(aggregate_id)
        if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
            raise InvalidReadError(f"from_version must be an integer >= 1, not {from_version!r}")
        check_version_bound(to_version, "to_version")
        _check_limit(limit)
        check_as_of(as_of)
        if limit == 0 or (to_version is not None and to_version < from_version):
            return []
        if as_of is not None:
            try:
                as_of = as_of.astimezone(UTC)
            except OverflowError:  # beyond year 1 or 9999 in UTC: before or after everything
                if as_of.year == 1:
                    return []
                as_of = None
        if from_version > MAX_VERSION:
            return []
        # Beyond what a database integer holds, a bound is the same as no bound.
        to_version = None if to_version is not None and to_version >= MAX_VERSION else to_version
        limit = None if limit is not None and limit >= MAX_POSITION else limit
        events, archived = self._read_stream_flagged(
            aggregate_id, from_version, to_version, as_of, backward, limit
        )
        if archived and _may_lack_archived(events, from_version, backward, limit):
            events = self._with_archived(
                aggregate_id, events, from_version, to_version, as_of, backward, limit
            )
        return events if self._upcasters is None else self._upcasters.upcast_all(events)

    def _read_stream_flagged(
        self,
        aggregate_id: str,
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backward: bool,
        limit: int | None,
    ) -> tuple[list[RecordedEvent], bool]:
        """:meth:`_read_stream`, and whether the stream has archived parts, read together (the
        backends that archive do it in one statement)."""
        events = self._read_stream(aggregate_id, from_version, to_version, as_of, backward, limit)
        return events, False

    def _with_archived(
        self,
        aggregate_id: str,
        hot: list[RecordedEvent],
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backward: bool,
        limit: int | None,
    ) -> list[RecordedEvent]:
        """The hot events of a read merged with the stream's archived ones (read from their
        Parquet files), so that reading an archived stream works as before."""
        top = MAX_VERSION if to_version is None else to_version
        every_part = self._archived_parts(aggregate_id)
        again = (aggregate_id, from_version, to_version, as_of, backward, limit)
        if not every_part:
            # A restore committed between the two reads: the hot table holds what it brought.
            return self._read_stream(*again)
        parts = [p for p in every_part if p.last_version >= from_version and p.first_version <= top]
        if not parts:
            return hot
        from pathlib import Path

        from cronica.archive.files import ArchiveFileError, check_file_once, read_part

        merged = {e.version: e for e in hot}
        try:
            archived: list[RecordedEvent] = []
            for p in parts:  # the file checked against its checksum once per process
                check_file_once(Path(p.file), p.sha256)
                archived += read_part(Path(p.file), aggregate_id, p.first_version, p.last_version)
        except ArchiveFileError:
            fresh = self._read_stream(*again)  # a restore took the file away meanwhile?
            if _may_lack_archived(fresh, from_version, backward, limit):
                raise
            return fresh
        for event in archived:
            if from_version <= event.version <= top and (as_of is None or event.timestamp <= as_of):
                merged.setdefault(event.version, event)
        events = [merged[v] for v in sorted(merged, reverse=backward)]
        return events if limit is None else events[:limit]

    @abc.abstractmethod
    def _read_stream(
        self,
        aggregate_id: str,
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backward: bool,
        limit: int | None,
    ) -> list[RecordedEvent]: ...

    def read_all(
        self,
        after: int = 0,
        limit: int | None = None,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """Events with ``position > after`` in position order, optionally filtered by type.

        Never skips: an event that commits later always gets a position above every event this
        call could already return, so following the log from the last returned position sees
        every event exactly once.
        """
        check_after(after)
        _check_limit(limit)
        types = _check_names(event_types, check_event_type, "event_types")
        agg_types = _check_names(aggregate_types, check_aggregate_type, "aggregate_types")
        if limit == 0 or types == () or agg_types == () or after >= MAX_POSITION:
            return []
        limit = None if limit is not None and limit >= MAX_POSITION else limit
        events = self._read_all(after, limit, types, agg_types)
        return events if self._upcasters is None else self._upcasters.upcast_all(events)

    @abc.abstractmethod
    def _read_all(
        self,
        after: int,
        limit: int | None,
        event_types: tuple[str, ...] | None,
        aggregate_types: tuple[str, ...] | None,
    ) -> list[RecordedEvent]: ...

    def read_recent(
        self, limit: int = 100, event_types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        """The newest ``limit`` events of the log (of ``event_types`` when given), newest first:
        a look at what happened lately (the console's log page). Only events a reader of the
        log may see (on PostgreSQL, below the readable bound): ``read_all(after=`` the newest
        one's position ``)`` then follows on without missing any. Not a cursor itself."""
        if limit is None:
            raise InvalidReadError("read_recent needs a limit (an integer >= 0)")
        _check_limit(limit)
        types = _check_names(event_types, check_event_type, "event_types")
        limit = min(limit, MAX_POSITION)  # beyond what a database integer holds: no bound
        events = self._read_recent(limit, types)
        return events if self._upcasters is None else self._upcasters.upcast_all(events)

    def _read_recent(self, limit: int, event_types: tuple[str, ...] | None) -> list[RecordedEvent]:
        raise NotImplementedError(f"{type(self).__name__} cannot read backwards")

    def read_event(self, event_id: uuid.UUID | str) -> RecordedEvent | None:
        """The event with this id, or None when no event has it (``InvalidInputError`` for an
        id that is not a UUID). A lookup by the store's unique index on event ids: how a
        command that derives its event ids from an idempotency key finds out it ran before."""
        try:
            key = event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id))
        except ValueError as exc:
            raise InvalidInputError(f"event id {event_id!r} is not a UUID") from exc
        event = self._read_event(key)
        if event is None or self._upcasters is None:
            return event
        return self._upcasters.upcast_all([event])[0]

    @abc.abstractmethod
    def _read_event(self, event_id: uuid.UUID) -> RecordedEvent | None: ...

    def stream_info(self, aggregate_id: str) -> StreamInfo:
        """The stream's type, version, and first and last write; ``StreamNotFoundError`` if none."""
        check_aggregate_id(aggregate_id)
        return self._stream_info(aggregate_id)

    @abc.abstractmethod
    def _stream_info(self, aggregate_id: str) -> StreamInfo: ...

    def list_streams(
        self, aggregate_type: str | None = None, after: str | None = None, limit: int | None = 100
    ) -> list[StreamInfo]:
        """Streams ordered by aggregate id, after the id ``after`` (a cursor), at most ``limit``
        (None: all)."""
        if aggregate_type is not None:
            check_aggregate_type(aggregate_type)
        if after is not None and not (
            isinstance(after, str) and encodes(after) and "\x00" not in after
        ):
            raise InvalidReadError("after must be an aggregate id (a string without NUL)")
        _check_limit(limit)
        limit = MAX_POSITION if limit is None else min(limit, MAX_POSITION)
        return self._list_streams(aggregate_type, after, limit)

    @abc.abstractmethod
    def _list_streams(
        self, aggregate_type: str | None, after: str | None, limit: int
    ) -> list[StreamInfo]: ...

    # -- following the global log ------------------------------------------------------------

    def head_position(self) -> int:
        """The highest position of a committed event; 0 for an empty store.

        One index lookup, never a count. On PostgreSQL it may be above what ``read_all`` returns
        for a moment (an older transaction still running holds readers back; see
        :class:`StoreStatus`).
        """
        return self._head_position()

    @abc.abstractmethod
    def _head_position(self) -> int: ...

    def count_events(self, after: int = 0) -> int:
        """How many committed events have ``position > after``: a follower's lag, in events.

        ``after`` is checked as ``read_all`` checks it (``InvalidReadError``). The count walks the
        position index from ``after``, so it costs in proportion to the lag.
        """
        check_after(after)
        if after >= MAX_POSITION:
            return 0
        return self._count_events(after)

    @abc.abstractmethod
    def _count_events(self, after: int) -> int: ...

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Block until an event with ``position > after`` may be readable, or ``timeout``
        seconds pass; True in the first case (at once if one is already there), False on
        timeout.

        A True may be spurious, so follow it with ``read_all(after)``; a wake-up is never missed:
        an event committed after the call started ends the wait

        - at once when it was appended through this store object (any backend);
        - within the backend's ``poll_interval`` on SQLite (another process or store object on
          the same file: the file's data version is checked, only while someone waits);
        - on PostgreSQL as soon as the ``NOTIFY`` its writer sends after the commit arrives,
          and otherwise (a writer that died between commit and notify, or another program)
          within the fallback ``poll_interval``.

        On PostgreSQL True means such an event has *committed*; ``read_all`` returns it once no
        older transaction is still running. ``after`` and ``timeout`` (seconds, >= 0) that are not
        numbers raise ``InvalidReadError``; waiting on a closed store, or while it closes, raises
        ``StoreError``. Waiting never busy-polls the database.
        """
        seconds = check_wait_arguments(after, timeout)
        return self._wait_for_events(after, seconds)

    def _wait_for_events(self, after: int, timeout: float, *, look: bool = True) -> bool:
        """``wait_for_events`` after validation. ``look=False`` skips the first look at the
        database (the async wrapper waits in slices and looks on the first only)."""
        return self._watch.wait(after, timeout)

    def interrupt_waiters(self) -> None:
        """End every wait in :meth:`wait_for_events` on this store object now; they return
        True (a spurious wake, which their callers handle). For shutting down followers."""
        self._watch.interrupt()

    @abc.abstractmethod
    def status(self) -> StoreStatus:
        """Counts, head and readable positions, and what readers wait on."""

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Release connections; the store cannot be used afterwards. Threads blocked in
        ``wait_for_events`` raise ``StoreError``."""
        self._watch.close()
        with self._keys_lock:
            side, self._side_db, self._subject_keys = self._side_db, None, None
        if side is not None:
            side.close()


def _may_lack_archived(
    events: list[RecordedEvent], from_version: int, backward: bool, limit: int | None
) -> bool:
    """Whether a read of a stream may be missing archived events: it found none, or its
    oldest event comes after ``from_version`` (and a limit did not stop it first)."""
    if not events:
        return True
    if not backward:
        return events[0].version > from_version
    return (limit is None or len(events) < limit) and events[-1].version > from_version


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidReadError(f"limit must be an integer >= 0 or None, not {limit!r}")


def _check_names(
    names: Sequence[str] | None, check: Callable[[Any], str], what: str
) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        raise InvalidReadError(f"{what} must be a sequence of names, not a single string")
    if not isinstance(names, Iterable):
        raise InvalidReadError(f"{what} must be a sequence of names, not {type(names).__name__}")
    return tuple(check(name) for name in names)


def check_import(
    events: Sequence[RecordedEvent],
    stored_versions: dict[str, int],
    stored_ids: Callable[[list[uuid.UUID]], list[uuid.UUID]],
) -> None:
    """Raise ``InvalidInputError`` unless ``events`` continue each stream's stored version
    (``stored_versions``; absent means a new stream) and bring no stored event id."""
    heads = dict(stored_versions)
    for event in events:
        expected = heads.get(event.aggregate_id, 0) + 1
        if event.version != expected:
            raise InvalidInputError(
                f"imported event {event.event_id} is version {event.version} of"
                f" {event.aggregate_id!r}, which is at version {expected - 1}"
            )
        heads[event.aggregate_id] = event.version
    clashes = stored_ids([event.event_id for event in events])
    if clashes:
        raise InvalidInputError(f"imported event id {clashes[0]} is already stored")
