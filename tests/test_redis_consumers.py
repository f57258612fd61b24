"""Consumer groups on the events stream (the real Redis): every group gets every event, a dead
consumer's entries are claimed again, failures end in the dead-letter stream, trimming keeps
what some group still needs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

import cronica
from cronica import NewEvent, RecordedEvent
from cronica.bus.redis_consumer import StreamConsumer, trim_acknowledged
from cronica.bus.redis_streams import RedisStreamsBus
from tests.conftest import REDIS_URL, require_redis


@pytest.fixture
def stream() -> Iterator[str]:
    require_redis()
    key = f"cronica-test:{uuid.uuid4().hex}"
    yield key
    redis.Redis.from_url(REDIS_URL).delete(key, f"{key}:dead-letters")


def publish(stream: str, count: int) -> list[RecordedEvent]:
    store = cronica.connect("memory://")
    for n in range(count):
        store.append(f"acc-{n % 3}", [NewEvent("DepositMade", {"amount": f"{n + 1}.00"})])
    events = store.read_all()
    with RedisStreamsBus(REDIS_URL, stream=stream) as bus:
        bus.publish(events)
    return events


def consumer(
    stream: str, group: str, name: str, handler: Callable[[RecordedEvent], None], **options: Any
) -> StreamConsumer:
    return StreamConsumer(
        handler, group=group, consumer=name, url=REDIS_URL, stream=stream, **options
    )


def test_every_group_gets_every_event_and_its_consumers_share_them(stream: str) -> None:
    events = publish(stream, 30)
    seen: dict[str, list[int]] = {"audit-1": [], "stats-1": [], "stats-2": []}
    audit = consumer(stream, "audit", "audit-1", lambda e: seen["audit-1"].append(e.position))
    first = consumer(
        stream, "stats", "stats-1", lambda e: seen["stats-1"].append(e.position), batch=10
    )
    second = consumer(
        stream, "stats", "stats-2", lambda e: seen["stats-2"].append(e.position), batch=10
    )
    assert audit.run_once() == 30
    while first.run_once() + second.run_once():
        pass
    everything = [e.position for e in events]
    assert seen["audit-1"] == everything
    assert sorted(seen["stats-1"] + seen["stats-2"]) == everything
    assert seen["stats-1"] and seen["stats-2"]  # shared, not duplicated


def test_entries_of_a_dead_consumer_are_claimed_by_another(stream: str) -> None:
    events = publish(stream, 5)

    def dies(_: RecordedEvent) -> None:
        raise KeyboardInterrupt  # the process dies mid-batch: nothing acknowledged

    with pytest.raises(KeyboardInterrupt):
        consumer(stream, "mail", "dead", dies).run_once()
    got: list[int] = []
    survivor = consumer(stream, "mail", "alive", lambda e: got.append(e.position), claim_idle=0.05)
    time.sleep(0.1)
    assert survivor.run_once() == 5
    assert got == [e.position for e in events]
    assert redis.Redis.from_url(REDIS_URL).xpending(stream, "mail")["pending"] == 0


def test_a_failing_event_is_retried_then_dead_lettered_and_the_group_goes_on(stream: str) -> None:
    events = publish(stream, 4)
    bad = events[1].event_id
    handled: list[int] = []
    attempts = 0

    def handle(event: RecordedEvent) -> None:
        nonlocal attempts
        if event.event_id == bad:
            attempts += 1
            raise ValueError("cannot send this one")
        handled.append(event.position)

    worker = consumer(stream, "notify", "w1", handle, max_attempts=3, claim_idle=0.0)
    for _ in range(5):
        worker.run_once()
    assert attempts == 3
    assert handled == [e.position for e in events if e.event_id != bad]
    client: Any = redis.Redis.from_url(REDIS_URL)
    [(_, letter)] = client.xrange(f"{stream}:dead-letters")
    assert RecordedEvent.from_json(letter[b"envelope"]).event_id == bad
    assert letter[b"group"] == b"notify"
    assert letter[b"error"] == b"ValueError: cannot send this one"
    assert client.xpending(stream, "notify")["pending"] == 0


def test_trimming_keeps_what_some_group_has_not_acknowledged(stream: str) -> None:
    events = publish(stream, 10)
    assert trim_acknowledged(REDIS_URL, stream) == 0  # no group yet: nobody has read anything
    consumer(stream, "fast", "f", lambda e: None).run_once()
    slow = consumer(stream, "slow", "s", lambda e: None, batch=4)
    slow.run_once()  # acknowledges the first 4
    assert trim_acknowledged(REDIS_URL, stream) == 4
    client: Any = redis.Redis.from_url(REDIS_URL)
    remaining = [int(f[b"position"]) for _, f in client.xrange(stream)]
    assert remaining == [e.position for e in events[4:]]
    slow.run_once()
    slow.run_once()
    assert trim_acknowledged(REDIS_URL, stream) == 6


@pytest.mark.parametrize(
    "fields",
    [{"foo": "bar"}, {"envelope": b"not json"}, {"envelope": b'{"eventId": 5}'},
     {"envelope": b"[1, 2]"}, {"envelope": b"\xff\xfe"}],
)  # fmt: skip
def test_an_entry_that_is_not_an_event_goes_to_the_dead_letters_at_once(
    stream: str, fields: dict[str, Any]
) -> None:
    """Someone else's entry on the events stream: it used to raise out of run_once on every
    try (a bare KeyError, say), never reaching the dead letters, and held the group up."""
    client: Any = redis.Redis.from_url(REDIS_URL)
    before = publish(stream, 1)
    client.xadd(stream, fields, id="1000-0")
    after = cronica.connect("memory://")
    after.append("acc-9", [NewEvent("DepositMade", {"amount": "1.00"})])
    client.xadd(stream, {"envelope": after.read_all()[0].to_json()}, id="1001-0")
    handled: list[str] = []
    worker = consumer(stream, "notify", "w1", lambda e: handled.append(e.aggregate_id))
    assert worker.run_once() == 2
    assert handled == [before[0].aggregate_id, "acc-9"]
    [(_, letter)] = client.xrange(f"{stream}:dead-letters")
    assert letter[b"group"] == b"notify" and letter[b"deliveries"] == b"1"
    assert {k: v for k, v in letter.items() if k.decode() in fields} == {
        k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()
    }
    assert client.xpending(stream, "notify")["pending"] == 0


def test_the_background_consumer_survives_an_unexpected_error(stream: str) -> None:
    publish(stream, 3)
    handled: list[int] = []
    worker = consumer(stream, "notify", "w1", lambda e: handled.append(e.position))
    real = worker._run_once
    failures: list[int] = []

    def first_fails(block: float | None) -> int:
        if not failures:
            failures.append(1)
            raise RuntimeError("a bug")
        return real(block)

    worker._run_once = first_fails  # type: ignore[method-assign]
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(handled) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.close()
    assert failures == [1] and len(handled) == 3


def test_a_consumer_made_while_redis_is_away_joins_its_group_once_it_is_back(stream: str) -> None:
    from cronica.errors import BusUnavailableError
    from tests.test_relay import Proxy

    target: Any = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs
    proxy = Proxy((target["host"], target["port"]))
    proxy.down()
    handled: list[int] = []
    worker = StreamConsumer(
        lambda e: handled.append(e.position), group="late", consumer="w1",
        url=f"redis://127.0.0.1:{proxy.port}/0", stream=stream,
    )  # fmt: skip
    try:
        with pytest.raises(BusUnavailableError):
            worker.run_once()
        proxy.up()
        events = publish(stream, 3)
        assert worker.run_once() == 3
        assert handled == [e.position for e in events]
    finally:
        worker.close()
        proxy.down()
