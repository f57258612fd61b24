"""Subscriptions: catch up from a position, then live; filters; caught-up and behind states."""

from __future__ import annotations

import threading
import time

import pytest

from cronica import EventStore, NewEvent
from cronica.errors import InvalidInputError
from cronica.subscriptions import Subscription, SubscriptionState


def append(store: EventStore, stream: str, *types: str, aggregate_type: str = "Account") -> int:
    events = [NewEvent(t, {"n": i}) for i, t in enumerate(types)]
    return store.append(stream, events, aggregate_type=aggregate_type).position


def test_catches_up_in_batches_then_reports_live(store: EventStore) -> None:
    for i in range(7):
        append(store, f"s-{i}", "Opened")
    states: list[SubscriptionState] = []
    subscription = Subscription(store, batch_size=3, on_state=states.append)
    batches = [subscription.next_batch(timeout=0) for _ in range(3)]
    assert [len(b) for b in batches] == [3, 3, 1]
    everything = [e.position for b in batches for e in b]
    assert everything == sorted(everything) and len(set(everything)) == 7
    assert subscription.state == "live" and states == ["live"]
    assert subscription.next_batch(timeout=0) == []


def test_starts_after_a_given_position(store: EventStore) -> None:
    first = append(store, "a", "Opened")
    append(store, "b", "Opened")
    batch = Subscription(store, after=first).next_batch(timeout=0)
    assert [e.aggregate_id for e in batch] == ["b"]


def test_filters_by_type_and_moves_past_what_it_filters_out(store: EventStore) -> None:
    append(store, "a", "Opened", "Deposited")
    append(store, "o", "Created", aggregate_type="Order")
    last = append(store, "a", "Deposited")
    by_type = Subscription(store, event_types=["Deposited"])
    assert [e.event_type for e in by_type.next_batch(timeout=0)] == ["Deposited", "Deposited"]
    by_aggregate = Subscription(store, aggregate_types=["Order"])
    assert [e.aggregate_id for e in by_aggregate.next_batch(timeout=0)] == ["o"]
    assert by_aggregate.next_batch(timeout=0) == []
    assert by_aggregate.position == last  # filtered events are not read again


def test_a_live_subscription_wakes_on_a_new_event(store: EventStore) -> None:
    subscription = Subscription(store)
    assert subscription.next_batch(timeout=0) == []
    timer = threading.Timer(0.2, append, args=(store, "late", "Opened"))
    timer.start()
    started = time.monotonic()
    batch = subscription.next_batch(timeout=10)
    timer.join()
    assert [e.aggregate_id for e in batch] == ["late"]
    assert time.monotonic() - started < 5


def test_reports_falling_behind_and_catching_up_again(store: EventStore) -> None:
    states: list[SubscriptionState] = []
    subscription = Subscription(store, batch_size=2, on_state=states.append)
    append(store, "a", "Opened")
    subscription.next_batch(timeout=0)
    assert states == ["live"]
    for i in range(5):
        append(store, f"burst-{i}", "Opened")
    subscription.next_batch(timeout=0)  # a full batch: behind
    assert subscription.state == "catching_up"
    while subscription.next_batch(timeout=0):
        pass
    assert states == ["live", "catching_up", "live"]


def test_close_ends_a_waiting_subscription(store: EventStore) -> None:
    subscription = Subscription(store)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(list(subscription)))
    reader.start()
    time.sleep(0.1)
    subscription.close()
    reader.join(timeout=5)
    assert not reader.is_alive() and got == [[]]


def test_iterates_over_batches(store: EventStore) -> None:
    append(store, "a", "Opened", "Deposited")
    subscription = Subscription(store)
    for batch in subscription:
        assert [e.event_type for e in batch] == ["Opened", "Deposited"]
        subscription.close()


@pytest.mark.parametrize("after", [-1, True, "0"])
def test_refuses_a_bad_start(store: EventStore, after: object) -> None:
    with pytest.raises(InvalidInputError):
        Subscription(store, after=after)  # type: ignore[arg-type]
