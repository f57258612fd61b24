"""``cronica demo``'s generated bank history: realistic, valid by the bank's rules, back-dated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import cronica
from cronica import EventStore
from cronica._demo_history import BATCH, fill_history, history_state
from cronica.examples.bank import BankAccount, bank_events


def test_the_history_spans_months_and_keeps_the_banks_rules(store: EventStore) -> None:
    now = datetime.now(UTC)
    written: list[int] = []
    history = fill_history(store, accounts=120, months=3, now=now, progress=written.append)
    assert history.events == store.count_events() == sum(written)
    assert history.events > 120 * 5
    assert history.transfers > 0 and history.closed > 0
    assert now - timedelta(days=95) < history.first < now - timedelta(days=60)
    events = store.read_all()
    kinds = {e.event_type for e in events}
    assert kinds == {
        "AccountCreated", "DepositMade", "WithdrawalMade", "TransferSent", "TransferReceived",
        "AccountClosed",
    }  # fmt: skip
    # Positions follow time; every event says who and why.
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps)
    assert all(e.metadata["actor"] and e.metadata["reason"] for e in events)
    # Every account replays through the aggregate: no negative balance, nothing after closing.
    repository = cronica.Repository(store, BankAccount, bank_events, snapshots=None)
    for stream in store.list_streams(limit=None):
        account = repository.load(stream.aggregate_id)
        assert account.balance >= 0
        assert not account.closed or account.balance == Decimal(0)
    # Transfers come in pairs with the same id and amount.
    sent = {
        e.data["transferId"]: e.data["amount"] for e in events if e.event_type == "TransferSent"
    }
    received = {
        e.data["transferId"]: e.data["amount"] for e in events if e.event_type == "TransferReceived"
    }
    assert sent == received


def test_an_account_as_of_last_month_differs_from_now(store: EventStore) -> None:
    now = datetime.now(UTC)
    fill_history(store, accounts=40, months=2, now=now)
    repository = cronica.Repository(store, BankAccount, bank_events, snapshots=None)
    month_ago = now - timedelta(days=30)
    changed = 0
    for stream in store.list_streams(limit=None):
        if stream.created >= month_ago:
            continue
        then = repository.load(stream.aggregate_id, as_of=month_ago)
        later = repository.load(stream.aggregate_id)
        changed += then.version < later.version
    assert changed > 10


def test_the_same_seed_gives_the_same_history() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    stores = [cronica.connect("memory://") for _ in range(2)]
    for each in stores:
        fill_history(each, accounts=30, months=1, now=now, seed=5)
    first, second = (s.read_all() for s in stores)
    assert [(e.event_id, e.data, e.timestamp) for e in first] == [
        (e.event_id, e.data, e.timestamp) for e in second
    ]


class _InterruptedError(Exception):
    pass


def test_an_interrupted_history_is_known_as_partial(store: EventStore) -> None:
    def stop_after_first_batch(_: int) -> None:
        raise _InterruptedError

    assert history_state(store) is None
    with pytest.raises(_InterruptedError):
        fill_history(
            store, accounts=400, months=2, now=datetime.now(UTC), progress=stop_after_first_batch
        )
    assert history_state(store) == "partial"
    assert store.count_events() == BATCH
    other = cronica.connect("memory://")
    fill_history(other, accounts=10, months=1, now=datetime.now(UTC))
    assert history_state(other) == "complete"
