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
:meth:`Archiver.restore` (:mod:`cronica.archive.restore`) puts archived streams back into the
hot table, with their original positions, in one transaction after checking every file;
:meth:`Archiver.verify` (:mod:`cronica.archive.checks`) looks for what is wrong.

What the hot table no longer holds, the global log's readers (``read_all``: projections, the
relay) no longer see: they saw these events when they were written. A projection rebuilt while
streams are archived does not see them; restore them first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronica._validation import (
    MAX_REASON_LENGTH,
    check_aggregate_type,
    check_several,
    check_text,
)
from cronica.archive._index import (
    ArchiveChangedError,
    check_stream_ids,
    remove_batch_files,
)
from cronica.archive.checks import find_problems
from cronica.archive.files import (
    ArchiveFileError,
    read_events,
    write_events,
    write_manifest,
)
from cronica.archive.restore import RestoreReport, Restoring
from cronica.errors import CronicaError, InvalidInputError, StoreError
from cronica.events import RecordedEvent
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


class Archiver(Restoring):
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
            except ArchiveChangedError:
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
        ids = check_stream_ids(aggregate_ids)
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
        except ArchiveChangedError:  # rolled back for certain: no index row names these files
            remove_batch_files(path, batch)
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
                    raise ArchiveChangedError(
                        f"stream {part.aggregate_id!r} changed while it was archived"
                        " (older versions came back): nothing removed"
                    )
                gone = tx.execute(
                    "DELETE FROM events WHERE aggregate_id = ? AND event_version BETWEEN ? AND ?",
                    [part.aggregate_id, part.first_version, part.last_version],
                )
                if gone != part.events:
                    raise ArchiveChangedError(
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
        """Problems with the archive, empty when all is well: see
        :func:`cronica.archive.checks.find_problems`."""
        return find_problems(self.db, self.batches)

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


_ARCHIVE_TRIES = 5
"""How many times :meth:`Archiver.archive` picks again when another archiver took a stream."""


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
        remove_batch_files(file, file.stem)
        raise


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
