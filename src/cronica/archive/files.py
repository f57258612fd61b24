"""Archive files: events in Parquet (through pyarrow), one file per archive batch, beside a
JSON manifest; written so that a crash leaves either the whole file or none under its name.

A file holds whole streams, sorted by aggregate id and version, in row groups of
:data:`ROW_GROUP_EVENTS` events: reading one stream back reads only the row groups whose
statistics can hold it (once the file has been checked against its checksum, which
:func:`check_file_once` does once per process). ``data`` and ``metadata`` are kept as the JSON
text the store holds (personal data stays encrypted).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from cronica.errors import CronicaError, InvalidInputError
from cronica.events import RecordedEvent

ROW_GROUP_EVENTS = 10_000


class ArchiveFileError(CronicaError):
    """An archive file that is missing, unreadable or not what its checksum says."""


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
        raise InvalidInputError("archiving needs pyarrow: pip install 'cronica[archive]'") from exc
    return pa, pq


def _schema() -> Any:
    pa, _ = _pyarrow()
    return pa.schema(
        [
            ("aggregate_id", pa.string()),
            ("version", pa.int32()),
            ("position", pa.int64()),
            ("event_id", pa.string()),
            ("aggregate_type", pa.string()),
            ("event_type", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("data", pa.string()),
            ("metadata", pa.string()),
        ]
    )


def write_events(path: Path, events: Sequence[RecordedEvent]) -> str:
    """Write ``events`` (sorted by aggregate id and version) to ``path`` and return the file's
    SHA-256. The file is written under a temporary name, flushed to disk, then renamed: a
    crash leaves no half-written file under ``path``."""
    pa, pq = _pyarrow()
    ordered = sorted(events, key=lambda e: (e.aggregate_id, e.version))
    table = pa.table(
        {
            "aggregate_id": [e.aggregate_id for e in ordered],
            "version": [e.version for e in ordered],
            "position": [e.position for e in ordered],
            "event_id": [str(e.event_id) for e in ordered],
            "aggregate_type": [e.aggregate_type for e in ordered],
            "event_type": [e.event_type for e in ordered],
            "timestamp": [e.timestamp for e in ordered],
            "data": [orjson.dumps(e.data).decode() for e in ordered],
            "metadata": [orjson.dumps(e.metadata).decode() for e in ordered],
        },
        schema=_schema(),
    )
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, temporary, row_group_size=ROW_GROUP_EVENTS, compression="zstd")
        digest = sha256_of(temporary)
        _fsync(temporary)
        os.replace(temporary, path)
        _fsync(path.parent)
    except (OSError, pa.ArrowException) as exc:  # no space, a read-only or missing directory
        raise ArchiveFileError(f"archive file {path} cannot be written: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    return digest


def read_events(path: Path, aggregate_ids: Sequence[str] | None = None) -> list[RecordedEvent]:
    """The events in an archive file (only those of ``aggregate_ids`` when given), by stream and
    version. ``ArchiveFileError`` when it is missing or unreadable."""
    pa, pq = _pyarrow()
    filters = None if aggregate_ids is None else [("aggregate_id", "in", list(aggregate_ids))]
    try:
        columns = pq.read_table(path, filters=filters, schema=_schema()).to_pydict()
    except (OSError, ValueError, OverflowError, pa.ArrowException) as exc:  # a time past 9999
        raise ArchiveFileError(f"archive file {path} cannot be read: {exc}") from exc
    try:
        events = _recorded(columns)
    except (ValueError, TypeError, KeyError) as exc:  # a column of the wrong shape, bad JSON
        raise ArchiveFileError(f"archive file {path} holds an unreadable event: {exc}") from exc
    for event in events:
        if not _well_formed(event):
            raise ArchiveFileError(f"archive file {path} holds a malformed event: {event!r}")
    return events


def _well_formed(event: RecordedEvent) -> bool:
    return (
        type(event.aggregate_id) is str
        and type(event.event_type) is str
        and type(event.aggregate_type) is str
        and type(event.version) is int
        and type(event.position) is int
        and event.timestamp is not None
        and type(event.data) is dict
        and type(event.metadata) is dict
    )


def _recorded(columns: dict[str, list[Any]]) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            uuid.UUID(event_id),
            event_type,
            aggregate_id,
            aggregate_type,
            version,
            position,
            timestamp,
            orjson.loads(data),
            orjson.loads(metadata),
        )
        for (
            aggregate_id, version, position, event_id, aggregate_type, event_type, timestamp,
            data, metadata,
        ) in zip(
            columns["aggregate_id"], columns["version"], columns["position"],
            columns["event_id"], columns["aggregate_type"], columns["event_type"],
            columns["timestamp"], columns["data"], columns["metadata"], strict=True,
        )
    ]  # fmt: skip


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ArchiveFileError(f"archive file {path} cannot be read: {exc}") from exc
    return digest.hexdigest()


def check_file(path: Path, sha256: str) -> None:
    """``ArchiveFileError`` unless ``path`` exists and has the checksum ``sha256``."""
    found = sha256_of(path)
    if found != sha256:
        raise ArchiveFileError(f"archive file {path} has checksum {found}, expected {sha256}")


_checked: dict[str, tuple[tuple[int, ...], str]] = {}
_checked_lock = threading.Lock()


def check_file_once(path: Path, sha256: str) -> None:
    """:func:`check_file`, done once per process for each file as it is now (same device,
    inode, size, modification and change times): what a transparent read of an archived
    stream does before it trusts the file. (The file is read again by path afterwards: one
    swapped in between is caught only by the check of the versions it holds.)"""
    try:
        stat = path.stat()
    except OSError as exc:
        raise ArchiveFileError(f"archive file {path} cannot be read: {exc}") from exc
    # The change time cannot be set back (the modification time can: touch -r, rsync -t).
    seen = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    with _checked_lock:
        if _checked.get(str(path)) == (seen, sha256):
            return
    check_file(path, sha256)
    with _checked_lock:
        _checked[str(path)] = (seen, sha256)


def read_part(
    path: Path, aggregate_id: str, first_version: int, last_version: int
) -> list[RecordedEvent]:
    """Versions ``first_version`` to ``last_version`` of one stream from an archive file, by
    version: ``ArchiveFileError`` unless the file holds each of them exactly once."""
    return read_parts(path, {aggregate_id: (first_version, last_version)})


def read_parts(path: Path, parts: dict[str, tuple[int, int]]) -> list[RecordedEvent]:
    """The versions ``parts`` names (aggregate id: first and last version) from one archive
    file, read in one pass, by stream and version: ``ArchiveFileError`` unless the file holds
    each of them exactly once."""
    if not parts:
        return []
    by_stream: dict[str, list[RecordedEvent]] = {aggregate_id: [] for aggregate_id in parts}
    for event in read_events(path, list(parts)):
        wanted = parts.get(event.aggregate_id)
        if wanted is not None and wanted[0] <= event.version <= wanted[1]:
            by_stream[event.aggregate_id].append(event)
    found: list[RecordedEvent] = []
    for aggregate_id, (first, last) in sorted(parts.items()):
        events = sorted(by_stream[aggregate_id], key=lambda e: e.version)
        if [e.version for e in events] != list(range(first, last + 1)):
            raise ArchiveFileError(
                f"archive file {path} does not hold versions {first} to {last} of"
                f" {aggregate_id!r} (the index says it does): it holds {len(events)} of them"
            )
        found += events
    return found


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """The batch's manifest as JSON beside its file, written like the file (whole or not at
    all)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        _fsync(temporary)
        os.replace(temporary, path)
        _fsync(path.parent)
    except OSError as exc:
        raise ArchiveFileError(f"archive manifest {path} cannot be written: {exc}") from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
