"""Following the global log without busy polling: head_position, count_events, wait_for_events.

The time bounds here are correctness bounds (a waiter must wake well before its long timeout),
not performance figures.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cronica import AsyncEventStore, EventStore, InvalidReadError, NewEvent, SQLiteEventStore
from cronica.errors import InvalidInputError, StoreError
from tests.conftest import POSTGRES_URL

LONG = 10.0
"""The timeout of a wait that must end early."""
PROMPT = 2.0
"""How soon after the append it must end."""


def ev(n: int = 0) -> NewEvent:
    return NewEvent("Tick", {"n": n})


class Waiter:
    """``store.wait_for_events(after, timeout)`` in a thread; what it returned or raised, when."""

    def __init__(self, store: EventStore, after: int, timeout: float = LONG) -> None:
        self.result: bool | None = None
        self.error: BaseException | None = None
        self.ended = 0.0
        self._started = threading.Event()

        def run() -> None:
            self._started.set()
            try:
                self.result = store.wait_for_events(after, timeout)
            except BaseException as exc:
                self.error = exc
            self.ended = time.monotonic()

        self._thread = threading.Thread(target=run)
        self._thread.start()
        self._started.wait()
        time.sleep(0.1)  # let it block

    def join(self, timeout: float = LONG + 5) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the waiter is still blocked"


# -- head_position and count_events ----------------------------------------------------------


def test_head_position_and_count_events(store: EventStore) -> None:
    assert store.head_position() == 0
    assert store.count_events() == 0
    assert store.count_events(after=5) == 0
    store.append("a", [ev(1), ev(2), ev(3)])
    store.append("b", [ev(4)])
    events = store.read_all()
    assert store.head_position() == events[-1].position
    assert store.count_events() == 4
    assert store.count_events(events[0].position) == 3
    assert store.count_events(events[-2].position) == 1
    assert store.count_events(store.head_position()) == 0
    assert store.count_events(2**64) == 0


@pytest.mark.parametrize("after", [-1, True, "1", 1.5, None])
def test_count_events_refuses_bad_positions(store: EventStore, after: Any) -> None:
    with pytest.raises(InvalidReadError):
        store.count_events(after)


@pytest.mark.parametrize(
    ("after", "timeout"),
    [(-1, 1), (True, 1), ("0", 1), (None, 1), (0, -1), (0, float("nan")), (0, "1"), (0, False)],
)
def test_wait_for_events_refuses_bad_arguments(store: EventStore, after: Any, timeout: Any) -> None:
    with pytest.raises(InvalidReadError):
        store.wait_for_events(after, timeout)


# -- waiting -----------------------------------------------------------------------------------


def test_wait_returns_at_once_when_an_event_is_there(store: EventStore) -> None:
    store.append("a", [ev(1), ev(2)])
    first, last = store.read_all()
    started = time.monotonic()
    assert store.wait_for_events(0, LONG) is True
    assert store.wait_for_events(first.position, LONG) is True
    assert time.monotonic() - started < PROMPT
    assert store.wait_for_events(last.position, 0) is False


def test_wait_times_out_when_nothing_is_appended(store: EventStore) -> None:
    assert store.wait_for_events(0, 0) is False
    started = time.monotonic()
    assert store.wait_for_events(0, 0.2) is False
    assert time.monotonic() - started >= 0.19
    store.append("a", [ev()])
    head = store.head_position()
    assert store.wait_for_events(head, 0.1) is False


def test_an_append_through_the_same_store_wakes_waiters_at_once(store: EventStore) -> None:
    store.append("a", [ev()])
    head = store.head_position()
    waiters = [Waiter(store, head), Waiter(store, head)]
    late = Waiter(store, 2**62)  # waits for a position no append reaches
    appended = time.monotonic()
    store.append("b", [ev()])
    for waiter in waiters:
        waiter.join()
        assert waiter.error is None
        assert waiter.result is True
        assert waiter.ended - appended < PROMPT
    assert late._thread.is_alive()
    store.close()
    late.join()
    assert isinstance(late.error, StoreError)


def test_concurrent_appends_in_shared_transactions_wake_a_waiter(store: EventStore) -> None:
    waiter = Waiter(store, 0)
    writers = [threading.Thread(target=store.append, args=(f"s-{i}", [ev(i)])) for i in range(8)]
    appended = time.monotonic()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    waiter.join()
    assert waiter.result is True
    assert waiter.ended - appended < PROMPT
    assert store.count_events() == 8


def test_closing_the_store_ends_a_wait(store: EventStore) -> None:
    waiter = Waiter(store, 0)
    closed = time.monotonic()
    store.close()
    waiter.join()
    assert isinstance(waiter.error, StoreError)
    assert waiter.ended - closed < PROMPT
    with pytest.raises(StoreError):
        store.wait_for_events(0, 0)


def test_interrupting_ends_current_waits_with_a_spurious_wake(store: EventStore) -> None:
    waiter = Waiter(store, 0)
    interrupted = time.monotonic()
    store.interrupt_waiters()
    waiter.join()
    assert waiter.result is True and waiter.error is None
    assert waiter.ended - interrupted < PROMPT
    assert store.read_all() == []  # spurious: nothing is there
    assert store.wait_for_events(0, 0.05) is False  # later waits are not affected


# -- other store objects and processes ---------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_another_store_object_finds_an_event_that_is_there(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    writer = make_store(backend)
    follower = make_store(backend, poll_interval=60)  # the first look finds it, no poll
    writer.append("a", [ev()])
    started = time.monotonic()
    assert follower.wait_for_events(0, LONG) is True
    assert time.monotonic() - started < PROMPT
    assert follower.head_position() == writer.head_position()


def test_sqlite_another_store_object_on_the_file_wakes_a_waiter(
    make_store: Callable[..., EventStore],
) -> None:
    follower = make_store("sqlite", poll_interval=0.05)
    writer = make_store("sqlite")
    waiter = Waiter(follower, 0)
    appended = time.monotonic()
    writer.append("a", [ev()])
    waiter.join()
    assert waiter.result is True
    assert waiter.ended - appended < PROMPT


_APPEND_IN_ANOTHER_PROCESS = """
import sys
from cronica import NewEvent, SQLiteEventStore
with SQLiteEventStore(sys.argv[1]) as store:
    store.append("from-elsewhere", [NewEvent("Tick", {})])
