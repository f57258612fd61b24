"""The SQLite backend: the embedded default, one file, no server.

Why it is simple: SQLite has one writer per database. Appends run in ``BEGIN IMMEDIATE``
transactions, which take the write lock up front (no deadlock-prone lock upgrade), so positions
(an ``AUTOINCREMENT`` rowid, never reused) are drawn in commit order and a reader of the global
log can never miss an event that commits later. WAL mode lets readers run beside the writer.

Durability by default: ``synchronous=FULL`` in WAL mode, so an acknowledged append survives a
power loss. ``synchronous="normal"`` is the opt-in weaker mode (survives a process crash, may lose
the last commits on power loss).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cronica import _json
from cronica.errors import (
    AppendOnlyViolationError,
    CronicaError,
    StoreError,
    StoreUnavailableError,
    StreamNotFoundError,
)
from cronica.events import RecordedEvent, StreamInfo
from cronica.snapshots.sqlite import SQLiteSnapshotStore
from cronica.store._append_logic import StoredIdentity, apply_request
from cronica.store._archive_rows import ARCHIVED_MARK, ArchivedPart
from cronica.store._group_commit import GroupCommitter
from cronica.store._wakeup import check_poll_interval
from cronica.store.base import (
    DEFAULT_MAX_EVENT_SIZE,
    AppendOutcome,
    AppendRequest,
    CopyProgress,
    EventStore,
    StoreStatus,
    check_import,
)
from cronica.store.sqlite_schema import SCHEMA_VERSION, migrate
from cronica.upcasting import Upcasters

_ID_CHUNK = 500
_HEAD_SQL = "SELECT coalesce(max(position), 0) FROM events"
DEFAULT_POLL_INTERVAL = 0.01
"""Seconds between two looks for other processes' commits while a thread waits for events."""
_INSERT_EVENT = (
    "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, event_version,"
    " event_data, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_EVENT_COLUMNS = (
    "event_id, event_type, aggregate_id, aggregate_type, event_version, position, timestamp, "
    "event_data, metadata"
)


_ARCHIVED_MARK_SQL = (
    f"SELECT NULL, NULL, NULL, NULL, {ARCHIVED_MARK}, NULL, NULL, NULL, NULL"
    " FROM cronica_archived_streams WHERE aggregate_id = ? LIMIT 1"
)
_ARCHIVED_PARTS_SQL = (
    "SELECT b.file, b.sha256, s.first_version, s.last_version"
    " FROM cronica_archived_streams s"
    " JOIN cronica_archive_batches b ON b.batch = s.batch WHERE s.aggregate_id = ?"
    " ORDER BY s.first_version"
)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def _translate(exc: sqlite3.Error) -> CronicaError:
    message = str(exc)
    if "append-only" in message:
        return AppendOnlyViolationError(message)
    if isinstance(exc, sqlite3.OperationalError) and (
        "locked" in message or "unable to open" in message or "busy" in message
    ):
        return StoreUnavailableError(f"SQLite: {message}")
    return StoreError(f"SQLite: {message}")


_new_object = object.__new__
_set_attribute = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def _uuid(text: str) -> uuid.UUID:
    """``uuid.UUID(text)`` for the canonical form the store writes, at a third of the cost
    (as psycopg's loader does): reads of the log decode one per event."""
    value = _new_object(uuid.UUID)
    _set_attribute(value, "int", int(text.replace("-", ""), 16))
    _set_attribute(value, "is_safe", _UNKNOWN_SAFETY)
    return value


