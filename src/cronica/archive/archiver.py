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

import os
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronica import _json
from cronica._validation import MAX_REASON_LENGTH, check_text
from cronica.archive.files import (
    ArchiveFileError,
    check_file,
    read_events,
    write_events,
    write_manifest,
)
from cronica.errors import CronicaError, InvalidInputError, StoreError
from cronica.events import RecordedEvent
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

    def cutoff(self, now: datetime) -> datetime:
        if (self.idle_for is None) == (self.before is None):
            raise InvalidInputError("an archive policy needs idle_for or before (one of them)")
        if self.idle_for is not None:
            if self.idle_for < timedelta(0):
                raise InvalidInputError("idle_for must not be negative")
            return now - self.idle_for
        assert self.before is not None
        if self.before.tzinfo is None:
            raise InvalidInputError("before must be a timezone-aware datetime")
        return self.before


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
        self.directory = Path(directory).resolve() if directory else default_directory(store)
        self.clock = clock

    # -- archiving -------------------------------------------------------------------------------

    def candidates(self, policy: ArchivePolicy) -> list[str]:
        """The streams ``policy`` picks that still have events in the hot table."""
        cutoff = policy.cutoff(self.clock())
        if policy.max_streams < 1:
            raise InvalidInputError("max_streams must be at least 1")
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
        streams = self.candidates(policy)
        if not streams:
            return ArchiveReport(None, None, None, 0, 0)
        return self.archive_streams(streams, actor=actor, reason=reason)

    def archive_streams(
        self, aggregate_ids: Sequence[str], *, actor: str, reason: str
    ) -> ArchiveReport:
        """Move the hot events of these streams into a new batch file."""
        _check_words(actor, reason)
        events: list[RecordedEvent] = []
        parts: list[ArchivedStream] = []
        batch = f"{self.clock():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        for aggregate_id in sorted(set(aggregate_ids)):
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
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{batch}.parquet"
        digest = write_events(path, events)
        # Verified before anything is removed: the file holds exactly what was read.
        if _canonical(read_events(path)) != _canonical(events):
            path.unlink(missing_ok=True)
            raise ArchiveFileError(f"archive file {path} does not read back as written")
        archived_at = self.clock()
        write_manifest(
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
        self._commit_archive(
            ArchiveBatch(batch, str(path), digest, len(events), len(parts), archived_at, actor,
                         reason),
            parts,
            top,
        )  # fmt: skip
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
            if self.db.dialect == "postgresql":
                tx.execute("SET LOCAL synchronous_commit = on")
            tx.execute("INSERT INTO cronica_change_permits (operation) VALUES ('archive')")
            for part in parts:
                if tx.query(
                    "SELECT 1 FROM events WHERE aggregate_id = ? AND event_version < ? LIMIT 1",
                    [part.aggregate_id, part.first_version],
                ):  # a restore put older versions back meanwhile: archive the stream whole
                    raise StoreError(
                        f"stream {part.aggregate_id!r} changed while it was archived"
                        " (older versions came back): nothing removed"
                    )
                gone = tx.execute(
                    "DELETE FROM events WHERE aggregate_id = ? AND event_version BETWEEN ? AND ?",
                    [part.aggregate_id, part.first_version, part.last_version],
                )
                if gone != part.events:
                    raise StoreError(
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
        batch). Each file's checksum is checked first; a batch with nothing left archived loses
        its index row and its files."""
        if (batch is None) == (aggregate_ids is None):
            raise InvalidInputError("restore a batch or some streams (one of the two)")
        if batch is not None:
            members = self.db.query(
                "SELECT aggregate_id FROM cronica_archived_streams WHERE batch = ?", [batch]
            )
            if not members:
                raise InvalidInputError(f"no archive batch {batch!r}")
            aggregate_ids = [str(m[0]) for m in members]
        assert aggregate_ids is not None
        # A stream comes back whole (all its archived parts, whatever batch holds them): the
        # archived versions of a stream stay its lowest ones, which is what reads rely on.
        ids = sorted(set(aggregate_ids))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows += self.db.query(
                _PARTS_SQL + f" WHERE s.aggregate_id IN ({', '.join('?' * len(chunk))})", chunk
            )
        by_batch: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_batch.setdefault(str(row[1]), []).append(row)
        restored_streams = restored_events = 0
        emptied: list[str] = []
        for name, parts in sorted(by_batch.items()):
            file, sha256 = Path(str(parts[0][5])), str(parts[0][6])
            check_file(file, sha256)
            wanted = {str(p[0]): (int(p[2]), int(p[3]), int(p[4])) for p in parts}
            events = [
                e
                for e in read_events(file, list(wanted))
                if wanted[e.aggregate_id][0] <= e.version <= wanted[e.aggregate_id][1]
            ]
            counts = Counter(e.aggregate_id for e in events)
            for aggregate_id, (_, _, count) in wanted.items():
                found = counts[aggregate_id]
                if found != count:
                    raise ArchiveFileError(
                        f"archive file {file} holds {found} events of {aggregate_id!r},"
                        f" the index says {count}: nothing restored"
                    )
            if self._commit_restore(name, events, list(wanted)):
                emptied.append(name)
                file.unlink(missing_ok=True)
                (file.parent / f"{name}.json").unlink(missing_ok=True)
            restored_streams += len(wanted)
            restored_events += len(events)
        return RestoreReport(restored_streams, restored_events, tuple(emptied))

    def _commit_restore(self, batch: str, events: list[RecordedEvent], ids: list[str]) -> bool:
        """Insert the events and drop their index rows in one transaction; True when the batch
        has nothing archived left (its row is gone too)."""
        rows = [
            (e.position, str(e.event_id), e.aggregate_id, e.aggregate_type, e.event_type,
             e.version, _json.dumps(e.data).decode(), _json.dumps(e.metadata).decode(),
             self._moment(e.timestamp))
            for e in events
        ]  # fmt: skip
        with self.db.transaction() as tx:
            if self.db.dialect == "postgresql":  # the files go once this is on disk
                tx.execute("SET LOCAL synchronous_commit = on")
            tx.executemany(_RESTORE_SQL[self.db.dialect], rows)
            tx.executemany(
                "DELETE FROM cronica_archived_streams WHERE batch = ? AND aggregate_id = ?",
                [(batch, aggregate_id) for aggregate_id in ids],
            )
            left = tx.query("SELECT 1 FROM cronica_archived_streams WHERE batch = ? LIMIT 1",
                            [batch])  # fmt: skip
            if not left:
                tx.execute("DELETE FROM cronica_archive_batches WHERE batch = ?", [batch])
        if self.db.dialect == "sqlite" and not empty_wal(self.db):
            # WAL commits reach the disk at a checkpoint: until one is done, keep the files.
            return False
        return not left

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
        """Problems with the archive: a batch whose file is missing or does not match its
        checksum. Empty when all is well."""
        problems = []
        for batch in self.batches():
            try:
                check_file(Path(batch.file), batch.sha256)
            except ArchiveFileError as exc:
                problems.append(f"{batch.batch}: {exc}")
        return problems

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


_PARTS_SQL = (
    "SELECT s.aggregate_id, s.batch, s.first_version, s.last_version, s.events, b.file, b.sha256"
    " FROM cronica_archived_streams s JOIN cronica_archive_batches b ON b.batch = s.batch"
)


_RESTORE_SQL = {
    "sqlite": "INSERT INTO events (position, event_id, aggregate_id, aggregate_type, event_type,"
    " event_version, event_data, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO events (position, event_id, aggregate_id, aggregate_type,"
    " event_type, event_version, event_data, metadata, timestamp)"
    " VALUES (?, ?::uuid, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?)",
}
"""Putting restored events back, as each dialect's events table takes them."""


def _canonical(events: Sequence[RecordedEvent]) -> list[tuple[Any, ...]]:
    return sorted(
        (str(e.event_id), e.aggregate_id, e.version, e.position, e.event_type, e.aggregate_type,
         e.timestamp.astimezone(UTC), repr(e.data), repr(e.metadata))
        for e in events
    )  # fmt: skip


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
