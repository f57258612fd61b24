"""Checking an archive (:meth:`cronica.archive.Archiver.verify`): files against checksums and
the index, manifests against the index, and archived versions against the hot table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from cronica.archive.files import check_file, read_parts
from cronica.errors import CronicaError
from cronica.readmodels.base import ReadModelDatabase
from cronica.store._archive_rows import ArchiveBatch


def find_problems(db: ReadModelDatabase, batches: Callable[[], list[ArchiveBatch]]) -> list[str]:
    """Problems with the archive, empty when all is well: a batch whose file is missing,
    does not match its checksum or lacks versions the index names; a manifest missing or
    at odds with the index; a stream whose archived versions are not its lowest ones
    (1 to n, none of them also in the hot table), which reads would get wrong. What an
    archive or a restore changes while it runs is not reported: a batch gone from the
    index by the end is left out, and each stream is checked in one snapshot."""
    rows = db.query(_STREAM_CHECK_SQL)
    by_batch: dict[str, dict[str, tuple[int, int]]] = {}
    for aggregate_id, name, first, last, _, _ in rows:
        by_batch.setdefault(str(name), {})[str(aggregate_id)] = (int(first), int(last))
    problems: dict[str, list[str]] = {}
    for batch in batches():
        found = problems.setdefault(batch.batch, [])
        try:
            check_file(Path(batch.file), batch.sha256)
            read_parts(Path(batch.file), by_batch.get(batch.batch, {}))
        except CronicaError as exc:
            found.append(f"{batch.batch}: {exc}")
        found += [f"{batch.batch}: {p}" for p in _manifest_problems(batch)]
    still = {b.batch for b in batches()} if any(problems.values()) else set(problems)
    return [p for name in problems if name in still for p in problems[name]] + (
        _misplaced_streams(rows)
    )


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