def _decode(row: tuple[Any, ...]) -> RecordedEvent:
    return RecordedEvent(
        _uuid(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        datetime.fromisoformat(row[6]),
        _json.loads(row[7]),
        _json.loads(row[8]),
    )


class SQLiteEventStore(EventStore):
    """An event store in one SQLite file, created on first use.

    >>> store = SQLiteEventStore("events.db")  # doctest: +SKIP

    ``wait_for_events`` wakes at once for appends through this object; commits by other
    processes (or other store objects on the file) are found by checking the file's data version
    (``PRAGMA data_version``, one cheap call on one connection) every ``poll_interval`` seconds,
    only while some thread waits.
    """

    backend_name = "sqlite"
    supports_archiving = True

    def __init__(
        self,
        path: str | Path,
        *,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        synchronous: Literal["full", "normal"] = "full",
        group_commit: bool = True,
        busy_timeout_ms: int = 30_000,
        upcasters: Upcasters | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__(max_event_size=max_event_size, upcasters=upcasters)
        self.poll_interval = check_poll_interval(poll_interval)
        self.path = Path(path)
        self._synchronous = {"full": "FULL", "normal": "NORMAL"}[synchronous]
        self._busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._snapshots: SQLiteSnapshotStore | None = None
        self._snapshots_lock = threading.Lock()
        try:
            self._writer = self._open()
            self._writer_lock = threading.Lock()
            self._use_wal(self._writer)
            migrate(self._writer)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._all_readers: list[sqlite3.Connection] = []
        # The connection that watches the file's data version for wait_for_events (lazy).
        self._watcher: sqlite3.Connection | None = None
        self._watcher_lock = threading.Lock()
        self._data_version: int | None = None
        self._committer: GroupCommitter[AppendRequest, AppendOutcome] | None = (
            GroupCommitter(self._append_batch) if group_commit else None
        )

    def _import_events(self, events: list[RecordedEvent], progress: CopyProgress) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        with self._writer_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._import_in_transaction(conn, events, progress)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                head = conn.execute(_HEAD_SQL).fetchone()[0]
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
        self._committed(head)

    @staticmethod
    def _import_in_transaction(
        conn: sqlite3.Connection, events: list[RecordedEvent], progress: CopyProgress
    ) -> None:
        streams = sorted({event.aggregate_id for event in events})
        heads: dict[str, int] = {}
        for start in range(0, len(streams), _ID_CHUNK):
            chunk = streams[start : start + _ID_CHUNK]
            heads.update(
                conn.execute(
                    "SELECT aggregate_id, version FROM cronica_streams"
                    f" WHERE aggregate_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            )

        def stored_ids(ids: list[uuid.UUID]) -> list[uuid.UUID]:
            return [found.event_id for found in _SQLiteTransaction(conn).find_events(ids)]

        check_import(events, heads, stored_ids)
        conn.executemany(
            _INSERT_EVENT,
            [
                (
                    str(e.event_id),
                    e.aggregate_id,
                    e.aggregate_type,
                    e.event_type,
                    e.version,
                    _json.dumps(e.data).decode(),
                    _json.dumps(e.metadata).decode(),
                    _iso(e.timestamp),
                )
                for e in events
            ],
        )
        conn.executemany(
            "INSERT INTO cronica_streams (aggregate_id, aggregate_type, version, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (aggregate_id) DO UPDATE"
            " SET version = excluded.version, updated_at = excluded.updated_at",
            [
                (e.aggregate_id, e.aggregate_type, e.version, _iso(e.timestamp), _iso(e.timestamp))
                for e in events
            ],
        )
        conn.execute(
            "INSERT OR REPLACE INTO cronica_copies (source, last_position, events_read,"
            " events_written, checksum, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                progress.source,
                progress.last_position,
                progress.events_read,
                progress.events_written,
                progress.checksum,
                _iso(datetime.now(UTC)),
            ),
        )

    def copy_progress(self, source: str) -> CopyProgress | None:
        with self._reader() as conn:
            row = conn.execute(
                "SELECT source, last_position, events_read, events_written, checksum"
                " FROM cronica_copies WHERE source = ?",
                (source,),
            ).fetchone()
        return None if row is None else CopyProgress(*row)

    def snapshot_store(self) -> SQLiteSnapshotStore:
        """Snapshots in this store's file, on a connection of their own; closed with the store."""
        with self._snapshots_lock:
            if self._closed:
                raise StoreError("the store is closed")
            if self._snapshots is None:
                self._snapshots = SQLiteSnapshotStore(
                    self.path, busy_timeout_ms=self._busy_timeout_ms
                )
            return self._snapshots

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL mode (persistent). The switch needs a moment alone with the
        file and SQLite does not wait for it (no busy handler), so retry while others open it."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode == "wal":
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            else:
                if time.monotonic() > deadline:
                    raise StoreError(f"SQLite: could not switch {self.path} to WAL mode ({mode})")
            time.sleep(0.005)

    def _archived_parts(self, aggregate_id: str) -> list[ArchivedPart]:
        with self._reader() as conn:
            rows = conn.execute(_ARCHIVED_PARTS_SQL, (aggregate_id,)).fetchall()
        return [ArchivedPart(str(f), str(h), int(a), int(b)) for f, h, a, b in rows]

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            try:
                conn = self._open()
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            self._all_readers.append(conn)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        finally:
            self._readers.put(conn)

    # -- writing -----------------------------------------------------------------------------

    def _submit(self, request: AppendRequest) -> AppendOutcome:
        if self._committer is None:
            return self._append_batch([request])[0]
        return self._committer.submit(request)

    def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        outcomes = self._write_batch(requests)
        self._committed_outcomes(outcomes)
        return outcomes

    def _write_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        if self._closed:
            raise StoreError("the store is closed")
        with self._writer_lock:
            if len(requests) == 1:
                # Alone, a request may skip the event-id lookup: a stored id fails the unique
                # index on write, rolls the transaction back, and the request runs again below.
                try:
                    return self._run_transaction(requests, optimistic=True)
                except sqlite3.IntegrityError as exc:
                    if "event_id" not in str(exc):
                        return [_translate(exc)]
                except sqlite3.Error as exc:
                    return [_translate(exc)]
            try:
                return self._run_transaction(requests)
            except sqlite3.Error as exc:
                if len(requests) == 1:
                    return [_translate(exc)]
            # One request broke the shared transaction: run each alone, so only it fails.
            outcomes: list[AppendOutcome] = []
            for request in requests:
                try:
                    outcomes.extend(self._run_transaction([request]))
                except sqlite3.Error as exc:
                    outcomes.append(_translate(exc))
            return outcomes

    def _run_transaction(
        self, requests: Sequence[AppendRequest], *, optimistic: bool = False
    ) -> list[AppendOutcome]:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            tx = _SQLiteTransaction(conn)
            now = datetime.now(UTC)
            outcomes = [
                apply_request(tx, request, now, optimistic=optimistic) for request in requests
            ]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    # -- reading -----------------------------------------------------------------------------

    def _read_stream(
        self,
        aggregate_id: str,
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backward: bool,
        limit: int | None,
    ) -> list[RecordedEvent]:
        return self._read_stream_flagged(
            aggregate_id, from_version, to_version, as_of, backward, limit, look=False
        )[0]

    def _read_stream_flagged(
        self,
        aggregate_id: str,
        from_version: int,
        to_version: int | None,
        as_of: datetime | None,
        backward: bool,
        limit: int | None,
        *,
        look: bool = True,
    ) -> tuple[list[RecordedEvent], bool]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE aggregate_id = ? AND event_version >= ?"
        params: list[Any] = [aggregate_id, from_version]
        if to_version is not None:
            sql += " AND event_version <= ?"
            params.append(to_version)
        if as_of is not None:
            sql += " AND timestamp <= ?"
            params.append(_iso(as_of))
        sql += " ORDER BY event_version DESC" if backward else " ORDER BY event_version"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        if look:  # in the same statement (one snapshot): whether the stream has archived parts
            sql = f"SELECT * FROM ({sql}) UNION ALL SELECT * FROM ({_ARCHIVED_MARK_SQL})"
            params.append(aggregate_id)
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        archived = bool(rows) and rows[-1][4] == ARCHIVED_MARK
        if archived:
            rows.pop()
        return [_decode(row) for row in rows], archived

    def _read_all(
        self,
        after: int,
        limit: int | None,
        event_types: tuple[str, ...] | None,
        aggregate_types: tuple[str, ...] | None,
    ) -> list[RecordedEvent]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > ?"
        params: list[Any] = [after]
        if event_types is not None:
            sql += f" AND event_type IN ({','.join('?' * len(event_types))})"
            params.extend(event_types)
        if aggregate_types is not None:
            sql += f" AND aggregate_type IN ({','.join('?' * len(aggregate_types))})"
            params.extend(aggregate_types)
        sql += " ORDER BY position"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_decode(row) for row in rows]

    def _read_recent(self, limit: int, event_types: tuple[str, ...] | None) -> list[RecordedEvent]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        params: list[Any] = []
        if event_types is not None:
            sql += f" WHERE event_type IN ({','.join('?' * len(event_types))})"
            params.extend(event_types)
        sql += " ORDER BY position DESC LIMIT ?"
        params.append(limit)
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_decode(row) for row in rows]

    def _read_event(self, event_id: uuid.UUID) -> RecordedEvent | None:
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE event_id = ?", (str(event_id),)
            ).fetchone()
        return None if row is None else _decode(row)

    def _stream_info(self, aggregate_id: str) -> StreamInfo:
        with self._reader() as conn:
            row = conn.execute(
                "SELECT aggregate_id, aggregate_type, version, created_at, updated_at "
                "FROM cronica_streams WHERE aggregate_id = ?",
                (aggregate_id,),
            ).fetchone()
        if row is None:
            raise StreamNotFoundError(aggregate_id)
        return _stream_info(row)

    def _list_streams(
        self, aggregate_type: str | None, after: str | None, limit: int
    ) -> list[StreamInfo]:
        sql = (
            "SELECT aggregate_id, aggregate_type, version, created_at, updated_at "
            "FROM cronica_streams WHERE aggregate_id > ?"
        )
        params: list[Any] = ["" if after is None else after]
        if aggregate_type is not None:
            sql += " AND aggregate_type = ?"
            params.append(aggregate_type)
        sql += " ORDER BY aggregate_id LIMIT ?"
        params.append(limit)
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_stream_info(row) for row in rows]

    def status(self) -> StoreStatus:
        with self._reader() as conn:
            streams = conn.execute("SELECT count(*) FROM cronica_streams").fetchone()[0]
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            head = conn.execute(_HEAD_SQL).fetchone()[0]
        return StoreStatus(self.backend_name, SCHEMA_VERSION, streams, events, head, head)

    # -- following the global log ------------------------------------------------------------

    def _head_position(self) -> int:
        with self._reader() as conn:
            head: int = conn.execute(_HEAD_SQL).fetchone()[0]
        return head

    def _count_events(self, after: int) -> int:
        with self._reader() as conn:
            count: int = conn.execute(
                "SELECT count(*) FROM events WHERE position > ?", (after,)
            ).fetchone()[0]
        return count

    def _wait_for_events(self, after: int, timeout: float, *, look: bool = True) -> bool:
        if self._closed:
            raise StoreError("the store is closed")
        return self._watch.wait(after, timeout, self._poll_head, self.poll_interval, look=look)

    def _poll_head(self, force: bool) -> int | None:
        """The head position, read on the watching connection; None when the file's data
        version shows no commit by another connection since the last look (unless ``force``)."""
        with self._watcher_lock:
            if self._closed:
                raise StoreError("the store is closed")
            try:
                if self._watcher is None:
                    self._watcher = self._open()
                conn = self._watcher
                # Read the version first: a commit after this read changes it for the next look.
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if not force and version == self._data_version:
                    return None
                self._data_version = version
                head: int = conn.execute(_HEAD_SQL).fetchone()[0]
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
        return head

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        super().close()
        with self._writer_lock:
            self._writer.close()
        for conn in self._all_readers:
            conn.close()
        with self._watcher_lock:
            if self._watcher is not None:
                self._watcher.close()
        with self._snapshots_lock:
            if self._snapshots is not None:
                self._snapshots.close()


