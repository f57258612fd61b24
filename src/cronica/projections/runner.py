"""The projector: follows the global log and keeps projections' read models up to date.

Each pass takes (or renews) a lease on every projection it runs, then applies one batch of the
log to each *track*: a projection's live generation, and the generation being rebuilt, if any.
Tracks at the same position share one read of the log and one transaction. A batch's writes and
its checkpoint commit together; a handler that raises stops its projection at that event
(recorded in the catalog), and the other projections go on.

Several projectors may run the same projections (on PostgreSQL, in several processes): the lease
gives each projection one active runner, and the checkpoint update checks the lease, so a runner
that lost it (paused too long, say) has its batch rolled back instead of written twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from cronica._background import join_waking
from cronica._closing import Closing
from cronica._validation import check_several
from cronica.errors import (
    InvalidInputError,
    LeaseLostError,
    ProjectionNotFoundError,
    ReadModelUnavailableError,
    StoreError,
)
from cronica.events import RecordedEvent
from cronica.privacy.cipher import readable
from cronica.privacy.erasure import ERASURE_EVENT
from cronica.privacy.keys import SubjectKeys
from cronica.projections.base import Projection, ProjectionWriter, check_distinct
from cronica.projections.catalog import (
    CATCHING_UP,
    FAILED,
    LIVE,
    STOPPED,
    Catalog,
    ProjectionRecord,
)
from cronica.projections.generations import (
    create_deferred_indexes,
    create_generation,
    drop_generation,
    point_views,
    table_names,
)
from cronica.readmodels import read_models_for
from cronica.readmodels.base import ReadModelDatabase, ReadModelTransaction
from cronica.readmodels.sqlite import empty_wal
from cronica.store.base import EventStore

log = logging.getLogger("cronica.projections")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Track:
    projection: Projection
    rebuild: bool
    position: int
    generation: int
    names: dict[str, str]


class _MovedError(Exception):
    """A track's checkpoint moved since the pass read it; the next pass starts afresh."""


class _HandlerFailedError(Exception):
    """A handler raised in the fast path; the batch is redone with each track isolated."""


