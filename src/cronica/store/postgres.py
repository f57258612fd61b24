"""The PostgreSQL backend (psycopg 3): production, many processes, no global write lock.

An append batch is one call of the server-side function ``cronica_append`` in autocommit mode:
one statement, one round trip, one transaction, one fsync. Concurrent appends from threads of
one process share that call through group commit; appends from other processes run in parallel
and only wait for each other on the same stream's row. How the global log stays gap-safe is
explained in ``postgres_schema.py``.
"""

from __future__ import annotations

import functools
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import set_json_loads

from cronica import _json
from cronica._postgres import pooled_read
from cronica.errors import (
    AggregateTypeMismatchError,
    AppendOnlyViolationError,
    ConcurrencyError,
    CronicaError,
    DuplicateEventError,
    InvalidInputError,
    StoreError,
    StoreUnavailableError,
    StreamNotFoundError,
)
from cronica.events import ANY, EXISTS, NO_STREAM, AppendResult, RecordedEvent, StreamInfo
from cronica.snapshots.postgres import PostgresSnapshotStore
from cronica.store._archive_rows import ARCHIVED_MARK, ArchivedPart
from cronica.store._group_commit import GroupCommitter
from cronica.store._pg_wakeups import HEAD_SQL, Listener, Notifier, channel_name
from cronica.store._wakeup import check_poll_interval
from cronica.store.base import (
    DEFAULT_MAX_EVENT_SIZE,
    AppendOutcome,
    AppendRequest,
    CopyProgress,
    EventStore,
    HorizonHolder,
    StoreStatus,
    check_import,
)
from cronica.store.postgres_schema import SCHEMA_VERSION, migrate
from cronica.upcasting import Upcasters

_EXPECTED_CODES = {ANY: -1, NO_STREAM: -2, EXISTS: -3}
_EVENT_COLUMNS = (
    "event_id, event_type, aggregate_id, aggregate_type, event_version, position, timestamp, "
    "event_data, coalesce(metadata, '{}'::jsonb)"
)
_ARCHIVED_MARK_SQL = (
    f"SELECT NULL::uuid, NULL, NULL, NULL, {ARCHIVED_MARK}, NULL::bigint, NULL::timestamptz,"
    " NULL::jsonb, NULL::jsonb FROM cronica_archived_streams WHERE aggregate_id = %s LIMIT 1"
)
_APPEND_SQL = (
    "SELECT * FROM cronica_append(%b::text[], %b::text[], %b::bigint[], %b::int[], %b::int[],"
    " %b::uuid[], %b::text[], %b::text[], %b::text[])"
)
_APPEND_ONE_SQL = "SELECT * FROM cronica_append_one(%b, %b, %b, %b, %b, %b, %b)"
_APPEND_EACH_SQL = (
    "SELECT * FROM cronica_append_each(%b::text[], %b::text[], %b::bigint[], %b::int[],"
    " %b::uuid[], %b::text[], %b::text[], %b::text[])"
)
_MAX_EVENTS_PER_BATCH = 10_000
_HORIZON_SQL = (
    "SELECT cronica_readable_bound(), (SELECT max(position) FROM events WHERE position > %s)"
)
# Lower case only: PostgreSQL folds the unquoted name in ``search_path`` to lower case, so a
# schema created as "MixedCase" would never be found again.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DEFAULT_POLL_INTERVAL = 1.0
"""Seconds between two reads of the head position while a thread waits for events (the
fallback for commits that were never notified)."""


def _translate(exc: psycopg.Error) -> CronicaError:
    if exc.sqlstate == "CR001":
        return AppendOnlyViolationError(str(exc).strip())
    if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout):
        return StoreUnavailableError(f"PostgreSQL: {str(exc).strip()}")
    return StoreError(f"PostgreSQL: {str(exc).strip()}")


def _configure(conn: psycopg.Connection[Any]) -> None:
    set_json_loads(_json.loads, conn)


