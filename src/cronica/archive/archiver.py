"""Archiving (seed 1.7.5): whole streams moved out of the hot events table into Parquet files,
and back.

:meth:`Archiver.archive` takes the streams a policy picks (no event for ``idle_for``, or none
since ``before``), and in this order:

1. reads their events as stored (personal data stays encrypted) and writes them to
   ``<directory>/<batch>.parquet`` (under a temporary name, flushed, then renamed);
2. reads the file back and checks it holds exactly those events, and records its SHA-256 in
   ``<batch>.json``, the batch's manifest;
3. in one transaction: deletes the events from the hot table (the only way past the table's
   append-only trigger: a permit row that lives only inside this transaction), checking that it
   deletes exactly what was archived, and records the batch and its streams in the archive index
   (``cronica_archive_batches``, ``cronica_archived_streams``).

A crash before step 3 commits leaves the events where they were (and a file no index row names,
which ``orphans`` lists); after it, they are in the file. Nothing is lost either way.

Events keep their positions, ids and versions. Reading an archived stream works as before:
``read_stream`` finds the stream's archived versions in the index and reads them from the file.
:meth:`Archiver.restore` puts archived streams back into the hot table (after checking the file's
checksum), with their original positions.

What the hot table no longer holds, the global log's readers (``read_all``: projections, the
relay) no longer see: they saw these events when they were written. A projection rebuilt while
streams are archived does not see them; restore them first.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from cronica import _json
from cronica._validation import (
    MAX_REASON_LENGTH,
    check_aggregate_id,
    check_aggregate_type,
    check_several,
    check_text,
)
from cronica.archive.files import (
    ArchiveFileError,
    check_file,
    read_events,
    read_parts,
    write_events,
    write_manifest,
)
from cronica.errors import CronicaError, InvalidInputError, StoreError
from cronica.events import RecordedEvent
from cronica.readmodels.base import ReadModelTransaction
from cronica.readmodels.sqlite import empty_wal
from cronica.store._archive_rows import ArchiveBatch, ArchivedStream
from cronica.store.base import EventStore

__all__ = [
    "ARCHIVE_DIR_VARIABLE",
    "ArchivePolicy",
    "ArchiveReport",
    "Archiver",
    "RestoreReport",
    "default_directory",
]

log = logging.getLogger("cronica.archive")

ARCHIVE_DIR_VARIABLE = "CRONICA_ARCHIVE_DIR"
"""The environment variable naming the archive directory."""


@dataclass(frozen=True, slots=True)
class ArchivePolicy:
    """Which streams to archive: those with no event for ``idle_for``, or none since
    ``before`` (one of the two), of ``aggregate_types`` when given, at most ``max_streams``
    streams per batch (one transaction: on PostgreSQL the log's readers wait for it, on SQLite
    the writers)."""

    idle_for: timedelta | None = None
    before: datetime | None = None
    aggregate_types: tuple[str, ...] | None = None
    max_streams: int = 1_000

    def __post_init__(self) -> None:
        if (self.idle_for is None) == (self.before is None):
            raise InvalidInputError("an archive policy needs idle_for or before (one of them)")
        if self.idle_for is not None:
            if not isinstance(self.idle_for, timedelta):
                raise InvalidInputError(
                    f"idle_for must be a timedelta, not {type(self.idle_for).__name__}"
                )
            if self.idle_for < timedelta(0):
                raise InvalidInputError("idle_for must not be negative")
        if self.before is not None:
            if not isinstance(self.before, datetime):  # a date, a string
                raise InvalidInputError(
                    f"before must be a datetime, not {type(self.before).__name__}"
                )
            if self.before.tzinfo is None:
                raise InvalidInputError("before must be a timezone-aware datetime")
        if self.aggregate_types is not None:
            names = check_several(self.aggregate_types, "aggregate_types")
            if not names:  # an empty filter would pick every stream
                raise InvalidInputError("aggregate_types must name at least one type, or be None")
            object.__setattr__(
                self, "aggregate_types", tuple(check_aggregate_type(n) for n in names)
            )
        if type(self.max_streams) is not int or self.max_streams < 1:
            raise InvalidInputError(
                f"max_streams must be an integer of at least 1, not {self.max_streams!r}"
            )

    def cutoff(self, now: datetime) -> datetime:
        """The moment before which a stream's last event must lie (for a cutoff before year 1
        in UTC, the earliest moment: nothing is that old)."""
        try:
            if self.idle_for is not None:
                return (now - self.idle_for).astimezone(UTC)
            assert self.before is not None
            return self.before.astimezone(UTC)
        except OverflowError:  # beyond years 1-9999 in UTC
            if self.before is not None and self.before.year > 1:
                return datetime.max.replace(tzinfo=UTC)
            return datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """What one :meth:`Archiver.archive` moved (no batch when the policy picked nothing)."""

    batch: str | None
    file: str | None
    sha256: str | None
    streams: int
    events: int


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What :meth:`Archiver.restore` brought back into the hot table."""

    streams: int
    events: int
    batches_emptied: tuple[str, ...]