class Projector(Closing):
    """Runs ``projections`` over ``store``, writing to ``read_models`` (by default the store's
    own database).

    >>> import cronica
    >>> from cronica.examples.bank_read_models import bank_projections
    >>> store = cronica.connect("memory://")
    >>> created = cronica.NewEvent("AccountCreated", {"owner": "Juan"})
    >>> _ = store.append("acc-1", [created], aggregate_type="BankAccount")
    >>> projector = Projector(store, bank_projections())
    >>> projector.run_until_caught_up()
    1
    >>> projector.read_models.query("SELECT account_id, owner FROM accounts")
    [('acc-1', 'Juan')]
    >>> projector.close()

    ``start()`` runs it in a background thread; ``run_forever()`` in the calling one.

    Personal data in the events is decrypted for the handlers with ``keys`` (default: the
    store's, :meth:`EventStore.subject_keys`). Projections with a ``retention`` have their
    old rows deleted every ``retention_interval`` seconds, by the time ``clock`` gives.
    """

    def __init__(
        self,
        store: EventStore,
        projections: Iterable[Projection],
        read_models: ReadModelDatabase | None = None,
        *,
        batch_size: int = 1000,
        catch_up_batch_size: int | None = None,
        lease_ttl: float = 10.0,
        takeover_interval: float = 1.0,
        idle_wait: float = 1.0,
        owner: str | None = None,
        retry_failed_on_start: bool = True,
        read_ahead: bool | None = None,
        keys: SubjectKeys | None = None,
        retention_interval: float = 60.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        chosen = list(projections)
        check_distinct(chosen)
        self.projections = {p.name: p for p in chosen}
        if batch_size < 1 or (catch_up_batch_size is not None and catch_up_batch_size < 1):
            raise InvalidInputError("batch sizes must be at least 1")
        self.store = store
        self._owns_read_models = read_models is None
        self.read_models = read_models if read_models is not None else read_models_for(store)
        self.catalog = Catalog(self.read_models)
        self.catalog.create()
        self._register()
        self.batch_size = batch_size
        # Larger pages while catching up (fewer transactions and round trips, more updates
        # merged per key). Not when the read models share the store's SQLite file: a batch
        # holds the file's only write lock, which the store's appends need too.
        if catch_up_batch_size is None:
            catch_up_batch_size = (
                batch_size if _shares_sqlite_file(store, self.read_models) else 10_000
            )
        self.catch_up_batch_size = max(batch_size, catch_up_batch_size)
        self._catching_up_after: set[int] = set()
        self.lease_ttl = lease_ttl
        self.takeover_interval = takeover_interval
        self.idle_wait = idle_wait
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._retry_failed = retry_failed_on_start
        self._renew_at: dict[str, float] = {}
        self._next_try: dict[str, float] = {}
        self._caught_up: dict[tuple[str, bool], bool] = {}
        self._indexed: set[tuple[str, int]] = set()
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # While a batch is written, the next page of the log is read in the background: a gain
        # when reading waits on a server; on SQLite the two threads only fight over the GIL.
        self.read_ahead = store.backend_name == "postgresql" if read_ahead is None else read_ahead
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cronica-read-ahead")
        self._read_ahead: tuple[int, Future[list[RecordedEvent]]] | None = None
        self.last_error: BaseException | None = None
        """The last error a pass of the background loop met (it retries after a pause)."""
        self._keys = keys
        self.retention_interval = retention_interval
        self.clock = clock
        self._next_expiry = 0.0
        self.expired_rows = 0
        """Rows deleted so far for the projections' ``retention``."""
        self._passed: set[str] = set()
        """Projections left alone: the catalog holds a newer version than this code."""

    # -- running -----------------------------------------------------------------------------

    def run_once(self) -> int:
        """One pass: leases, rebuild starts and swaps, one batch for each group of tracks.
        Returns the number of log events the pass read (0 when every track is caught up)."""
        records = self._take_leases()
        tracks: list[_Track] = []
        for name, record in records.items():
            projection = self.projections[name]
            if record.state == FAILED:
                continue
            newest = max(record.version, record.rebuild_version or 0)
            if newest > projection.version:
                # Newer code has taken the projection over (an old replica in a rolling deploy,
                # or a rollback): older handlers must not write into its tables.
                self._passed_over(projection, newest)
                continue
            needs_rebuild = record.rebuild_requested or record.version != projection.version
            older_rebuild = (
                record.rebuild_generation is not None
                and record.rebuild_version is not None
                and record.rebuild_version < projection.version
            )
            if older_rebuild or (record.rebuild_generation is None and needs_rebuild):
                record = self._start_rebuild(projection)  # an older one's tables are dropped
            if record.version == projection.version:
                names = table_names(projection, record.generation)
                tracks.append(_Track(projection, False, record.position, record.generation, names))
            if record.rebuild_generation is not None and record.rebuild_position is not None:
                names = table_names(projection, record.rebuild_generation)
                generation = record.rebuild_generation
                tracks.append(_Track(projection, True, record.rebuild_position, generation, names))
        groups: dict[int, list[_Track]] = {}
        for track in tracks:
            groups.setdefault(track.position, []).append(track)
        read = 0
        for position, group in sorted(groups.items()):
            read += self._run_group(position, group)
        if tracks and time.monotonic() >= self._next_expiry:
            self._expire_rows(tracks)  # before a rebuild's switch drops the old generation
        for track in tracks:
            if track.rebuild:
                self._finish_rebuild_if_caught_up(track.projection)
        return read

    def _expire_rows(self, tracks: list[_Track]) -> None:
        """Delete the rows past their projection's ``retention``, in every generation this
        projector writes (a rebuild may bring expired rows back: the next sweep takes them)."""
        self._next_expiry = time.monotonic() + self.retention_interval
        now = self.clock()
        for track in tracks:
            for table, rule in track.projection.retention.items():
                cutoff = (now - rule.keep).isoformat()
                with self.read_models.transaction() as tx:
                    gone = tx.execute(
                        f"DELETE FROM {track.names[table]} WHERE {rule.column} < ?", [cutoff]
                    )
                if gone:
                    self.expired_rows += gone
                    log.info("%s: %d rows of %s past their retention", track.projection.name,
                             gone, table)  # fmt: skip

    def run_until_caught_up(self, timeout: float | None = None) -> int:
        """Run passes until every track has read to the end of the log; return the events read.
        Raises :class:`TimeoutError` past ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        total = 0
        while True:
            read = self.run_once()
            total += read
            if read == 0:
                return total
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"projections not caught up after {timeout} s")

    def run_forever(self) -> None:
        """Run passes until :meth:`stop`; between passes wait for new events (no busy polling).
        A pass that fails (the store or read-model database unreachable, say) is logged and
        retried after a pause that grows to 5 s; ``last_error`` keeps the error. Handler
        failures never get here: they stop their projection (see the module docstring)."""
        pause = 0.1
        while not self._stopping.is_set():
            try:
                read = self.run_once()
                pause = 0.1
            except Exception as exc:  # a background loop must outlive what it cannot handle
                self.last_error = exc
                if isinstance(exc, StoreError | LeaseLostError):
                    log.warning("projector pass failed (retrying in %.1f s): %s", pause, exc)
                else:
                    log.exception("projector pass failed (retrying in %.1f s)", pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)
                continue
            if read == 0 and not self._stopping.is_set():
                self._wait_for_events()
        self._release_leases()

    def start(self) -> Projector:
        """Run in a background thread (a daemon) until :meth:`stop` or :meth:`close`."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self.run_forever, name="cronica-projector")
            self._thread.daemon = True
            self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask :meth:`run_forever` to return after the batch in hand (safe in a signal
        handler); it releases the leases on its way out."""
        self._stopping.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread (after its current batch) and release the leases."""
        self._stopping.set()
        if self._thread is not None:
            join_waking(self._thread, self.store, timeout)
            self._thread = None
        else:
            self._release_leases()

    def close(self) -> None:
        """Stop, and close the read-model database if this projector opened it."""
        self.stop()
        self._read_ahead = None
        self._reader.shutdown(wait=True)
        if self._owns_read_models:
            self.read_models.close()

    # -- read-your-writes ----------------------------------------------------------------------

    def wait_for(self, position: int, timeout: float, names: Sequence[str] | None = None) -> bool:
        """Wait until the named projections (default: all of this projector's) have applied
        the log up to ``position``; False if ``timeout`` seconds pass first."""
        chosen = list(self.projections) if names is None else check_several(names, "names")
        if not chosen:  # nothing to wait for
            return True
        for name in chosen:
            if name not in self.projections:
                raise ProjectionNotFoundError(name)
        return self.catalog.wait_for(position, timeout, chosen, pause=self._pause)

    def _pause(self, seconds: float) -> None:
        """Sleep, cut short by this projector's next commit."""
        with self._changed:
            self._changed.wait(seconds)

    # -- leases --------------------------------------------------------------------------------

    def _register(self) -> None:
        """Give each projection never run before its catalog row and first tables, so that
        its status and ``wait_for`` know it from the start (position 0)."""
        with self.read_models.transaction() as tx:
            for name, projection in self.projections.items():
                if self.catalog.register(tx, name, projection.version):
                    create_generation(tx, projection, 1, defer_indexes=True)
                    point_views(tx, projection, 1)

    def _take_leases(self) -> dict[str, ProjectionRecord]:
        now = time.monotonic()
        due = [
            name
            for name in self.projections
            if self._renew_at.get(name, 0.0) <= now and self._next_try.get(name, 0.0) <= now
        ]
        if due:
            with self.read_models.transaction() as tx:
                for name in due:
                    self._take_lease(tx, name, now)
        records = self.catalog.records()
        return {
            name: record
            for name, record in records.items()
            if name in self._renew_at and record.lease_owner == self.owner
        }

    def _take_lease(self, tx: ReadModelTransaction, name: str, now: float) -> None:
        first_time = name not in self._renew_at and name not in self._next_try
        if not self.catalog.acquire(tx, name, self.owner, self.lease_ttl) and not (
            self._take_from_dead_runner(tx, name)
        ):
            self._renew_at.pop(name, None)
            self._next_try[name] = now + self.takeover_interval
            return
        if name not in self._renew_at:
            log.info("projector %s runs projection %s", self.owner, name)
            if first_time and self._retry_failed:
                self.catalog.clear_failure(tx, name)
        self._renew_at[name] = now + self.lease_ttl / 3
        self._next_try.pop(name, None)

    def _take_from_dead_runner(self, tx: ReadModelTransaction, name: str) -> bool:
        """A runner on this machine whose process is gone (killed, say) cannot renew its lease:
        take it over at once instead of waiting for it to run out."""
        rows = tx.query("SELECT lease_owner FROM cronica_projections WHERE name = ?", [name])
        holder = rows[0][0] if rows else None
        if not holder or not _is_dead_local_runner(holder):
            return False
        log.info("projection %s: taking over from %s, whose process is gone", name, holder)
        return self.catalog.take_from(tx, name, self.owner, holder, self.lease_ttl)

    def _release_leases(self) -> None:
        if not self._renew_at:
            return
        try:
            with self.read_models.transaction() as tx:
                for name in list(self._renew_at):
                    self.catalog.set_state(tx, name, self.owner, STOPPED)
                    self.catalog.release(tx, name, self.owner)
        except StoreError as exc:  # the lease runs out by itself
            log.warning("could not release projection leases: %s", exc)
        self._renew_at.clear()

    def _lost(self, name: str) -> None:
        self._renew_at.pop(name, None)
        self._next_try[name] = time.monotonic() + self.takeover_interval

    # -- batches -------------------------------------------------------------------------------

    def _read(self, position: int) -> tuple[list[RecordedEvent], bool]:
        """The page of the log after ``position``: read ahead during the last batch, if that
        read started where this one does, else read now. Then start reading the next page if
        this one was full (the projector is catching up). Returns the events and whether the
        page was full."""
        ahead, self._read_ahead = self._read_ahead, None
        limit = self._page_size(position)
        if ahead is not None and ahead[0] == position:
            events = ahead[1].result()
        else:
            events = self._read_page(position, limit)
        if len(events) < limit:
            return events, False
        after = events[-1].position
        self._catching_up_after.add(after)
        if self.read_ahead:
            next_limit = self.catch_up_batch_size
            future = self._reader.submit(self._read_page, after, next_limit)
            self._read_ahead = (after, future)
        return events, True

    def _read_page(self, after: int, limit: int) -> list[RecordedEvent]:
        """A page of the log with its personal values decrypted (``[erased]`` once the subject
        is forgotten), with ``keys`` or else the store's own: projections see what a reader of
        the service sees, and drop it when ``PersonalDataErased`` comes. (In the read-ahead
        thread when catching up, so decrypting overlaps the writes.)"""
        return readable(self.store.read_all(after=after, limit=limit), self._subject_keys)

    def _subject_keys(self) -> SubjectKeys:
        return self.store.subject_keys() if self._keys is None else self._keys

    def _page_size(self, position: int) -> int:
        """The catch-up page size after a full page, else the normal batch size."""
        if position in self._catching_up_after:
            self._catching_up_after.discard(position)
            return self.catch_up_batch_size
        if len(self._catching_up_after) > 64:  # left behind by groups that moved on otherwise
            self._catching_up_after.clear()
        return self.batch_size

    def _run_group(self, position: int, group: list[_Track]) -> int:
        events, full = self._read(position)
        caught_up = not full
        if not events:
            self._index_caught_up(group)
            self._mark_states(group, caught_up=True)
            return 0
        try:
            self._write_batch(group, events, caught_up, isolate=False)
        except _HandlerFailedError:
            self._write_batch(group, events, caught_up, isolate=True)
        except LeaseLostError as exc:
            self._lost(exc.name)
            return 0
        except _MovedError:
            return 0
        for track in group:
            self._caught_up[(track.projection.name, track.rebuild)] = caught_up
        if self.read_models.dialect == "sqlite" and any(
            e.event_type == ERASURE_EVENT for e in events
        ):
            # The rows' earlier versions (the personal data) go from the disk too: the read
            # models delete with secure_delete, and this empties the write-ahead log.
            empty_wal(self.read_models)
        if caught_up:
            self._index_caught_up(group)
        with self._changed:
            self._changed.notify_all()
        return len(events)

    def _write_batch(
        self, group: list[_Track], events: list[RecordedEvent], caught_up: bool, *, isolate: bool
    ) -> None:
        state = LIVE if caught_up else CATCHING_UP
        last = events[-1].position
        with self.read_models.transaction() as tx:
            for track in group:
                if not self.catalog.claim(
                    tx,
                    track.projection.name,
                    self.owner,
                    self.lease_ttl,
                    rebuild=track.rebuild,
                    position=track.position,
                ):
                    raise _MovedError
            for track in group:
                relevant = _relevant(track.projection, events)
                writer = ProjectionWriter(tx, track.names)
                if not isolate:
                    try:
                        _apply(track.projection, writer, relevant)
                    except (LeaseLostError, ReadModelUnavailableError):
                        raise
                    except Exception as exc:
                        raise _HandlerFailedError from exc
                    self._advance(tx, track, last, len(events), state)
                    continue
                try:
                    with tx.savepoint():
                        _apply(track.projection, writer, relevant)
                        self._advance(tx, track, last, len(events), state)
                except (LeaseLostError, ReadModelUnavailableError):
                    raise
                except Exception:
                    self._record_failure(tx, track, writer, relevant, events, state)

    def _record_failure(
        self,
        tx: ReadModelTransaction,
        track: _Track,
        writer: ProjectionWriter,
        relevant: list[RecordedEvent],
        events: list[RecordedEvent],
        state: str,
    ) -> None:
        """Find the event that fails by applying the batch one event at a time; keep what came
        before it, and record the failure at it."""
        for event in relevant:
            try:
                with tx.savepoint():
                    _apply(track.projection, writer, [event])
            except (LeaseLostError, ReadModelUnavailableError):
                raise
            except Exception as exc:
                before = [e for e in events if e.position < event.position]
                if before:
                    self._advance(tx, track, before[-1].position, len(before), CATCHING_UP)
                self.catalog.fail(
                    tx,
                    track.projection.name,
                    self.owner,
                    rebuild=track.rebuild,
                    event=event,
                    error=exc,
                )
                log.error(
                    "projection %s stopped at event %s (%s, position %d): %s",
                    track.projection.name,
                    event.event_id,
                    event.event_type,
                    event.position,
                    exc,
                )
                return
        # The batch failed as a whole but every event passed alone: keep them.
        self._advance(tx, track, events[-1].position, len(events), state)

    def _advance(
        self, tx: ReadModelTransaction, track: _Track, position: int, count: int, state: str
    ) -> None:
        self.catalog.advance(
            tx,
            track.projection.name,
            self.owner,
            self.lease_ttl,
            rebuild=track.rebuild,
            position=position,
            events=count,
            state=state,
        )

    def _index_caught_up(self, group: list[_Track]) -> None:
        """Give generations that have caught up the indexes deferred while they were filled
        (once per generation and process: the statements are ``IF NOT EXISTS``)."""
        pending = [t for t in group if (t.projection.name, t.generation) not in self._indexed]
        if not pending:
            return
        with self.read_models.transaction() as tx:
            for track in pending:
                create_deferred_indexes(tx, track.projection, track.generation)
        self._indexed.update((t.projection.name, t.generation) for t in pending)

    def _mark_states(self, group: list[_Track], *, caught_up: bool) -> None:
        changed = [
            t for t in group if self._caught_up.get((t.projection.name, t.rebuild)) is not caught_up
        ]
        for track in group:
            self._caught_up[(track.projection.name, track.rebuild)] = caught_up
        live = [t for t in changed if not t.rebuild]
        if live:
            with self.read_models.transaction() as tx:
                for track in live:
                    self.catalog.set_state(tx, track.projection.name, self.owner, LIVE)

    # -- rebuilds ------------------------------------------------------------------------------

    def _passed_over(self, projection: Projection, newest: int) -> None:
        """Say once per process that ``projection`` is left alone: the catalog holds (or is
        building) a version newer than this process's code."""
        if projection.name not in self._passed:
            self._passed.add(projection.name)
            log.warning(
                "projection %s: the read models hold (or are building) version %d, this"
                " process's code is version %d: left to the processes that run version %d",
                projection.name, newest, projection.version, newest,
            )  # fmt: skip

    def _start_rebuild(self, projection: Projection) -> ProjectionRecord:
        total = self.store.count_events()
        with self.read_models.transaction() as tx:
            generation = self.catalog.start_rebuild(
                tx, projection.name, self.owner, projection.version, total
            )
            create_generation(tx, projection, generation, defer_indexes=True)
        log.info("projection %s: rebuilding into generation %d", projection.name, generation)
        self._caught_up[(projection.name, True)] = False
        return self.catalog.record(projection.name)

    def _finish_rebuild_if_caught_up(self, projection: Projection) -> None:
        record = self.catalog.record(projection.name)
        if (
            record.rebuild_generation is None
            or record.rebuild_position is None
            or record.state == FAILED
            or not self._caught_up.get((projection.name, True), False)
        ):
            return
        frozen = record.version != projection.version
        if not frozen and record.rebuild_position < record.position:
            return
        with self.read_models.transaction() as tx:
            create_deferred_indexes(tx, projection, record.rebuild_generation)
            point_views(tx, projection, record.rebuild_generation)
            self.catalog.finish_rebuild(tx, projection.name, self.owner)
            drop_generation(tx, projection, record.generation)
        log.info("projection %s: generation %d is live", projection.name, record.rebuild_generation)
        self._caught_up[(projection.name, False)] = True
        self._caught_up.pop((projection.name, True), None)

    def _wait_for_events(self) -> None:
        records = self.catalog.records()
        positions = [r.position for n, r in records.items() if n in self._renew_at]
        after = min(positions) if positions else 0
        try:
            self.store.wait_for_events(after, self.idle_wait)
        except StoreError:
            self._stopping.wait(self.idle_wait)


def _shares_sqlite_file(store: EventStore, read_models: ReadModelDatabase) -> bool:
    store_path = getattr(store, "path", None)
    models_path = getattr(read_models, "path", None)
    if read_models.dialect != "sqlite" or store_path is None or models_path is None:
        return False
    return bool(os.path.realpath(store_path) == os.path.realpath(models_path))


def _is_dead_local_runner(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _apply(projection: Projection, writer: ProjectionWriter, events: list[RecordedEvent]) -> None:
    try:
        projection.apply(writer, events)
        writer.flush()  # a projection's own apply() may leave writes queued
    except BaseException:
        writer.discard()  # the caller rolls back; queued writes must not outlive that
        raise


def _relevant(projection: Projection, events: list[RecordedEvent]) -> list[RecordedEvent]:
    handled = projection.handlers
    if type(projection).apply is not Projection.apply:
        return events
    kinds = projection.aggregate_types
    return [
        event
        for event in events
        if event.event_type in handled and (kinds is None or event.aggregate_type in kinds)
    ]