class PostgresEventStore(EventStore):
    """An event store in a PostgreSQL schema, created (and migrated) on first use.

    >>> store = PostgresEventStore("postgresql://postgres@127.0.0.1/test")  # doctest: +SKIP

    ``schema`` puts the tables in their own PostgreSQL schema. ``synchronous_commit=False`` is the
    opt-in weaker mode: an acknowledged append may be lost if the server crashes. Up to
    ``writers`` group-commit batches run at once, each on a connection of its own; ``pool_size``
    connections serve reads. ``read_all`` returns the events committed before it was called,
    waiting up to ``read_wait`` seconds for older transactions that are still running (see
    ``docs/design/global-order.md``).

    ``wait_for_events`` wakes at once for appends through this object. For other processes and
    store objects, a background thread of the writing store sends ``NOTIFY
    cronica_events_<schema>`` after commits (outside the append transaction; commits close
    together share one notification, at most one every few milliseconds), which a listener
    thread (one connection, opened by the first wait) receives. While a thread waits, the head
    position is also read every ``poll_interval`` seconds, for commits whose writer never
    notified (it died just after its commit, or is not cronica).
    """

    backend_name = "postgresql"
    supports_archiving = True

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        pool_size: int = 8,
        writers: int = 4,
        group_commit: bool = True,
        synchronous_commit: bool = True,
        connect_timeout: float = 10.0,
        read_wait: float = 0.5,
        upcasters: Upcasters | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__(max_event_size=max_event_size, upcasters=upcasters)
        self.schema = schema
        self.read_wait = read_wait
        self.poll_interval = check_poll_interval(poll_interval)
        if not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidInputError(
                f"schema must be a lower-case identifier ([a-z_][a-z0-9_]*), not {schema!r}"
            )
        self.channel = channel_name(schema)
        """The channel that commits are notified on."""
        options = f"-c search_path={schema} -c TimeZone=UTC"
        if not synchronous_commit:
            options += " -c synchronous_commit=off"
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": options,
            "connect_timeout": max(1, int(connect_timeout)),
        }
        self._conninfo = conninfo
        self._writers: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._all_writers: list[psycopg.Connection[Any]] = []
        self._writers_lock = threading.Lock()
        self._closed = False
        try:
            with psycopg.connect(conninfo, **self._connect_kwargs) as conn:
                migrate(conn, schema)
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                kwargs=self._connect_kwargs,
                configure=_configure,
                timeout=connect_timeout,
                open=True,
            )
        )
        self._committer: GroupCommitter[AppendRequest, AppendOutcome] | None = (
            GroupCommitter(
                self._append_batch, max_weight=_MAX_EVENTS_PER_BATCH, max_inflight=writers
            )
            if group_commit
            else None
        )
        self._notify_commits = True  # tests turn it off to see the fallback poll at work
        self._notifier = Notifier(
            functools.partial(self._connect, "-c synchronous_commit=off"),
            self.channel,
            f"cronica-notify-{schema}",
        )
        self._listener = Listener(
            self._connect, self.channel, self._watch.advance, f"cronica-listen-{schema}"
        )

    def _connect(self, options: str = "") -> psycopg.Connection[Any]:
        """A new autocommit connection in the store's schema; ``options`` adds settings."""
        kwargs = self._connect_kwargs
        if options:
            kwargs = {**kwargs, "options": f"{kwargs['options']} {options}"}
        return psycopg.connect(self._conninfo, **kwargs)

    def _committed(self, position: int) -> None:
        super()._committed(position)
        if self._notify_commits:
            self._notifier.signal(position)

    @property
    def conninfo(self) -> str:
        """The connection string this store was opened with (credentials included)."""
        return self._conninfo

    # -- writing -----------------------------------------------------------------------------

    def _submit(self, request: AppendRequest) -> AppendOutcome:
        if self._committer is None:
            return self._append_batch([request])[0]
        return self._committer.submit(request, weight=len(request.events))

    @contextmanager
    def _writer(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            conn = self._writers.get_nowait()
        except queue.Empty:
            conn = self._connect()
            conn.prepare_threshold = 0
            with self._writers_lock:
                self._all_writers.append(conn)
        try:
            yield conn
        finally:
            if conn.broken or conn.closed:
                conn.close()
            else:
                self._writers.put(conn)

    def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        # A call names each stream and each event id at most once, so the batch is cut into
        # consecutive runs without a repeat; runs go one after the other, in the order the
        # requests came, so a later request sees what an earlier one wrote. (Lock order, which
        # keeps concurrent calls from deadlocking, is the function's business: it locks stream
        # rows by aggregate id.)
        outcomes: list[AppendOutcome] = []
        run: list[AppendRequest] = []
        seen: set[object] = set()
        for request in requests:
            keys: set[object] = {request.aggregate_id}
            keys.update(event.event_id for event in request.events)
            if not seen.isdisjoint(keys):
                outcomes.extend(self._append_run(run))
                run, seen = [], set()
            run.append(request)
            seen |= keys
        if run:
            outcomes.extend(self._append_run(run))
        self._committed_outcomes(outcomes)
        return outcomes

    def _append_run(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        try:
            outcomes = self._call_append(requests, each=False)
        except psycopg.OperationalError as exc:
            # The server is unreachable or the connection broke: one answer for the batch
            # (it may or may not have committed; a retry with the same event ids is safe),
            # rather than one connection attempt per request.
            return [_translate(exc)] * len(requests)
        except psycopg.Error:
            # Typically an accepted request reused a stored event id (events_pkey): decide
            # request by request, each in a transaction of its own.
            return self._append_each_alone(requests)
        # A failed request with a stored event id may be a retry: decide it by the
        # idempotency rules.
        retries = [i for i, outcome in enumerate(outcomes) if outcome is _STORED]
        if retries:
            decided = self._append_each_alone([requests[i] for i in retries])
            for index, outcome in zip(retries, decided, strict=True):
                outcomes[index] = outcome
        return outcomes

    def _append_each_alone(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        """Run each request in a transaction of its own, by the request-by-request path, so
        that only a faulty request fails."""
        outcomes: list[AppendOutcome] = []
        for request in requests:
            try:
                outcomes.extend(self._call_append([request], each=True))
            except psycopg.Error as exc:
                outcomes.append(_translate(exc))
        return outcomes

    def _call_append(self, requests: Sequence[AppendRequest], *, each: bool) -> list[AppendOutcome]:
        if not each and len(requests) == 1 and len(requests[0].events) == 1:
            return [self._call_append_one(requests[0])]
        ids: list[str] = []
        types: list[str | None] = []
        expected: list[int] = []
        counts: list[int] = []
        event_req: list[int] = []
        event_ids: list[uuid.UUID] = []
        event_types: list[str] = []
        data: list[str] = []
        metadata: list[str] = []
        for number, request in enumerate(requests, start=1):
            ids.append(request.aggregate_id)
            types.append(request.aggregate_type)
            exp = request.expected
            expected.append(exp if isinstance(exp, int) else _EXPECTED_CODES[exp])
            counts.append(len(request.events))
            for event in request.events:
                event_req.append(number)
                event_ids.append(event.event_id)
                event_types.append(event.event_type)
                data.append(event.data_json.decode())
                metadata.append(event.metadata_json.decode())
        with self._writer() as conn:
            if each:
                rows = conn.execute(
                    _APPEND_EACH_SQL,
                    (ids, types, expected, counts, event_ids, event_types, data, metadata),
                ).fetchall()
            else:
                rows = conn.execute(
                    _APPEND_SQL,
                    (
                        ids,
                        types,
                        expected,
                        counts,
                        event_req,
                        event_ids,
                        event_types,
                        data,
                        metadata,
                    ),
                ).fetchall()
        return [_outcome(request, row) for request, row in zip(requests, rows, strict=True)]

    def _call_append_one(self, request: AppendRequest) -> AppendOutcome:
        """One event to one stream: scalar parameters cost a fraction of nine arrays."""
        event = request.events[0]
        exp = request.expected
        params = (
            request.aggregate_id,
            request.aggregate_type,
            exp if isinstance(exp, int) else _EXPECTED_CODES[exp],
            event.event_id,
            event.event_type,
            event.data_json.decode(),
            event.metadata_json.decode(),
        )
        with self._writer() as conn:
            row = conn.execute(_APPEND_ONE_SQL, params).fetchone()
        assert row is not None
        return _outcome(request, row)

    def _import_events(self, events: list[RecordedEvent], progress: CopyProgress) -> None:
        try:
            with self._writer() as conn:
                with conn.transaction():
                    self._import_in_transaction(conn, events, progress)
                row = conn.execute(HEAD_SQL).fetchone()
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        if row is not None and row[0]:
            self._committed(int(row[0]))

    @staticmethod
    def _import_in_transaction(
        conn: psycopg.Connection[Any], events: list[RecordedEvent], progress: CopyProgress
    ) -> None:
        streams = sorted({event.aggregate_id for event in events})
        heads: dict[str, int] = dict(
            conn.execute(
                "SELECT aggregate_id, version FROM cronica_streams"
                ' WHERE aggregate_id = ANY(%s) ORDER BY aggregate_id COLLATE "C" FOR UPDATE',
                (streams,),
            ).fetchall()
        )

        def stored_ids(ids: list[uuid.UUID]) -> list[uuid.UUID]:
            rows = conn.execute(
                "SELECT event_id FROM events WHERE event_id = ANY(%s)", (ids,)
            ).fetchall()
            return [row[0] for row in rows]

        check_import(events, heads, stored_ids)
        if events:
            last_of_stream = {event.aggregate_id: event for event in events}
            conn.execute(
                "WITH base AS (SELECT cronica_reserve_positions(%s) AS b)"
                " INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type,"
                " event_version, event_data, metadata, timestamp, position)"
                " SELECT e.id, e.agg, e.typ, e.etype, e.ver, e.data::jsonb, e.meta::jsonb, e.ts,"
                " base.b + e.n FROM base, unnest(%s::uuid[], %s::text[], %s::text[], %s::text[],"
                " %s::int[], %s::text[], %s::text[], %s::timestamptz[])"
                " WITH ORDINALITY AS e(id, agg, typ, etype, ver, data, meta, ts, n)",
                (
                    len(events),
                    [e.event_id for e in events],
                    [e.aggregate_id for e in events],
                    [e.aggregate_type for e in events],
                    [e.event_type for e in events],
                    [e.version for e in events],
                    [_json.dumps(e.data).decode() for e in events],
                    [_json.dumps(e.metadata).decode() for e in events],
                    [e.timestamp for e in events],
                ),
            )
            firsts: dict[str, datetime] = {}
            for event in events:
                firsts.setdefault(event.aggregate_id, event.timestamp)
            conn.execute(
                "INSERT INTO cronica_streams AS s (aggregate_id, aggregate_type, version,"
                " created_at, updated_at) SELECT * FROM unnest(%s::text[], %s::text[], %s::int[],"
                " %s::timestamptz[], %s::timestamptz[]) ON CONFLICT (aggregate_id) DO UPDATE"
                " SET version = excluded.version, updated_at = excluded.updated_at",
                (
                    list(last_of_stream),
                    [e.aggregate_type for e in last_of_stream.values()],
                    [e.version for e in last_of_stream.values()],
                    [firsts[i] for i in last_of_stream],
                    [e.timestamp for e in last_of_stream.values()],
                ),
            )
        conn.execute(
            "INSERT INTO cronica_copies (source, last_position, events_read, events_written,"
            " checksum) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source) DO UPDATE SET"
            " last_position = excluded.last_position, events_read = excluded.events_read,"
            " events_written = excluded.events_written, checksum = excluded.checksum,"
            " updated_at = now()",
            (
                progress.source,
                progress.last_position,
                progress.events_read,
                progress.events_written,
                progress.checksum,
            ),
        )

    def copy_progress(self, source: str) -> CopyProgress | None:
        rows = self._query(
            "SELECT source, last_position, events_read, events_written, checksum"
            " FROM cronica_copies WHERE source = %s",
            [source],
        )
        return CopyProgress(*rows[0]) if rows else None

    def snapshot_store(self) -> PostgresSnapshotStore:
        """Snapshots in this store's schema, through its read pool."""
        return PostgresSnapshotStore(self._pool.connection)

    # -- reading -----------------------------------------------------------------------------

    def _archived_parts(self, aggregate_id: str) -> list[ArchivedPart]:
        rows = self._query(
            "SELECT b.file, b.sha256, s.first_version, s.last_version"
            " FROM cronica_archived_streams s"
            " JOIN cronica_archive_batches b ON b.batch = s.batch WHERE s.aggregate_id = %s"
            " ORDER BY s.first_version",
            (aggregate_id,),
        )
        return [ArchivedPart(str(f), str(h), int(a), int(b)) for f, h, a, b in rows]

    def _query(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            return pooled_read(self._pool, query, params)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise _translate(exc) from exc

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
        query = (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE aggregate_id = %s AND event_version >= %s"
        )
        params: list[Any] = [aggregate_id, from_version]
        if to_version is not None:
            query += " AND event_version <= %s"
            params.append(to_version)
        if as_of is not None:
            query += " AND timestamp <= %s"
            params.append(as_of)
        query += " ORDER BY event_version DESC" if backward else " ORDER BY event_version"
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        if look:  # in the same statement (one snapshot): whether the stream has archived parts
            query = f"({query}) UNION ALL ({_ARCHIVED_MARK_SQL})"
            params.append(aggregate_id)
        rows = self._query(query, params)
        archived = bool(rows) and rows[-1][4] == ARCHIVED_MARK
        if archived:
            rows.pop()
        return [RecordedEvent(*row) for row in rows], archived

    def _read_all(
        self,
        after: int,
        limit: int | None,
        event_types: tuple[str, ...] | None,
        aggregate_types: tuple[str, ...] | None,
    ) -> list[RecordedEvent]:
        # The bound is computed once per statement, from the statement's own snapshot.
        query = (
            f"SELECT {_EVENT_COLUMNS} FROM events"
            " WHERE position > %s AND position < (SELECT cronica_readable_bound())"
        )
        params: list[Any] = [after]
        if event_types is not None:
            query += " AND event_type = ANY(%s)"
            params.append(list(event_types))
        if aggregate_types is not None:
            query += " AND aggregate_type = ANY(%s)"
            params.append(list(aggregate_types))
        query += " ORDER BY position"
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        self._wait_for_horizon(after)
        return [RecordedEvent(*row) for row in self._query(query, params)]

    def _read_recent(self, limit: int, event_types: tuple[str, ...] | None) -> list[RecordedEvent]:
        # Below the readable bound, like read_all: a follower starting after the newest event
        # shown here misses nothing that commits later.
        query = (
            f"SELECT {_EVENT_COLUMNS} FROM events"
            " WHERE position < (SELECT cronica_readable_bound())"
        )
        params: list[Any] = []
        if event_types is not None:
            query += " AND event_type = ANY(%s)"
            params.append(list(event_types))
        query += " ORDER BY position DESC LIMIT %s"
        params.append(limit)
        return [RecordedEvent(*row) for row in self._query(query, params)]

    def _wait_for_horizon(self, after: int) -> None:
        """Wait (at most ``read_wait`` seconds) until every event committed before this call
        is readable, so a reader sees its own appends: a transaction that started earlier and
        is still running (usually a concurrent append, for a millisecond) holds them back."""
        deadline = time.monotonic() + self.read_wait
        head: int | None = None
        while True:
            bound, top = self._query(_HORIZON_SQL, [after])[0]
            if head is None:
                head = top
            if head is None or bound > head or time.monotonic() >= deadline:
                return
            time.sleep(0.002)

    def _read_event(self, event_id: uuid.UUID) -> RecordedEvent | None:
        rows = self._query(f"SELECT {_EVENT_COLUMNS} FROM events WHERE event_id = %s", [event_id])
        return RecordedEvent(*rows[0]) if rows else None

    def _stream_info(self, aggregate_id: str) -> StreamInfo:
        rows = self._query(
            "SELECT aggregate_id, aggregate_type, version, created_at, updated_at"
            " FROM cronica_streams WHERE aggregate_id = %s AND version > 0",
            [aggregate_id],
        )
        if not rows:
            raise StreamNotFoundError(aggregate_id)
        return StreamInfo(*rows[0])

    def _list_streams(
        self, aggregate_type: str | None, after: str | None, limit: int
    ) -> list[StreamInfo]:
        query = (
            "SELECT aggregate_id, aggregate_type, version, created_at, updated_at"
            ' FROM cronica_streams WHERE version > 0 AND aggregate_id COLLATE "C" > %s'
        )
        params: list[Any] = ["" if after is None else after]
        if aggregate_type is not None:
            query += " AND aggregate_type = %s"
            params.append(aggregate_type)
        query += ' ORDER BY aggregate_id COLLATE "C" LIMIT %s'
        params.append(limit)
        return [StreamInfo(*row) for row in self._query(query, params)]

    def status(self) -> StoreStatus:
        (streams, events, head, bound) = self._query(
            "SELECT (SELECT count(*) FROM cronica_streams WHERE version > 0),"
            " (SELECT count(*) FROM events),"
            " (SELECT coalesce(max(position), 0) FROM events),"
            " cronica_readable_bound()",
            [],
        )[0]
        readable = int(head)
        holders: list[HorizonHolder] = []
        if head >= bound:
            readable_rows = self._query(
                "SELECT coalesce(max(position), 0) FROM events WHERE position < %s", [bound]
            )
            readable = int(readable_rows[0][0])
            holders = [
                HorizonHolder(*row)
                for row in self._query(
                    "SELECT pid, xact_start, coalesce(state, ''), left(coalesce(query, ''), 200)"
                    " FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                    " ORDER BY age(backend_xid) DESC LIMIT 5",
                    [],
                )
            ]
        return StoreStatus(
            self.backend_name,
            SCHEMA_VERSION,
            int(streams),
            int(events),
            int(head),
            readable,
            holders,
        )

    # -- following the global log ------------------------------------------------------------

    def _head_position(self) -> int:
        return int(self._query(HEAD_SQL, [])[0][0])

    def _count_events(self, after: int) -> int:
        return int(self._query("SELECT count(*) FROM events WHERE position > %s", [after])[0][0])

    def _wait_for_events(self, after: int, timeout: float, *, look: bool = True) -> bool:
        if self._closed:
            raise StoreError("the store is closed")
        deadline = time.monotonic() + timeout
        if self._watch.known <= after:
            # Listen before the first look, so a commit after that look is notified.
            self._listener.start(timeout)
        return self._watch.wait(
            after,
            max(0.0, deadline - time.monotonic()),
            self._poll_head,
            self.poll_interval,
            look=look,
        )

    def _poll_head(self, force: bool) -> int:
        return self._head_position()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        super().close()
        self._listener.close()
        self._notifier.close()
        with self._writers_lock:
            for conn in self._all_writers:
                conn.close()
        self._pool.close()


class _StoredIdError(CronicaError):
    """Marks a failed request with a stored event id, to be decided by the idempotency rules."""


_STORED = _StoredIdError()


def _outcome(request: AppendRequest, row: tuple[Any, ...]) -> AppendOutcome:
    status, from_version, to_version, position, actual, actual_type, bad_id, detail = row
    if status == "stored":
        return _STORED
    if status == "ok":
        return AppendResult(from_version, to_version, position)
    if status == "conflict":
        return ConcurrencyError(request.aggregate_id, request.expected, actual)
    if status == "type_mismatch":
        return AggregateTypeMismatchError(
            request.aggregate_id, request.aggregate_type or "", actual_type
        )
    return DuplicateEventError(str(bad_id), detail)
