"""The seed's event handlers on both buses: the store's own log in process, and Redis Streams;
at least once delivery, de-duplicated by event id; dead letters after repeated failures."""

from __future__ import annotations

import uuid
from typing import Any

import redis

import cronica
from cronica import EventStore, NewEvent, RecordedEvent
from cronica.bus.log_consumer import LogConsumer
from cronica.bus.redis_consumer import StreamConsumer
from cronica.bus.redis_streams import RedisStreamsBus
from cronica.examples.bank import BankAccount, bank_events
from cronica.examples.bank_handlers import bank_handlers
from cronica.readmodels import read_models_for
from cronica.readmodels.base import ReadModelDatabase
from tests.conftest import REDIS_URL, require_redis


def bank_history(store: EventStore) -> None:
    accounts = cronica.Repository(store, BankAccount, bank_events, snapshots=None)
    with cronica.audit_context(actor="teller-7", reason="walk-in"):
        accounts.create("ana", lambda a: a.open("Ana"))
        accounts.execute("ana", lambda a: a.deposit("2500.00"))
        accounts.execute("ana", lambda a: a.withdraw("1500.00"))  # large: notified
        accounts.execute("ana", lambda a: a.withdraw("10.00"))
        accounts.create("bob", lambda a: a.open("Bob"))
        accounts.execute("bob", lambda a: a.close())  # notified
    store.append("other", [NewEvent("WithdrawalMade", {"amount": "9999.00"})])  # not the bank's


def outcome(db: ReadModelDatabase) -> dict[str, Any]:
    return {
        "notifications": sorted(db.query("SELECT account_id, kind, message FROM notifications")),
        "audit": db.query(
            "SELECT account_id, event_type, actor, reason FROM audit_log ORDER BY position"
        ),
        "analytics": sorted(
            db.query("SELECT event_type, events, amount_cents FROM analytics_daily")
        ),
    }


EXPECTED = {
    "notifications": [
        ("ana", "large_withdrawal", "1500.00 was withdrawn"),
        ("bob", "account_closed", "your account is closed"),
    ],
    "audit": [
        ("ana", "AccountCreated", "teller-7", "walk-in"),
        ("ana", "DepositMade", "teller-7", "walk-in"),
        ("ana", "WithdrawalMade", "teller-7", "walk-in"),
        ("ana", "WithdrawalMade", "teller-7", "walk-in"),
        ("bob", "AccountCreated", "teller-7", "walk-in"),
        ("bob", "AccountClosed", "teller-7", "walk-in"),
    ],
    "analytics": [
        ("AccountClosed", 1, 0),
        ("AccountCreated", 2, 0),
        ("DepositMade", 1, 250000),
        ("WithdrawalMade", 2, 151000),
    ],
}


def test_the_handlers_in_process_over_the_stores_log(store: EventStore) -> None:
    bank_history(store)
    with read_models_for(store) as db:
        consumers = [
            LogConsumer(store, handler, group=group, checkpoints=db)
            for group, handler in bank_handlers(db)
        ]
        for consumer in consumers:
            assert consumer.run_once() == store.count_events()
        assert outcome(db) == EXPECTED
        # Delivered again from the start (a lost checkpoint): nothing changes.
        with db.transaction() as tx:
            tx.execute("UPDATE cronica_consumers SET position = 0")
        for consumer in consumers:
            consumer.run_once()
        assert outcome(db) == EXPECTED


def test_the_same_handlers_over_redis_streams(store: EventStore) -> None:
    require_redis()
    key = f"cronica-test:{uuid.uuid4().hex}"
    client: Any = redis.Redis.from_url(REDIS_URL)
    bank_history(store)
    try:
        with RedisStreamsBus(REDIS_URL, stream=key) as bus:
            bus.publish(store.read_all())
        with read_models_for(store) as db:
            for group, handler in bank_handlers(db):
                StreamConsumer(
                    handler, group=group, consumer="c1", url=REDIS_URL, stream=key
                ).run_once()
            assert outcome(db) == EXPECTED
    finally:
        client.delete(key)


def test_a_failing_event_becomes_a_dead_letter_and_the_group_goes_on(store: EventStore) -> None:
    positions = [store.append(f"s{i}", [NewEvent("Happened", {"n": i})]).position for i in range(4)]
    handled: list[int] = []

    def handle(event: RecordedEvent) -> None:
        if event.data["n"] == 1:
            raise RuntimeError("the mail server said no")
        handled.append(event.position)

    with LogConsumer(store, handle, group="mailer", max_attempts=3) as consumer:
        assert consumer.run_once() == 1  # stops at the failing event
        assert consumer.run_once() == 0  # second attempt
        assert consumer.run_once() == 3  # third: given up, recorded, and the rest handled
        assert handled == [positions[0], positions[2], positions[3]]
        [(_, position, event_type, error, attempts)] = consumer.dead_letters()
        assert (position, event_type, attempts) == (positions[1], "Happened", 3)
        assert error == "RuntimeError: the mail server said no"
        assert consumer.position == positions[-1]
