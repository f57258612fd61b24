"""Restoring archived streams (:meth:`Restoring.restore`, a part of :class:`Archiver`): every
archived part of every stream named, checked first, put back in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cronica import _json
from cronica._validation import MAX_REASON_LENGTH, check_text
from cronica.archive._index import (
    ArchiveChangedError,
    IndexAccess,
    check_stream_ids,
    chunks,
    remove_batch_files,
)
from cronica.archive.files import ArchiveFileError, check_file, read_parts
from cronica.errors import InvalidInputError, StoreError
from cronica.events import RecordedEvent
from cronica.readmodels.base import ReadModelTransaction
from cronica.readmodels.sqlite import empty_wal


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What :meth:`Archiver.restore` brought back into the hot table."""

    streams: int
    events: int
    batches_emptied: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """What one restore brings back: the index rows (aggregate id, batch, first and last
    version, events), the files of their batches, and the events read from them."""

    parts: set[tuple[str, str, int, int, int]]
    files: dict[str, Path]
    events: list[RecordedEvent]


RESTORE_SQL = {
    "sqlite": "INSERT INTO events (position, event_id, aggregate_id, aggregate_type, event_type,"
    " event_version, event_data, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO events (position, event_id, aggregate_id, aggregate_type,"
    " event_type, event_version, event_data, metadata, timestamp)"
    " VALUES (?, ?::uuid, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?)",
}
"""Putting restored events back, as each dialect's events table takes them."""


RESTORE_TRIES = 5
"""How many times a restore plans again when an archive of its streams commits meanwhile."""


class Restoring(IndexAccess):
    """The restoring half of :class:`cronica.archive.Archiver`."""

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
        for _ in range(RESTORE_TRIES):
            parts = self._archived_parts_of(self.db.query, ids)
            if not parts:
                return RestoreReport(0, 0, ())
            try:
                plan = self._plan_restore(parts)
            except (ArchiveFileError, ArchiveChangedError):
                if self._archived_parts_of(self.db.query, ids) != parts:
                    continue  # another restore took a file away meanwhile: plan again
                raise
            try:
                emptied = self._commit_restore(plan)
            except ArchiveChangedError:
                continue  # an archive of these streams committed meanwhile: plan again
            for name in emptied:
                remove_batch_files(plan.files[name], name)
            streams = len({part[0] for part in plan.parts})
            return RestoreReport(streams, len(plan.events), tuple(emptied))
        raise StoreError(
            f"the archive of these streams changed during each of {RESTORE_TRIES} tries to"
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
        ids = check_stream_ids(aggregate_ids)
        known: set[str] = set()
        for chunk in chunks(ids):
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

    def _plan_restore(self, parts: set[tuple[str, str, int, int, int]]) -> RestorePlan:
        """What restoring these index rows brings back, read and checked before anything is
        written: ``ArchiveFileError`` when a file is missing, damaged or not what the index
        says, ``ArchiveChangedError`` when a batch row is gone."""
        by_batch: dict[str, list[tuple[str, str, int, int, int]]] = {}
        for part in parts:
            by_batch.setdefault(part[1], []).append(part)
        files: dict[str, Path] = {}
        names = sorted(by_batch)
        for chunk in chunks(names):
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
                raise ArchiveChangedError(f"archive batch {name!r} is gone")
            for aggregate_id, _, first, last, count in by_batch[name]:
                if count != last - first + 1:
                    raise StoreError(
                        f"the archive index says batch {name!r} holds {count} events of"
                        f" {aggregate_id!r}, versions {first} to {last}: nothing restored"
                    )
            events += read_parts(files[name], {a: (f, t) for a, _, f, t, _ in by_batch[name]})
        return RestorePlan(parts, files, events)

    def _commit_restore(self, plan: RestorePlan) -> list[str]:
        """Insert the events and drop their index rows in one transaction, after checking that
        the index still holds exactly the planned parts (``ArchiveChangedError`` if not); the
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
            tx.executemany(RESTORE_SQL[self.db.dialect], rows)
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
        self, tx: ReadModelTransaction, plan: RestorePlan, ids: list[str]
    ) -> None:
        """Inside the restore's transaction (the archive lock held): ``ArchiveChangedError`` unless
        the index holds the parts the plan read, no more and no fewer."""
        if self._archived_parts_of(tx.query, ids) != plan.parts:
            raise ArchiveChangedError
