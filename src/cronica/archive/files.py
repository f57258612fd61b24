"""Archive files: events in Parquet (through pyarrow), one file per archive batch, beside a
JSON manifest; written so that a crash leaves either the whole file or none under its name.

A file holds whole streams, sorted by aggregate id and version, in row groups of
:data:`ROW_GROUP_EVENTS` events: reading one stream back reads only the row groups whose
statistics can hold it. ``data`` and ``metadata`` are kept as the JSON text the store holds
(personal data stays encrypted).
"""

from __future__ import annotations

import hashlib
import os
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
    finally:
        temporary.unlink(missing_ok=True)
    _fsync(path.parent)
    return digest


def read_events(path: Path, aggregate_ids: Sequence[str] | None = None) -> list[RecordedEvent]:
    """The events in an archive file (only those of ``aggregate_ids`` when given), by stream and
    version. ``ArchiveFileError`` when it is missing or unreadable."""
    pa, pq = _pyarrow()
    filters = None if aggregate_ids is None else [("aggregate_id", "in", list(aggregate_ids))]
    try:
        table = pq.read_table(path, filters=filters, schema=_schema())
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveFileError(f"archive file {path} cannot be read: {exc}") from exc
    columns = table.to_pydict()
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


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """The batch's manifest as JSON beside its file, written like the file (whole or not at
    all)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    _fsync(temporary)
    os.replace(temporary, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
