"""Sagas, the relay and subscriptions given what they should refuse or survive: saga ids as long
as an id may be (their step keys used to pass the idempotency key's limit, so a transfer's
refund could never run), bad saga classes and runner settings, a saga that does not exist,
bad positions and filters. Each is refused with a typed error before anything is written."""

from __future__ import annotations

import math
from typing import Any

import pytest

import cronica
from cronica import EventStore, InvalidInputError, NewEvent, Repository
from cronica.bus.memory import MemoryBus
from cronica.examples.bank import BankAccount, bank_events
from cronica.examples.transfers import Transfer, transfer_steps
from cronica.readmodels import read_models_for
from cronica.relay import Relay
from cronica.sagas import Saga, SagaRunner, Sagas, Step
from cronica.sagas.runner import step_key


@pytest.mark.parametrize("length", [20, 236, 240, 255])
def test_a_transfer_with_an_id_as_long_as_ids_go_is_compensated(
    store: EventStore, length: int
) -> None:
    """The debit ran, the credit was refused (no such account), and the refund's key
    (``Transfer/<id>/debit/undo``) was too long from 236 characters on: the money stayed gone.
    From 240 on even the credit's failure could not be recorded."""
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-A", lambda a: a.open("Ana"))
    accounts.execute("acc-A", lambda a: a.deposit("100.00"))
    transfers = Sagas(store, Transfer)
    with read_models_for(store) as timers:
        runner = SagaRunner(transfers, transfer_steps(accounts), timers=timers)
        transfer_id = "t" * length
        transfers.begin(transfer_id, {"from": "acc-A", "to": "nobody", "amount": "10.00"})
        saga = runner.drive(transfer_id)
        assert saga is not None and saga.status == "compensated", saga
        assert runner.pending_timers() == []
    assert str(accounts.load("acc-A").balance) == "100.00"


def test_step_keys_keep_short_ids_and_hash_long_ones() -> None:
    assert step_key("Transfer", "t-1", "debit") == "Transfer/t-1/debit"  # as they always were
    assert step_key("Transfer", "t-1", "debit", undo=True) == "Transfer/t-1/debit/undo"
    long_a, long_b = "a" * 255, "a" * 254 + "b"
    assert len(step_key("Transfer", long_a, "credit", undo=True)) <= 255
    assert step_key("Transfer", long_a, "credit") != step_key("Transfer", long_b, "credit")


class Trip(Saga):
    steps = ("flight", "hotel")


def steps() -> list[Step[Trip]]:
    return [Step("flight", lambda s, k: None), Step("hotel", lambda s, k: None)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"steps": "ab"}, "tuple of steps"), ({"steps": (1, 2)}, "tuple of steps"),
     ({"steps": ()}, "tuple of steps"), ({"steps": ("a", "a")}, "distinct"),
     ({"steps": ("s" * 200,)}, "idempotency keys of"), ({"timeout": math.inf}, "timeout"),
     ({"timeout": -5}, "timeout"), ({"timeout": "10"}, "timeout"), ({"timeout": True}, "timeout")],
)  # fmt: skip
def test_a_bad_saga_class_is_refused(
    store: EventStore, fields: dict[str, Any], message: str
) -> None:
    bad = type("Bad", (Saga,), {"steps": ("a",), **fields})
    with pytest.raises(InvalidInputError, match=message):
        Sagas(store, bad)


@pytest.mark.parametrize("data", ["abc", None, [1, 2]])
def test_saga_data_that_is_not_a_mapping_is_refused(store: EventStore, data: object) -> None:
    with pytest.raises(InvalidInputError, match="mapping"):
        Sagas(store, Trip).begin("t-1", data)  # type: ignore[arg-type]
    assert store.read_all() == []


@pytest.mark.parametrize(
    "options",
    [{"max_retry_delay": -1}, {"retry_delay": math.nan}, {"retry_delay": 0}, {"tick": "1"},
     {"max_attempts": 0}, {"max_attempts": 2.5}],
)  # fmt: skip
def test_bad_runner_settings_are_refused(store: EventStore, options: dict[str, Any]) -> None:
    with read_models_for(store) as timers, pytest.raises(InvalidInputError):
        SagaRunner(Sagas(store, Trip), steps(), timers=timers, **options)


def test_a_step_given_twice_is_refused(store: EventStore) -> None:
    twice = [*steps(), Step("hotel", lambda s, k: 1 / 0)]
    with read_models_for(store) as timers, pytest.raises(InvalidInputError, match="twice"):
        SagaRunner(Sagas(store, Trip), twice, timers=timers)


@pytest.mark.parametrize("saga_id", ["nope", "t-9"])
def test_driving_a_saga_that_does_not_exist_keeps_no_timer(store: EventStore, saga_id: str) -> None:
    """A forged or foreign SagaStarted, or a stray drive(): it used to leave a timer that was
    retried for ever."""
    with read_models_for(store) as timers:
        runner = SagaRunner(Sagas(store, Trip), steps(), timers=timers)
        assert runner.drive(saga_id) is None
        assert runner.pending_timers() == []


@pytest.mark.parametrize("position", ["abc", -5, 1.5, True, None])
def test_a_relay_refuses_a_bad_position_and_keeps_its_checkpoint(
    store: EventStore, position: object
) -> None:
    store.append("s", [NewEvent("ThingHappened", {})])
    with Relay(store, MemoryBus()) as relay:
        with pytest.raises(InvalidInputError, match="position"):
            relay.seek(position)  # type: ignore[arg-type]
        assert relay.position == 0 and relay.run_once() == 1


@pytest.mark.parametrize("options", [{"batch_size": "10"}, {"batch_size": 0},
                                     {"idle_wait": -1}, {"idle_wait": math.inf}])  # fmt: skip
def test_a_relay_refuses_bad_settings(store: EventStore, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        Relay(store, MemoryBus(), **options)


@pytest.mark.parametrize(
    "options",
    [{"event_types": "ThingHappened"}, {"aggregate_types": "Thing"}, {"event_types": [""]},
     {"batch_size": "5"}, {"event_types": 5}],
)  # fmt: skip
def test_a_subscription_refuses_bad_filters(store: EventStore, options: dict[str, Any]) -> None:
    """A bare string used to filter letter by letter: nothing was delivered, and the position
    moved past the events it never delivered."""
    with pytest.raises(InvalidInputError):
        cronica.Subscription(store, **options)


def test_a_subscription_filters_by_the_names_it_is_given(store: EventStore) -> None:
    store.append("s", [NewEvent("ThingHappened", {}), NewEvent("OtherThing", {})])
    subscription = cronica.Subscription(store, event_types=["ThingHappened"])
    assert [e.event_type for e in subscription.next_batch(timeout=0)] == ["ThingHappened"]
