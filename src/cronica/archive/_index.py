"""What archiving and restoring share: the lock they commit under, the archive index's rows
read in chunks, moments as the store's tables hold them, and the removal of batch files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cronica._validation import check_aggregate_id, check_several
from cronica.errors import StoreError
from cronica.readmodels.base import ReadModelDatabase, ReadModelTransaction

log = logging.getLogger("cronica.archive")


class ArchiveChangedError(StoreError):
    """Raised inside an archive's or a restore's transaction (so it rolls back) when another
    archive or restore changed the same streams since they were read."""


def chunks(items: list[str], size: int = 500) -> list[list[str]]:
    """``items`` in lists of ``size``: one ``IN (...)`` list each."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def check_stream_ids(aggregate_ids: Any) -> list[str]:
    """The distinct stream ids of a sequence, sorted; ``InvalidInputError`` for a bare string
    (it would be taken letter by letter) or an id that is not valid."""
    ids = check_several(aggregate_ids, "the streams")
    return sorted({check_aggregate_id(aggregate_id) for aggregate_id in ids})


def remove_batch_files(file: Path, batch: str) -> None:
    """Remove a batch's file and manifest that no index row names (any more); one that cannot
    be removed is left as an orphan, with a warning, not an error: what mattered is done."""
    for path in (file, file.with_name(f"{batch}.json")):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s (an orphan now, see orphans()): %s", path, exc)


class IndexAccess:
    """The archive index of one store, through ``db`` (the store's own database)."""

    db: ReadModelDatabase

    def _archived_parts_of(
        self, query: Callable[..., list[tuple[Any, ...]]], ids: list[str]
    ) -> set[tuple[str, str, int, int, int]]:
        """The index rows (aggregate id, batch, first and last version, events) of these
        streams, read through ``query`` (the database's, or a transaction's)."""
        parts: set[tuple[str, str, int, int, int]] = set()
        for chunk in chunks(ids):
            rows = query(
                "SELECT aggregate_id, batch, first_version, last_version, events FROM"
                f" cronica_archived_streams WHERE aggregate_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            parts |= {(str(a), str(b), int(f), int(t), int(n)) for a, b, f, t, n in rows}
        return parts

    def _lock_archive(self, tx: ReadModelTransaction) -> None:
        """Archives and restores of one store commit one at a time: on SQLite the write
        transaction does it; on PostgreSQL (READ COMMITTED, where each statement sees what
        committed before it) a transaction-scoped advisory lock, so that what a commit checks
        stays true until it is done."""
        if self.db.dialect == "postgresql":
            tx.query(
                "SELECT pg_advisory_xact_lock(hashtext('cronica.archive:' || current_schema()))"
            )

    def _moment(self, moment: datetime) -> Any:
        """A moment as the store's tables hold it: ISO text on SQLite."""
        if self.db.dialect == "sqlite":
            from cronica.store.sqlite import _iso

            return _iso(moment)
        return moment