def default_directory(store: EventStore) -> Path:
    """Where archive files go: ``CRONICA_ARCHIVE_DIR`` when set; beside a SQLite store's file
    (``<file>.archive``); else ``./cronica-archive/<schema>``."""
    chosen = os.environ.get(ARCHIVE_DIR_VARIABLE)
    if chosen:
        return Path(chosen).resolve()
    path = getattr(store, "path", None)
    if store.backend_name == "sqlite" and path is not None:
        return Path(f"{path}.archive").resolve()
    return (Path("cronica-archive") / str(getattr(store, "schema", "public"))).resolve()


class Archiver:
    """Archives and restores whole streams of ``store`` (SQLite or PostgreSQL) to and from
    Parquet files in ``directory`` (default: :func:`default_directory`)."""

    def __init__(
        self,
        store: EventStore,
        directory: Path | str | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not store.supports_archiving:
            raise InvalidInputError(f"the {store.backend_name} store cannot archive streams")
        self.store = store
        self.db = store.side_database()
        try:
            self.directory = Path(directory).resolve() if directory else default_directory(store)
            if self.directory.exists() and not self.directory.is_dir():
                raise InvalidInputError(
                    f"the archive directory {self.directory} is not a directory"
                )
        except (OSError, ValueError) as exc:  # a NUL, a name too long
            raise InvalidInputError(
                f"not a usable archive directory: {directory!r}: {exc}"
            ) from exc
        self.clock = clock

    # -- archiving -------------------------------------------------------------------------------

    def candidates(self, policy: ArchivePolicy) -> list[str]:
        """The streams ``policy`` picks that still have events in the hot table."""
        cutoff = policy.cutoff(self.clock())
        sql = (
            "SELECT s.aggregate_id FROM cronica_streams s WHERE s.updated_at < ?"
            " AND EXISTS (SELECT 1 FROM events e WHERE e.aggregate_id = s.aggregate_id)"
        )
        params: list[Any] = [self._moment(cutoff)]
        if policy.aggregate_types:
            sql += f" AND s.aggregate_type IN ({', '.join('?' * len(policy.aggregate_types))})"
            params += list(policy.aggregate_types)
        sql += " ORDER BY s.aggregate_id LIMIT ?"
        params.append(policy.max_streams)
        return [str(row[0]) for row in self.db.query(sql, params)]

    def archive(self, policy: ArchivePolicy, *, actor: str, reason: str) -> ArchiveReport:
        """Move the streams ``policy`` picks into a new batch file; see the module docstring."""
        _check_words(actor, reason)
        for _ in range(_ARCHIVE_TRIES):
            streams = self.candidates(policy)
            if not streams:
                return ArchiveReport(None, None, None, 0, 0)
            try:
                return self.archive_streams(streams, actor=actor, reason=reason)
            except _ArchiveChangedError:
                continue  # another archiver or a restore took some of them: pick again
        raise StoreError(
            f"the streams this policy picks changed during each of {_ARCHIVE_TRIES} tries to"
            " archive them: nothing archived, try again"
        )

    def archive_streams(
        self, aggregate_ids: Sequence[str], *, actor: str, reason: str
    ) -> ArchiveReport:
        """Move the hot events of these streams into a new batch file. ``StoreError`` (and
        nothing moved, the batch's files removed) when another archive or a restore changed
        one of them in the meantime."""
        _check_words(actor, reason)
        ids = _check_stream_ids(aggregate_ids)
        events: list[RecordedEvent] = []
        parts: list[ArchivedStream] = []
        batch = f"{self.clock():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        for aggregate_id in ids:
            hot = self.store._read_stream(aggregate_id, 1, None, None, False, None)  # as stored
            if hot:
                events += hot
                parts.append(
                    ArchivedStream(aggregate_id, hot[0].version, hot[-1].version, len(hot))
                )
        if not events:
            return ArchiveReport(None, None, None, 0, 0)
        followed = self.followers_position()
        top = max(e.position for e in events)
        if followed is not None and top > followed:
            raise InvalidInputError(
                f"the log's followers have read up to position {followed}, these streams reach"
                f" {top}: archive streams idle long enough for every follower to have read them"
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission
            raise ArchiveFileError(
                f"cannot use {self.directory} as the archive directory: {exc}"
            ) from exc
        path = self.directory / f"{batch}.parquet"
        digest = write_events(path, events)
        # Verified before anything is removed: the file holds exactly what was read.
        if _canonical(read_events(path)) != _canonical(events):
            path.unlink(missing_ok=True)
            raise ArchiveFileError(f"archive file {path} does not read back as written")
        archived_at = self.clock()
        _write_manifest_beside(
            path,
            self.directory / f"{batch}.json",
            {
                "batch": batch,
                "file": path.name,
                "sha256": digest,
                "events": len(events),
                "streams": [
                    {"aggregateId": p.aggregate_id, "fromVersion": p.first_version,
                     "toVersion": p.last_version, "events": p.events}
                    for p in parts
                ],
                "positions": [min(e.position for e in events), top],
                "archivedAt": archived_at.isoformat(),
                "actor": actor,
                "reason": reason,
            },
        )  # fmt: skip
        try:
            self._commit_archive(
                ArchiveBatch(batch, str(path), digest, len(events), len(parts), archived_at,
                             actor, reason),
                parts,
                top,
            )  # fmt: skip
        except _ArchiveChangedError:  # rolled back for certain: no index row names these files
            _remove_batch_files(path, batch)
            raise
        return ArchiveReport(batch, str(path), digest, len(parts), len(events))

    def followers_position(self) -> int | None:
        """The lowest position every follower of the log registered in the store's database
        has read (projections, relays, in-process consumers), or None when none is there.
        Archiving takes no event above it: a follower would never see it."""
        lowest: int | None = None
        for table, column in (
            ("cronica_projections", "position"),
            ("cronica_relays", "position"),
            ("cronica_consumers", "position"),
        ):
            if self.db.table_exists(table):
                row = self.db.query(f"SELECT min({column}) FROM {table}")
                if row and row[0][0] is not None:
                    lowest = int(row[0][0]) if lowest is None else min(lowest, int(row[0][0]))
        return lowest

    def _commit_archive(
        self, batch: ArchiveBatch, parts: list[ArchivedStream], last_position: int
    ) -> None:
        with self.db.transaction() as tx:
            self._lock_archive(tx)  # no restore commits between these checks and the deletes
            if self.db.dialect == "postgresql":
                tx.execute("SET LOCAL synchronous_commit = on")
            tx.execute("INSERT INTO cronica_change_permits (operation) VALUES ('archive')")
            for part in parts:
                if tx.query(
                    "SELECT 1 FROM events WHERE aggregate_id = ? AND event_version < ? LIMIT 1",
                    [part.aggregate_id, part.first_version],
                ):  # a restore put older versions back meanwhile: archive the stream whole
                    raise _ArchiveChangedError(
                        f"stream {part.aggregate_id!r} changed while it was archived"
                        " (older versions came back): nothing removed"
                    )
                gone = tx.execute(
                    "DELETE FROM events WHERE aggregate_id = ? AND event_version BETWEEN ? AND ?",
                    [part.aggregate_id, part.first_version, part.last_version],
                )
                if gone != part.events:
                    raise _ArchiveChangedError(
                        f"stream {part.aggregate_id!r} changed while it was archived"
                        f" ({gone} events to remove, {part.events} archived): nothing removed"
                    )
            tx.execute("DELETE FROM cronica_change_permits")
            tx.execute(
                "INSERT INTO cronica_archive_batches (batch, file, sha256, events, streams,"
                " archived_at, actor, reason, last_position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [batch.batch, batch.file, batch.sha256, batch.events, batch.streams,
                 self._moment(batch.archived_at), batch.actor, batch.reason, last_position],
            )  # fmt: skip
            tx.executemany(
                "INSERT INTO cronica_archived_streams (aggregate_id, batch, first_version,"
                " last_version, events) VALUES (?, ?, ?, ?, ?)",
                [(p.aggregate_id, batch.batch, p.first_version, p.last_version, p.events)
                 for p in parts],
            )  # fmt: skip

    # -- restoring -------------------------------------------------------------------------------

    def restore(
        self, *, batch: str | None = None, aggregate_ids: Sequence[str] | None = None
    ) -> RestoreReport:
        """Put archived streams back into the hot table with their positions, whole: the
        streams of ``batch`` or ``aggregate_ids``, every archived part of each (from whatever
        batch), in one transaction. Every file is checked (checksum, and that it holds the
        versions the index names) before anything is written; a batch with nothing left
        archived loses its index row and its files. Naming a stream the store never had is an
        error; one with nothing archived is left as it is."""
        ids = self._streams_to_restore(batch, aggregate_ids)
        for _ in range(_RESTORE_TRIES):
            parts = self._archived_parts_of(self.db.query, ids)
            if not parts:
                return RestoreReport(0, 0, ())
            try:
                plan = self._plan_restore(parts)
            except (ArchiveFileError, _ArchiveChangedError):
                if self._archived_parts_of(self.db.query, ids) != parts:
                    continue  # another restore took a file away meanwhile: plan again
                raise
            try:
                emptied = self._commit_restore(plan)
            except _ArchiveChangedError:
                continue  # an archive of these streams committed meanwhile: plan again
            for name in emptied:
                _remove_batch_files(plan.files[name], name)
            streams = len({part[0] for part in plan.parts})
            return RestoreReport(streams, len(plan.events), tuple(emptied))
        raise StoreError(
            f"the archive of these streams changed during each of {_RESTORE_TRIES} tries to"
            " restore them: nothing restored, try again"
        )

    def _streams_to_restore(
        self, batch: str | None, aggregate_ids: Sequence[str] | None
    ) -> list[str]:
        if (batch is None) == (aggregate_ids is None):
            raise InvalidInputError("restore a batch or some streams (one of the two)")
        if batch is not None:
            check_text(batch, "the archive batch", MAX_REASON_LENGTH)
            members = self.db.query(
                "SELECT aggregate_id FROM cronica_archived_streams WHERE batch = ?", [batch]
            )
            if not members:
                raise InvalidInputError(f"no archive batch {batch!r}")
            return sorted({str(m[0]) for m in members})
        ids = _check_stream_ids(aggregate_ids)
        known: set[str] = set()
        for chunk in _chunks(ids):
            known |= {
                str(row[0])
                for row in self.db.query(
                    "SELECT aggregate_id FROM cronica_streams WHERE aggregate_id IN"
                    f" ({', '.join('?' * len(chunk))})",
                    chunk,
                )
            }
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InvalidInputError(f"no stream {unknown[0]!r} in this store: nothing restored")
        return ids

    def _archived_parts_of(
        self, query: Callable[..., list[tuple[Any, ...]]], ids: list[str]
    ) -> set[tuple[str, str, int, int, int]]:
        """The index rows (aggregate id, batch, first and last version, events) of these
        streams, read through ``query`` (the database's, or a transaction's)."""
        parts: set[tuple[str, str, int, int, int]] = set()
        for chunk in _chunks(ids):
            rows = query(
                "SELECT aggregate_id, batch, first_version, last_version, events FROM"
                f" cronica_archived_streams WHERE aggregate_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            parts |= {(str(a), str(b), int(f), int(t), int(n)) for a, b, f, t, n in rows}
        return parts

    def _plan_restore(self, parts: set[tuple[str, str, int, int, int]]) -> _RestorePlan:
        """What restoring these index rows brings back, read and checked before anything is
        written: ``ArchiveFileError`` when a file is missing, damaged or not what the index
        says, ``_ArchiveChangedError`` when a batch row is gone."""
        by_batch: dict[str, list[tuple[str, str, int, int, int]]] = {}
        for part in parts:
            by_batch.setdefault(part[1], []).append(part)
        files: dict[str, Path] = {}
        names = sorted(by_batch)
        for chunk in _chunks(names):
            for name, sha256, file in self.db.query(
                "SELECT batch, sha256, file FROM cronica_archive_batches WHERE batch IN"
                f" ({', '.join('?' * len(chunk))})",
                chunk,
            ):
                check_file(Path(str(file)), str(sha256))
                files[str(name)] = Path(str(file))
        events: list[RecordedEvent] = []
        for name in names:
            if name not in files:  # a restore emptied it since the parts were read
                raise _ArchiveChangedError(f"archive batch {name!r} is gone")
            for aggregate_id, _, first, last, count in by_batch[name]:
                if count != last - first + 1:
                    raise StoreError(
                        f"the archive index says batch {name!r} holds {count} events of"
                        f" {aggregate_id!r}, versions {first} to {last}: nothing restored"
                    )
            events += read_parts(files[name], {a: (f, t) for a, _, f, t, _ in by_batch[name]})
        return _RestorePlan(parts, files, events)

    def _commit_restore(self, plan: _RestorePlan) -> list[str]:
        """Insert the events and drop their index rows in one transaction, after checking that
        the index still holds exactly the planned parts (``_ArchiveChangedError`` if not); the
        batches with nothing archived left, whose rows went too and whose files may go."""
        rows = [
            (e.position, str(e.event_id), e.aggregate_id, e.aggregate_type, e.event_type,
             e.version, _json.dumps(e.data).decode(), _json.dumps(e.metadata).decode(),
             self._moment(e.timestamp))
            for e in plan.events
        ]  # fmt: skip
        ids = sorted({part[0] for part in plan.parts})
        emptied: list[str] = []
        with self.db.transaction() as tx:
            self._lock_archive(tx)
            if self.db.dialect == "postgresql":  # the files go once this is on disk
                tx.execute("SET LOCAL synchronous_commit = on")
            self._check_parts_unchanged(tx, plan, ids)
            tx.executemany(_RESTORE_SQL[self.db.dialect], rows)
            tx.executemany(
                "DELETE FROM cronica_archived_streams WHERE batch = ? AND aggregate_id = ?",
                [(batch, aggregate_id) for aggregate_id, batch, *_ in sorted(plan.parts)],
            )
            for batch in sorted(plan.files):
                if not tx.query(
                    "SELECT 1 FROM cronica_archived_streams WHERE batch = ? LIMIT 1", [batch]
                ):
                    tx.execute("DELETE FROM cronica_archive_batches WHERE batch = ?", [batch])
                    emptied.append(batch)
        if self.db.dialect == "sqlite" and not empty_wal(self.db):
            # WAL commits reach the disk at a checkpoint: until one is done, keep the files.
            return []
        return emptied

    def _check_parts_unchanged(
        self, tx: ReadModelTransaction, plan: _RestorePlan, ids: list[str]
    ) -> None:
        """Inside the restore's transaction (the archive lock held): ``_ArchiveChangedError`` unless
        the index holds the parts the plan read, no more and no fewer."""
        if self._archived_parts_of(tx.query, ids) != plan.parts:
            raise _ArchiveChangedError

    def _lock_archive(self, tx: ReadModelTransaction) -> None:
        """Archives and restores of one store commit one at a time: on SQLite the write
        transaction does it; on PostgreSQL (READ COMMITTED, where each statement sees what
        committed before it) a transaction-scoped advisory lock, so that what a commit checks
        stays true until it is done."""
        if self.db.dialect == "postgresql":
            tx.query(
                "SELECT pg_advisory_xact_lock(hashtext('cronica.archive:' || current_schema()))"
            )

    # -- looking -----------------------------------------------------------------------------------

    def batches(self) -> list[ArchiveBatch]:
        """The archive batches, oldest first."""
        rows = self.db.query(
            "SELECT batch, file, sha256, events, streams, archived_at, actor, reason"
            " FROM cronica_archive_batches ORDER BY batch"
        )
        return [
            ArchiveBatch(str(b), str(f), str(h), int(n), int(s), _as_datetime(at), str(a), str(r))
            for b, f, h, n, s, at, a, r in rows
        ]

    def verify(self) -> list[str]:
        """Problems with the archive, empty when all is well: a batch whose file is missing,
        does not match its checksum or lacks versions the index names; a manifest missing or
        at odds with the index; a stream whose archived versions are not its lowest ones
        (1 to n, none of them also in the hot table), which reads would get wrong. What an
        archive or a restore changes while it runs is not reported: a batch gone from the
        index by the end is left out, and each stream is checked in one snapshot."""
        rows = self.db.query(_STREAM_CHECK_SQL)
        by_batch: dict[str, dict[str, tuple[int, int]]] = {}
        for aggregate_id, name, first, last, _, _ in rows:
            by_batch.setdefault(str(name), {})[str(aggregate_id)] = (int(first), int(last))
        problems: dict[str, list[str]] = {}
        for batch in self.batches():
            found = problems.setdefault(batch.batch, [])
            try:
                check_file(Path(batch.file), batch.sha256)
                read_parts(Path(batch.file), by_batch.get(batch.batch, {}))
            except CronicaError as exc:
                found.append(f"{batch.batch}: {exc}")
            found += [f"{batch.batch}: {p}" for p in _manifest_problems(batch)]
        still = {b.batch for b in self.batches()} if any(problems.values()) else set(problems)
        return [p for name in problems if name in still for p in problems[name]] + (
            _misplaced_streams(rows)
        )

    def orphans(self) -> list[Path]:
        """Files in the directory that this store's index does not name: left by an archive
        that crashed before it committed or a restore that crashed before it deleted them, but
        also a batch another process is writing right now, or another store's files. Check
        before deleting any."""
        if not self.directory.is_dir():
            return []
        named = {Path(b.file).name for b in self.batches()}
        named |= {f"{Path(n).stem}.json" for n in named}
        return sorted(p for p in self.directory.iterdir() if p.name not in named)

    def _moment(self, moment: datetime) -> Any:
        """A moment as the store's tables hold it: ISO text on SQLite."""
        if self.db.dialect == "sqlite":
            from cronica.store.sqlite import _iso

            return _iso(moment)
        return moment


_STREAM_CHECK_SQL = (
    "SELECT s.aggregate_id, s.batch, s.first_version, s.last_version, s.events,"
    " (SELECT min(e.event_version) FROM events e WHERE e.aggregate_id = s.aggregate_id)"
    " FROM cronica_archived_streams s"
)
"""Every archived part with its stream's lowest hot version, in one statement (one snapshot,
so that a restore or an archive committing meanwhile is seen whole or not at all)."""


def _misplaced_streams(rows: Sequence[tuple[Any, ...]]) -> list[str]:
    """The streams whose archived parts (rows of :data:`_STREAM_CHECK_SQL`) are not versions 1
    to n exactly once each, or whose hot events include one of those versions."""
    spans: dict[str, list[tuple[int, int, int]]] = {}
    lowest_hot: dict[str, int | None] = {}
    for aggregate_id, _, first, last, count, hot in rows:
        spans.setdefault(str(aggregate_id), []).append((int(first), int(last), int(count)))
        lowest_hot[str(aggregate_id)] = None if hot is None else int(hot)
    problems = []
    for aggregate_id, found in sorted(spans.items()):
        found.sort()
        expected = 1
        for first, last, count in found:
            if first != expected or last < first or count != last - first + 1:
                problems.append(
                    f"stream {aggregate_id!r}: its archived parts are not versions 1 to"
                    f" {found[-1][1]} once each: {[(f, t) for f, t, _ in found]}"
                )
                break
            expected = last + 1
        top, hot = found[-1][1], lowest_hot[aggregate_id]
        if hot is not None and hot <= top:
            problems.append(
                f"stream {aggregate_id!r}: version {hot} is in the hot table, but versions up"
                f" to {top} are archived"
            )
    return problems


_RESTORE_SQL = {
    "sqlite": "INSERT INTO events (position, event_id, aggregate_id, aggregate_type, event_type,"
    " event_version, event_data, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO events (position, event_id, aggregate_id, aggregate_type,"
    " event_type, event_version, event_data, metadata, timestamp)"
    " VALUES (?, ?::uuid, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?)",
}
"""Putting restored events back, as each dialect's events table takes them."""


_RESTORE_TRIES = 5
"""How many times a restore plans again when an archive of its streams commits meanwhile."""

_ARCHIVE_TRIES = 5
"""How many times :meth:`Archiver.archive` picks again when another archiver took a stream."""


@dataclass(frozen=True, slots=True)
class _RestorePlan:
    """What one restore brings back: the index rows (aggregate id, batch, first and last
    version, events), the files of their batches, and the events read from them."""

    parts: set[tuple[str, str, int, int, int]]
    files: dict[str, Path]
    events: list[RecordedEvent]


class _ArchiveChangedError(StoreError):
    """Raised inside an archive's or a restore's transaction (so it rolls back) when another
    archive or restore changed the same streams since they were read."""


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    """``items`` in lists of ``size``: one ``IN (...)`` list each."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def _check_stream_ids(aggregate_ids: Any) -> list[str]:
    """The distinct stream ids of a sequence, sorted; ``InvalidInputError`` for a bare string
    (it would be taken letter by letter) or an id that is not valid."""
    ids = check_several(aggregate_ids, "the streams")
    return sorted({check_aggregate_id(aggregate_id) for aggregate_id in ids})


def _canonical(events: Sequence[RecordedEvent]) -> list[tuple[Any, ...]]:
    return sorted(
        (str(e.event_id), e.aggregate_id, e.version, e.position, e.event_type, e.aggregate_type,
         e.timestamp.astimezone(UTC), repr(e.data), repr(e.metadata))
        for e in events
    )  # fmt: skip


def _write_manifest_beside(file: Path, path: Path, manifest: dict[str, Any]) -> None:
    """Write a batch's manifest; if that fails, remove the batch's file (no index row names
    it yet) and raise."""
    try:
        write_manifest(path, manifest)
    except ArchiveFileError:
        _remove_batch_files(file, file.stem)
        raise


def _remove_batch_files(file: Path, batch: str) -> None:
    """Remove a batch's file and manifest that no index row names (any more); one that cannot
    be removed is left as an orphan, with a warning, not an error: what mattered is done."""
    for path in (file, file.with_name(f"{batch}.json")):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s (an orphan now, see orphans()): %s", path, exc)


def _manifest_problems(batch: ArchiveBatch) -> list[str]:
    """How a batch's manifest (``<batch>.json`` beside its file) disagrees with its index row."""
    path = Path(batch.file).with_name(f"{batch.batch}.json")
    try:
        manifest = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return [f"manifest {path} cannot be read: {exc}"]
    if not isinstance(manifest, dict):
        return [f"manifest {path} is not a JSON object"]
    expected = {"batch": batch.batch, "sha256": batch.sha256, "events": batch.events}
    return [
        f"manifest {path} says {key} {manifest.get(key)!r}, the index says {value!r}"
        for key, value in expected.items()
        if manifest.get(key) != value
    ]


def _check_words(actor: str, reason: str) -> None:
    check_text(actor, "the actor (who archives)", MAX_REASON_LENGTH)
    check_text(reason, "the reason for archiving", MAX_REASON_LENGTH)


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:  # pragma: no cover - written by this module
        raise CronicaError(f"unreadable archive time {value!r}") from exc