def _stream_info(row: tuple[Any, ...]) -> StreamInfo:
    return StreamInfo(
        row[0], row[1], row[2], datetime.fromisoformat(row[3]), datetime.fromisoformat(row[4])
    )


class _SQLiteTransaction:
    """The primitives of ``_append_logic.AppendTransaction`` on the writer connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def find_events(self, event_ids: list[uuid.UUID]) -> list[StoredIdentity]:
        found: list[StoredIdentity] = []
        for start in range(0, len(event_ids), _ID_CHUNK):
            chunk = [str(event_id) for event_id in event_ids[start : start + _ID_CHUNK]]
            rows = self._conn.execute(
                "SELECT event_id, aggregate_id, event_version, position, event_type, event_data,"
                f" metadata FROM events WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.extend(
                StoredIdentity(
                    uuid.UUID(r[0]), r[1], r[2], r[3], r[4], _json.loads(r[5]), _json.loads(r[6])
                )
                for r in rows
            )
        return found

    def stream_head(self, aggregate_id: str) -> tuple[int, str, datetime] | None:
        row = self._conn.execute(
            "SELECT version, aggregate_type, updated_at FROM cronica_streams"
            " WHERE aggregate_id = ?",
            (aggregate_id,),
        ).fetchone()
        return None if row is None else (row[0], row[1], datetime.fromisoformat(row[2]))

    def write(
        self, request: AppendRequest, first_version: int, aggregate_type: str, now: datetime
    ) -> int:
        stamp = _iso(now)
        aggregate_id = request.aggregate_id
        rows = [
            (
                str(event.event_id),
                aggregate_id,
                aggregate_type,
                event.event_type,
                first_version + offset,
                event.data_json.decode(),
                event.metadata_json.decode(),
                stamp,
            )
            for offset, event in enumerate(request.events)
        ]
        if len(rows) == 1:
            position = self._conn.execute(_INSERT_EVENT, rows[0]).lastrowid
        else:
            self._conn.executemany(_INSERT_EVENT, rows)
            position = self._conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        assert isinstance(position, int)
        self._conn.execute(
            "INSERT INTO cronica_streams (aggregate_id, aggregate_type, version, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (aggregate_id) DO UPDATE"
            " SET version = excluded.version, updated_at = excluded.updated_at",
            (aggregate_id, aggregate_type, first_version + len(request.events) - 1, stamp, stamp),
        )
        return position
