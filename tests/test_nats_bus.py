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
