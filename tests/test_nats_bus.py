"""The relay onto NATS JetStream (the real server at 127.0.0.1:4222): the same port as Redis,
every event once, in order, de-duplicated by message id."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest

import cronica
from cronica import EventStore, NewEvent, RecordedEvent
from cronica.bus import connect_bus
from cronica.bus.nats_jetstream import JetStreamBus
from cronica.relay import Relay
from tests.conftest import NATS_URL, require_nats


@pytest.fixture
def stream_name() -> Iterator[str]:
    require_nats()
    name = f"CRONICA_TEST_{uuid.uuid4().hex[:12].upper()}"
    yield name

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(name)
        await nc.close()

    asyncio.run(drop())


def read_stream(name: str, subject: str, count: int) -> list[RecordedEvent]:
    async def fetch() -> list[RecordedEvent]:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        subscription = await js.pull_subscribe(subject, durable=None, stream=name)
        messages: list[Any] = []
        while len(messages) < count:
            messages += await subscription.fetch(count - len(messages), timeout=5)
        for message in messages:
            await message.ack()
        await nc.close()
        return [RecordedEvent.from_json(m.data) for m in messages]

    return asyncio.run(fetch())


def test_the_relay_publishes_every_event_once_to_jetstream(
    store: EventStore, stream_name: str
) -> None:
    subject = f"test.{stream_name.lower()}"
    positions = [
        store.append(f"s{i % 3}", [NewEvent("Happened", {"n": i})]).position for i in range(25)
    ]
    bus = JetStreamBus(NATS_URL, stream=stream_name, subject=subject)
    with bus, Relay(store, bus, batch_size=10) as relay:
        assert relay.run_until_caught_up() == 25
        # A relay that crashed before its checkpoint publishes a page again: JetStream drops
        # the messages whose ids it has seen.
        assert bus.publish(store.read_all(limit=10)) == 0
    got = read_stream(stream_name, subject, 25)
    assert [e.position for e in got] == positions
    assert len({e.event_id for e in got}) == 25


def test_a_nats_url_picks_the_jetstream_bus(stream_name: str) -> None:
    bus = connect_bus(f"{NATS_URL}?stream={stream_name}")
    try:
        assert isinstance(bus, JetStreamBus)
        assert bus.name == f"nats:{stream_name}"
    finally:
        bus.close()


def test_an_event_over_the_server_s_max_payload_parks_the_relay_saying_why(
    make_store: Any, stream_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to fail on the server with a bare MaxPayloadError, retried for ever with no
    word of the event, the limit or what to do (and the events before it sent again each
    time)."""
    import time

    from cronica.bus.base import MessageTooLargeError

    store = make_store("sqlite", max_event_size=4 * 1024 * 1024)
    store.append("small", [NewEvent("Happened", {"n": 1})])
    subject = f"test.{stream_name.lower()}"
    bus = JetStreamBus(NATS_URL, stream=stream_name, subject=subject, duplicate_window=0.5)
    assert bus.max_message_bytes is not None
    store.append("big", [NewEvent("Happened", {"blob": "x" * bus.max_message_bytes})])
    store.append("small", [NewEvent("Happened", {"n": 2})])
    first, big, last = store.read_all()
    with caplog.at_level("WARNING", logger="cronica.relay"):
        relay = Relay(store, bus, idle_wait=0.1)
    assert "an event that large would stop the relay" in caplog.text
    with bus, relay:
        with pytest.raises(MessageTooLargeError, match="max_payload") as refused:
            relay.run_once()
        assert str(big.event_id) in str(refused.value)
        assert relay.position == first.position  # what came before it is published, once
        relay.start()
        deadline = time.monotonic() + 10
        while not isinstance(relay.last_error, MessageTooLargeError):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)  # parked: past the duplicate window, nothing is sent again
        assert relay.position == first.position
        relay.seek(big.position)  # what the message says to do
        while relay.position < last.position:
            assert time.monotonic() < deadline + 10
            time.sleep(0.05)
    got = read_stream(stream_name, subject, 2)
    assert [e.event_id for e in got] == [first.event_id, last.event_id]
    assert stream_messages(stream_name) == 2


def stream_messages(name: str) -> int:
    async def count() -> int:
        nc = await nats.connect(NATS_URL)
        info = await nc.jetstream().stream_info(name)
        await nc.close()
        return int(info.state.messages)

    return asyncio.run(count())


def test_a_nats_url_may_name_the_subject(stream_name: str) -> None:
    """Two streams on one server need two subjects: JetStream refuses a second stream on one."""
    subject = f"test.{stream_name.lower()}"
    bus = connect_bus(f"{NATS_URL}?stream={stream_name}&subject={subject}")
    try:
        assert isinstance(bus, JetStreamBus) and bus.subject == subject
    finally:
        bus.close()


def test_a_bus_made_while_nats_is_away_publishes_once_it_is_back(stream_name: str) -> None:
    """Like the Redis bus: ``serve --bus nats://...`` starts with NATS down and the relay
    retries. It used to block 20 s, then raise, and the service did not start."""
    import time
    from urllib.parse import urlsplit

    from cronica.errors import BusUnavailableError
    from tests.test_relay import Proxy

    target = urlsplit(NATS_URL)
    proxy = Proxy((str(target.hostname), int(target.port or 4222)))
    proxy.down()
    store = cronica.connect("memory://")
    store.append("s", [NewEvent("Happened", {"n": 1})])
    started = time.monotonic()
    subject = f"test.{stream_name.lower()}"
    bus = connect_bus(f"nats://127.0.0.1:{proxy.port}?stream={stream_name}&subject={subject}")
    try:
        assert time.monotonic() - started < 10
        with pytest.raises(BusUnavailableError):
            bus.publish(store.read_all())
        proxy.up()
        assert bus.publish(store.read_all()) == 1
    finally:
        bus.close()
        proxy.down()
    assert [e.event_id for e in read_stream(stream_name, subject, 1)] == [
        store.read_all()[0].event_id
    ]
