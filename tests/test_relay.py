"""The relay onto Redis Streams (the real Redis at 127.0.0.1:6379): every event once, in order,
through relay crashes and a broker outage."""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

import cronica
from cronica import EventStore, NewEvent, RecordedEvent
from cronica.bus.memory import MemoryBus
from cronica.bus.redis_streams import RedisStreamsBus
from cronica.errors import BusError, BusUnavailableError
from cronica.relay import Relay
from tests.conftest import REDIS_URL, require_postgres, require_redis


def append_many(store: EventStore, count: int, stream: str = "acc-1") -> list[int]:
    return [
        store.append(stream, [NewEvent("DepositMade", {"amount": f"{n}.00"})]).position
        for n in range(1, count + 1)
    ]


@pytest.fixture
def stream_key() -> Iterator[str]:
    """A fresh Redis stream (the test needs Redis), deleted afterwards."""
    require_redis()
    key = f"cronica-test:{uuid.uuid4().hex}"
    yield key
    redis.Redis.from_url(REDIS_URL).delete(key)


def entries(key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    found: Any = redis.Redis.from_url(REDIS_URL).xrange(key)
    return list(found)


def test_every_event_reaches_the_stream_with_its_envelope(
    store: EventStore, stream_key: str
) -> None:
    positions = append_many(store, 25)
    with (
        RedisStreamsBus(REDIS_URL, stream=stream_key) as bus,
        Relay(store, bus, batch_size=10) as relay,
    ):
        assert relay.lag() == 25
        assert relay.run_until_caught_up() == 25
        assert relay.position == positions[-1]
        assert relay.lag() == 0
        assert bus.last_position() == positions[-1]
    got = entries(stream_key)
    assert [entry_id for entry_id, _ in got] == [f"{p}-0".encode() for p in positions]
    _, fields = got[0]
    assert set(fields) == {b"eventId", b"eventType", b"aggregateId", b"position", b"envelope"}
    envelope = RecordedEvent.from_json(fields[b"envelope"])
    assert (envelope.event_type, envelope.data, envelope.position) == (
        "DepositMade",
        {"amount": "1.00"},
        positions[0],
    )
    assert fields[b"eventId"].decode() == str(envelope.event_id)
    assert int(fields[b"position"]) == positions[0]


def test_a_relay_that_crashed_before_its_checkpoint_adds_no_duplicates(
    store: EventStore, stream_key: str
) -> None:
    append_many(store, 30)
    with RedisStreamsBus(REDIS_URL, stream=stream_key) as bus:
        # The crashed relay had published the first 20, and its checkpoint stayed at 0.
        assert bus.publish(store.read_all(limit=20)) == 20
        with Relay(store, bus, batch_size=7) as relay:
            relay.run_until_caught_up()
            published = relay.checkpoints.query(
                "SELECT published FROM cronica_relays WHERE name = ?", [bus.name]
            )
    assert published == [(10,)]  # only the 10 the stream did not hold yet
    ids = [entry_id for entry_id, _ in entries(stream_key)]
    assert len(ids) == len(set(ids)) == 30


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_checkpoint_survives_a_restart(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    if backend == "postgresql":
        require_postgres()
    store = make_store(backend)
    append_many(store, 5)
    with Relay(store, MemoryBus()) as first:
        assert first.run_until_caught_up() == 5
    append_many(store, 3, stream="acc-2")
    again = MemoryBus()  # the same name: the same checkpoint, in the store's database
    with Relay(store, again) as second:
        assert second.run_until_caught_up() == 3
    assert [e.aggregate_id for e in again.events] == ["acc-2"] * 3


class Proxy:
    """A TCP forwarder to Redis that can be cut and restored: a broker outage on demand."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.up()

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            # shutdown() first: close() alone leaves a socket that a thread blocks on in
            # accept() listening, and taking connections.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        for each in self._sockets:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()
        self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_events_written_while_redis_is_away_arrive_once_it_is_back(
    store: EventStore, stream_key: str
) -> None:
    target = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs
    proxy = Proxy((target["host"], target["port"]))
    try:
        bus = RedisStreamsBus(f"redis://127.0.0.1:{proxy.port}/0", stream=stream_key, timeout=1)
        with bus, Relay(store, bus, batch_size=50, idle_wait=0.2) as relay:
            relay.start()
            first = append_many(store, 20)
            wait_until(lambda: len(entries(stream_key)) == 20)
            proxy.down()
            more = append_many(store, 40, stream="acc-2")  # the store takes writes meanwhile
            wait_until(lambda: isinstance(relay.last_error, BusUnavailableError))
            assert len(entries(stream_key)) == 20
            proxy.up()
            wait_until(lambda: len(entries(stream_key)) == 60)
            relay.stop()
    finally:
        proxy.down()
    positions = [int(fields[b"position"]) for _, fields in entries(stream_key)]
    assert positions == first + more
    envelopes = [orjson.loads(fields[b"envelope"]) for _, fields in entries(stream_key)]
    assert len({e["eventId"] for e in envelopes}) == 60


def test_a_relay_killed_mid_stream_loses_nothing_and_repeats_nothing(
    tmp_path: Path, stream_key: str
) -> None:
    """``cronica worker --bus`` SIGKILLed four times while a writer keeps appending: the
    stream ends up holding every event of the log, once, in order."""
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    bus_url = f"{REDIS_URL}?stream={stream_key}"
    command = [sys.executable, "-m", "cronica", "worker", "--store", url, "--bus", bus_url,
               "--batch-size", "20"]  # fmt: skip
    rng = random.Random(3)
    published: list[int] = []
    stop_writing = threading.Event()
    with cronica.connect(url) as store:

        def write() -> None:
            n = 0
            while not stop_writing.is_set():
                store.append(f"w{n % 7}", [NewEvent("Tick", {"n": n})])
                n += 1
                time.sleep(0.002)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for _ in range(4):
                worker = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                # Until this run has published something (start-up is slow on a busy
                # machine), then a random moment further: mid-stream, the writer never pauses.
                before, deadline = len(entries(stream_key)), time.monotonic() + 60
                while len(entries(stream_key)) <= before:
                    assert time.monotonic() < deadline, "the worker published nothing"
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 0.6))
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
                published.append(len(entries(stream_key)))
        finally:
            stop_writing.set()
            writer.join(timeout=10)
        positions = [e.position for e in store.read_all()]
        with RedisStreamsBus(REDIS_URL, stream=stream_key) as bus, Relay(store, bus) as relay:
            relay.run_until_caught_up()  # what the last kill left
    # Every worker published before it was killed.
    assert published == sorted(published) and len(set(published)) == len(published)
    got = [int(fields[b"position"]) for _, fields in entries(stream_key)]
    assert got == positions


def test_seek_skips_the_history_for_a_new_bus(store: EventStore) -> None:
    append_many(store, 4)
    bus = MemoryBus()
    with Relay(store, bus) as relay:
        relay.seek(store.head_position())
        later = append_many(store, 2, stream="acc-2")
        assert relay.run_until_caught_up() == 2
    assert [e.position for e in bus.events] == later


def test_a_store_whose_positions_are_behind_the_stream_is_refused_not_dropped(
    stream_key: str,
) -> None:
    """A new store (a compacting migrate, say) relayed onto the stream an older one filled:
    its positions 1 to 3 are at or below the stream's top. They used to count as published,
    and were lost with the relay reporting no lag."""
    old, new = cronica.connect("memory://"), cronica.connect("memory://")
    append_many(old, 6)
    append_many(new, 3, stream="cart-2")
    with RedisStreamsBus(REDIS_URL, stream=stream_key) as bus:
        Relay(old, bus).run_until_caught_up()
        with Relay(new, bus) as relay:
            with pytest.raises(BusError, match="holds another event there"):
                relay.run_once()
            assert relay.position == 0 and relay.lag() == 3
        assert bus.publish(old.read_all(limit=4)) == 0  # the same events again: published


def test_an_event_below_a_trimmed_stream_counts_as_published(
    store: EventStore, stream_key: str
) -> None:
    append_many(store, 10)
    client: Any = redis.Redis.from_url(REDIS_URL)
    with RedisStreamsBus(REDIS_URL, stream=stream_key) as bus:
        assert bus.publish(store.read_all()) == 10
        client.xtrim(
            stream_key, minid=f"{store.read_all()[5].position}-0", approximate=False
        )  # 5 trimmed away
        assert bus.publish(store.read_all()) == 0  # a relay's retry after a crash
    assert client.xlen(stream_key) == 5


def test_a_page_of_large_events_goes_in_several_calls_in_order(
    store: EventStore, stream_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of 1,000 events of 1 MiB in one call would pass Redis's 1 GiB query buffer and
    be refused, for ever; here the limit per call is lowered to show the split keeps order."""
    from cronica.bus import redis_streams

    monkeypatch.setattr(redis_streams, "MAX_CALL_BYTES", 1000)
    for n in range(12):
        store.append(f"s-{n % 3}", [NewEvent("Happened", {"blob": "x" * 300, "n": n})])
    with RedisStreamsBus(REDIS_URL, stream=stream_key) as bus:
        calls: list[int] = []
        real = bus._call

        def counted(entries: list[Any]) -> int:
            calls.append(len(entries) // 6)
            return real(entries)

        bus._call = counted  # type: ignore[method-assign]
        assert bus.publish(store.read_all()) == 12
        assert bus.publish(store.read_all()) == 0  # again: nothing new
    assert len(calls) >= 8 and sum(calls[: len(calls) // 2]) == 12
    assert [int(f[b"position"]) for _, f in entries(stream_key)] == [
        e.position for e in store.read_all()
    ]
