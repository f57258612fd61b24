"""The global order never lies: concurrent writers, late commits, rollbacks, one contested stream.

Each writer uses a store object of its own (its own database connection, as another process
would); a reader follows ``read_all`` from its last position while they write.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cronica import ConcurrencyError, EventStore, NewEvent, RecordedEvent
from cronica.store.sqlite import SQLiteEventStore
from tests.conftest import POSTGRES_URL

WRITERS = 8
APPENDS_PER_WRITER = 150


class Follower:
    """Follows the global log like a subscription: from its last position, page by page."""

    def __init__(self, store: EventStore, page: int = 50) -> None:
        self.store = store
        self.page = page
        self.seen: list[RecordedEvent] = []
        self.last = 0

    def poll(self) -> int:
        events = self.store.read_all(after=self.last, limit=self.page)
        for event in events:
            assert event.position > self.last, "positions went backwards"
            self.last = event.position
        self.seen.extend(events)
        return len(events)

    def drain_until(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            if not self.poll():
                time.sleep(0.01)


def run_writers(
    make_writer: Callable[[], EventStore], appends: int, writers: int = WRITERS
) -> tuple[list[uuid.UUID], Follower, EventStore]:
    """Writers append while a follower reads; returns every appended id and the follower."""
    stores = [make_writer() for _ in range(writers + 1)]
    follower = Follower(stores[-1])
    written: list[list[uuid.UUID]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []
    start = threading.Barrier(writers + 1)
    done = threading.Event()

    def write(index: int) -> None:
        try:
            start.wait()
            store = stores[index]
            for n in range(appends):
                size = 1 if n % 5 else 3  # mostly single events, some batches
                batch = [NewEvent("Tick", {"w": index, "n": n, "k": k}) for k in range(size)]
                store.append(f"stream-{index}-{n % 7}", batch)
                written[index].extend(event.event_id for event in batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    start.wait()
    while any(thread.is_alive() for thread in threads):
        follower.poll()
    for thread in threads:
        thread.join()
    done.set()
    assert not errors, errors
    all_ids = [event_id for ids in written for event_id in ids]
    follower.drain_until(len(all_ids))
    return all_ids, follower, stores[0]


def assert_seen_exactly_once_in_order(all_ids: list[uuid.UUID], follower: Follower) -> None:
    seen_ids = [event.event_id for event in follower.seen]
    assert len(seen_ids) == len(set(seen_ids)), "the follower saw an event twice"
    missing = set(all_ids) - set(seen_ids)
    assert not missing, f"the follower skipped {len(missing)} of {len(all_ids)} events"
    assert len(seen_ids) == len(all_ids)
    positions = [event.position for event in follower.seen]
    assert all(a < b for a, b in itertools.pairwise(positions))
    last_version: dict[str, int] = {}
    for event in follower.seen:
        assert event.version == last_version.get(event.aggregate_id, 0) + 1
        last_version[event.aggregate_id] = event.version


def connections(backend: str, make_store: Callable[..., EventStore]) -> Callable[[], EventStore]:
    """A new connection to one database per call (the in-memory store has just one)."""
    if backend == "memory":
        shared = make_store(backend)
        return lambda: shared
    return lambda: make_store(backend)


def test_reader_never_skips_an_event_under_concurrent_writers(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    all_ids, follower, store = run_writers(connections(backend, make_store), APPENDS_PER_WRITER)
    assert_seen_exactly_once_in_order(all_ids, follower)
    assert follower.seen == store.read_all()


def test_reader_never_skips_with_group_commit_shared_by_writers(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    shared = make_store(backend)
    all_ids, follower, _ = run_writers(lambda: shared, APPENDS_PER_WRITER, writers=16)
    assert_seen_exactly_once_in_order(all_ids, follower)


@pytest.mark.parametrize("shared_store", [False, True], ids=["own-connections", "group-commit"])
def test_twenty_concurrent_appends_at_one_expected_version_one_wins(
    backend: str, make_store: Callable[..., EventStore], shared_store: bool
) -> None:
    connect = connections(backend, make_store)
    setup = connect()
    setup.append("contested", [NewEvent("Opened", {})])
    contenders = 20
    stores = [setup if shared_store else connect() for _ in range(contenders)]
    barrier = threading.Barrier(contenders)
    outcomes: list[Any] = [None] * contenders

    def contend(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = stores[index].append(
                "contested", [NewEvent("Withdrawn", {"by": index})], expected_version=1
            )
        except ConcurrencyError as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if not isinstance(o, ConcurrencyError)]
    losers = [o for o in outcomes if isinstance(o, ConcurrencyError)]
    assert len(winners) == 1, outcomes
    assert len(losers) == contenders - 1
    assert all(loser.expected == 1 and loser.actual == 2 for loser in losers)
    events = setup.read_stream("contested")
    assert [e.version for e in events] == [1, 2]
    assert events[1].data["by"] == outcomes.index(winners[0])


# -- transactions held open, committed late, rolled back ----------------------------------------


@contextmanager
def open_append_transaction(
    backend: str, store: EventStore, aggregate_id: str
) -> Iterator[dict[str, Any]]:
    """An append left uncommitted in a raw transaction; ``control['commit']`` decides its end."""
    control: dict[str, Any] = {"commit": True, "event_id": uuid.uuid4()}
    if backend == "postgresql":
        import psycopg

        schema = store.schema  # type: ignore[attr-defined]
        conn = psycopg.connect(POSTGRES_URL, options=f"-c search_path={schema}")
        conn.execute(
            "SELECT * FROM cronica_append(%s::text[], %s::text[], %s::bigint[], %s::int[],"
            " %s::int[], %s::uuid[], %s::text[], %s::text[], %s::text[])",
            (
                [aggregate_id],
                [None],
                [-1],
                [1],
                [1],
                [control["event_id"]],
                ["Late"],
                ["{}"],
                ["{}"],
            ),
        )
        control["pid"] = conn.info.backend_pid
        try:
            yield control
        finally:
            conn.commit() if control["commit"] else conn.rollback()
            conn.close()
    else:
        assert isinstance(store, SQLiteEventStore)
        conn_s = sqlite3.connect(store.path, isolation_level=None)
        conn_s.execute("BEGIN IMMEDIATE")
        conn_s.execute(
            "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type,"
            " event_version, event_data, metadata, timestamp) VALUES (?, ?, '', 'Late', 1, '{}',"
            " '{}', '2026-01-01T00:00:00.000000+00:00')",
            (str(control["event_id"]), aggregate_id),
        )
        try:
            yield control
        finally:
            conn_s.execute("COMMIT" if control["commit"] else "ROLLBACK")
            conn_s.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgresql":
        from tests.conftest import require_postgres

        require_postgres()
    return name


def test_a_transaction_that_starts_first_and_commits_last_is_not_skipped(
    sql_backend: str, make_store: Callable[..., EventStore]
) -> None:
    store = make_store(sql_backend)
    store.append("before", [NewEvent("Early", {})])
    follower = Follower(make_store(sql_backend))
    later: list[uuid.UUID] = []
    with open_append_transaction(sql_backend, store, "late-stream") as control:
        # Other writers commit while the first transaction is still open.
        def write_more() -> None:
            for n in range(5):
                event = NewEvent("After", {"n": n})
                store.append(f"after-{n}", [event])
                later.append(event.event_id)

        writer = threading.Thread(target=write_more)
        writer.start()
        if sql_backend == "postgresql":
            writer.join()
            assert len(later) == 5  # they committed, yet readers must not see past the open one
        follower.drain_until(1, timeout=1)
        follower.poll()
        assert [e.event_type for e in follower.seen] == ["Early"]
        late_id = control["event_id"]
    writer.join()
    follower.drain_until(7)
    seen = [e.event_id for e in follower.seen]
    assert late_id in seen and set(later) <= set(seen) and len(seen) == 7
    assert [e.position for e in follower.seen] == sorted(e.position for e in follower.seen)


def test_rolled_back_appends_leave_no_event_and_do_not_stall_readers(
    sql_backend: str, make_store: Callable[..., EventStore]
) -> None:
    store = make_store(sql_backend)
    follower = Follower(make_store(sql_backend))
    store.append("s", [NewEvent("One", {})])
    with open_append_transaction(sql_backend, store, "doomed") as control:
        control["commit"] = False
    store.append("s", [NewEvent("Two", {})])
    follower.drain_until(2, timeout=5)
    assert [e.event_type for e in follower.seen] == ["One", "Two"]
    assert store.read_stream("doomed") == []
    assert store.status().readable_position == store.status().head_position


def test_a_transaction_left_open_makes_readers_wait_visibly_and_never_skip(
    make_store: Callable[..., EventStore], pg_schema: str
) -> None:
    from cronica.store.postgres import PostgresEventStore

    store = make_store("postgresql")
    assert isinstance(store, PostgresEventStore)
    follower = Follower(make_store("postgresql"))
    store.append("s", [NewEvent("One", {})])
    with open_append_transaction("postgresql", store, "slow") as control:
        store.append("s", [NewEvent("Two", {})])
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # the transaction stays open for seconds
            follower.poll()
            time.sleep(0.05)
        assert [e.event_type for e in follower.seen] == ["One"]
        status = store.status()
        assert status.readable_position < status.head_position
        assert control["pid"] in [holder.pid for holder in status.waiting_on]
    follower.drain_until(3)
    assert sorted(e.event_type for e in follower.seen) == ["Late", "One", "Two"]
    assert store.status().waiting_on == []