"""


def test_sqlite_an_append_by_another_process_wakes_a_waiter(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SQLiteEventStore(path) as store:
        waiter = Waiter(store, 0, timeout=30)
        subprocess.run(
            [sys.executable, "-c", _APPEND_IN_ANOTHER_PROCESS, str(path)], check=True, timeout=30
        )
        appended = time.monotonic()
        waiter.join()
        assert waiter.result is True
        assert waiter.ended - appended < PROMPT
        assert [e.aggregate_id for e in store.read_all()] == ["from-elsewhere"]


@pytest.mark.parametrize("bad", [0, -1, float("inf"), True, "1"])
def test_poll_interval_must_be_positive(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        SQLiteEventStore(tmp_path / "events.db", poll_interval=bad)


def test_postgres_another_store_object_wakes_a_waiter_by_notify(
    make_store: Callable[..., EventStore],
) -> None:
    follower = make_store("postgresql", poll_interval=60)  # no fallback poll in time
    writer = make_store("postgresql")
    assert follower.wait_for_events(0, 0) is False  # the listener is up: the test is the wake
    waiter = Waiter(follower, 0)
    appended = time.monotonic()
    writer.append("a", [ev()])
    waiter.join()
    assert waiter.result is True
    assert waiter.ended - appended < PROMPT
    notifier = writer._notifier  # type: ignore[attr-defined]
    while notifier.sent < 1 and time.monotonic() - appended < PROMPT:
        time.sleep(0.01)  # the count moves just after the server has passed the notification on
    assert notifier.sent >= 1
    assert len(follower.read_all()) == 1


def test_postgres_an_event_nobody_notified_is_found_by_the_fallback_poll(
    make_store: Callable[..., EventStore],
) -> None:
    import psycopg

    follower = make_store("postgresql", poll_interval=0.2)
    # A commit with no NOTIFY: the server-side append function called by hand (as a writer that
    # died between commit and notify, or another program, leaves it).
    with psycopg.connect(
        POSTGRES_URL,
        autocommit=True,
        options=f"-c search_path={follower.schema}",  # type: ignore[attr-defined]
    ) as conn:
        waiter = Waiter(follower, 0)
        appended = time.monotonic()
        conn.execute(
            "SELECT * FROM cronica_append_one('raw', NULL, -1, gen_random_uuid(), 'Tick',"
            " '{}', '{}')"
        )
    waiter.join()
    assert waiter.result is True
    assert waiter.ended - appended < PROMPT
    # And a writer store whose notifier is off.
    writer = make_store("postgresql")
    writer._notify_commits = False  # type: ignore[attr-defined]
    head = follower.head_position()
    waiter = Waiter(follower, head)
    appended = time.monotonic()
    writer.append("quiet", [ev()])
    waiter.join()
    assert waiter.result is True
    assert waiter.ended - appended < PROMPT
    assert writer._notifier.sent == 0  # type: ignore[attr-defined]


def test_postgres_close_stops_the_notifier_and_listener(
    make_store: Callable[..., EventStore],
) -> None:
    store = make_store("postgresql")
    store.append("a", [ev()])
    assert store.wait_for_events(store.head_position(), 0.05) is False
    names = {t.name for t in threading.enumerate()}
    assert {f"cronica-notify-{store.schema}", f"cronica-listen-{store.schema}"} <= names  # type: ignore[attr-defined]
    store.close()
    assert not [t for t in threading.enumerate() if t.name.endswith(store.schema)]  # type: ignore[attr-defined]


def test_postgres_channel_names_fit_and_differ() -> None:
    from cronica.store._pg_wakeups import channel_name

    assert channel_name("public") == "cronica_events_public"
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"
    assert len(channel_name(long_a)) <= 63
    assert channel_name(long_a) != channel_name(long_b)


# -- asyncio -----------------------------------------------------------------------------------


def test_async_wait_for_events(backend: str, make_store: Callable[..., EventStore]) -> None:
    async def scenario() -> None:
        store = AsyncEventStore(make_store(backend))
        assert await store.head_position() == 0
        assert await store.wait_for_events(0, 0.3) is False
        waiting = asyncio.create_task(store.wait_for_events(0, LONG))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await store.append("a", [ev()])
        assert await asyncio.wait_for(waiting, LONG) is True
        assert time.monotonic() - started < PROMPT
        assert await store.count_events() == 1
        assert await store.head_position() == (await store.read_all())[-1].position
        with pytest.raises(InvalidReadError):
            await store.wait_for_events(-1, 1)
        await store.close()

    asyncio.run(scenario())


def test_a_cancelled_async_wait_frees_its_thread(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    async def scenario() -> None:
        store = AsyncEventStore(make_store(backend), max_threads=1)
        waiting = asyncio.create_task(store.wait_for_events(0, LONG))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # The only worker thread is free again within one slice.
        assert await asyncio.wait_for(store.head_position(), PROMPT) == 0
        await store.close()

    asyncio.run(scenario())
