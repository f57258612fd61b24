"""Bad input off the main append path gets a typed error (a ``CronicaError``) and changes
nothing: imports, non-finite numbers, forgetting, snapshots, repository arguments, reads,
URLs, read-model parameters and envelopes. Every backend gives the same answer."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import cronica
from cronica import EventStore, NewEvent, RecordedEvent
from cronica.aggregates import Aggregate
from cronica.errors import (
    CronicaError,
    InvalidAggregateIdError,
    InvalidEventDataError,
    InvalidInputError,
    InvalidReadError,
    InvalidURLError,
    ReadModelError,
)
from cronica.event_types import EventRegistry
from cronica.examples.bank import BankAccount, bank_events
from cronica.privacy import forget
from cronica.readmodels import connect_read_models, read_models_for
from cronica.repository import Repository
from cronica.snapshots.base import Snapshot
from cronica.store.base import CopyProgress

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def recorded(**changes: Any) -> RecordedEvent:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "event_type": "Imported",
        "aggregate_id": "imported-1",
        "aggregate_type": "Thing",
        "version": 1,
        "position": 1,
        "timestamp": NOW,
        "data": {},
        "metadata": {},
    }
    fields.update(changes)
    return RecordedEvent(**fields)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"event_id": "not-a-uuid"}, InvalidInputError),
        ({"aggregate_id": "a\x00b"}, InvalidAggregateIdError),
        ({"event_type": ""}, InvalidInputError),
        ({"event_type": "E\ud800"}, InvalidInputError),
        ({"data": [1]}, InvalidEventDataError),
        ({"data": {"x": math.nan}}, InvalidEventDataError),
        ({"data": {"x": 2**70}}, InvalidEventDataError),
        ({"metadata": {"x": "\x00"}}, InvalidEventDataError),
        ({"version": True}, InvalidInputError),
        ({"timestamp": datetime(2026, 1, 1)}, InvalidInputError),  # naive on purpose
    ],
)
def test_an_import_refuses_what_an_append_would_and_writes_nothing(
    store: EventStore, changes: dict[str, Any], error: type[CronicaError]
) -> None:
    good = recorded(aggregate_id="imported-0")
    with pytest.raises(error):
        store.import_events([good, recorded(**changes)], CopyProgress("src", 2, 2, 2, "x"))
    assert store.count_events() == 0
    assert store.read_all() == []  # the store still reads (a bad id stored would break this)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_not_stored_as_null(value: float) -> None:
    with pytest.raises(InvalidEventDataError, match="NaN or an infinity"):
        NewEvent("Measured", {"reading": {"values": [1.0, value]}})
    with pytest.raises(InvalidEventDataError, match="NaN or an infinity"):
        NewEvent("Measured", {}, {"weight": value})
    assert NewEvent("Measured", {"reading": None, "text": "null"}).data["reading"] is None


@dataclass(frozen=True)
class AmountAdded:
    amount: Decimal


@dataclass(frozen=True)
class ReadingTaken:
    value: float


class Meter(Aggregate):
    total: Decimal = Decimal(0)
    value: float = 0.0

    def apply(self, event: object) -> None:
        match event:
            case AmountAdded(amount=amount):
                self.total += amount
            case ReadingTaken(value=value):
                self.value = value


METER_EVENTS = EventRegistry()
METER_EVENTS.register_all(AmountAdded, ReadingTaken)


@pytest.mark.parametrize(
    "payload",
    [AmountAdded(Decimal("Infinity")), AmountAdded(Decimal("NaN")), ReadingTaken(math.nan)],
)
def test_a_domain_event_that_would_not_read_back_is_refused(
    store: EventStore, payload: object
) -> None:
    meters = Repository(store, Meter, METER_EVENTS, snapshots=None)
    with pytest.raises(InvalidEventDataError):
        meters.create("meter-1", lambda m: m.record(payload))
    assert store.count_events() == 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"reason": "GDPR\x00"},
        {"reason": "GDPR\ud800"},
        {"reason": "x" * 501},
        {"reason": "GDPR", "stream": "acc\x00"},
        {"reason": "GDPR", "subject": "s" * 256},
    ],
)
def test_forgetting_with_bad_arguments_destroys_nothing(
    store: EventStore, arguments: dict[str, Any]
) -> None:
    accounts = Repository(store, BankAccount, bank_events, snapshots=None)
    accounts.create("acc-1", lambda a: a.open("Ana"))
    given = dict(arguments)  # the parameters are shared by the backends' runs
    subject = given.pop("subject", "acc-1")
    with pytest.raises(InvalidInputError):
        forget(store, subject, **given)
    keys = store.subject_keys()
    assert keys.has_keys("acc-1") and not keys.forgotten("acc-1")
    accounts.forget_cached()
    assert accounts.load("acc-1").owner == "Ana"
    assert store.count_events() == 1


def snapshot(**changes: Any) -> Snapshot:
    fields: dict[str, Any] = {
        "aggregate_id": "meter-1",
        "aggregate_type": "Meter",
        "version": 1,
        "schema_version": 1,
        "state": {"total": "1"},
        "timestamp": NOW,
    }
    fields.update(changes)
    return Snapshot(**fields)


@pytest.mark.parametrize(
    "changes",
    [
        {"aggregate_id": "\ud800"},
        {"aggregate_id": "a\x00"},
        {"state": {"n": object()}},
        {"state": {"n": math.nan}},
        {"version": "x"},
        {"timestamp": datetime(2026, 1, 1)},  # naive on purpose
    ],
)
def test_the_snapshot_stores_check_what_they_are_given(
    store: EventStore, changes: dict[str, Any]
) -> None:
    snapshots = store.snapshot_store()
    with pytest.raises(InvalidInputError):
        snapshots.save(snapshot(**changes))
    assert snapshots.load("meter-1") is None
    for bad_id in ("\ud800", "a\x00", ""):
        with pytest.raises(InvalidAggregateIdError):
            snapshots.load(bad_id)
        with pytest.raises(InvalidAggregateIdError):
            snapshots.delete(bad_id)


def test_a_snapshot_that_no_longer_fits_its_class_is_passed_over(store: EventStore) -> None:
    meters = Repository(store, Meter, METER_EVENTS, snapshot_every=1)
    meters.create("meter-1", lambda m: m.record(AmountAdded(Decimal("2.5"))))
    store.snapshot_store().save(snapshot(state={"total": "not a number"}))
    meters.forget_cached()
    assert meters.load("meter-1").total == Decimal("2.5")  # rebuilt from the events


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"version": "2"}, InvalidReadError),
        ({"version": True}, InvalidReadError),
        ({"as_of": datetime(2026, 1, 1)}, InvalidReadError),  # naive on purpose
        ({"as_of": "2026-01-01"}, InvalidReadError),
    ],
)
def test_repository_reads_refuse_bad_versions_and_moments(
    store: EventStore, options: dict[str, Any], error: type[CronicaError]
) -> None:
    meters = Repository(store, Meter, METER_EVENTS, snapshot_every=1)
    meters.create("meter-1", lambda m: m.record(AmountAdded(Decimal(1))))
    with pytest.raises(error):
        meters.load("meter-1", **options)  # with a snapshot cached, too
    with pytest.raises(InvalidAggregateIdError):
        meters.load("\ud800")


@pytest.mark.parametrize("key", ["\ud800", "k\x00", 42, "", "k" * 256])
def test_idempotency_keys_must_be_storable_text(store: EventStore, key: Any) -> None:
    meters = Repository(store, Meter, METER_EVENTS, snapshots=None)
    with pytest.raises(InvalidInputError, match="idempotency key"):
        meters.create("meter-1", lambda m: m.record(AmountAdded(Decimal(1))), idempotency_key=key)
    assert store.count_events() == 0


def test_reads_refuse_what_is_not_an_argument_and_cap_what_is_too_big(store: EventStore) -> None:
    store.append("s-1", [NewEvent("Happened", {})])
    with pytest.raises(InvalidReadError):
        store.read_recent(limit=None)  # type: ignore[arg-type]
    assert len(store.read_recent(limit=2**63)) == 1
    with pytest.raises(InvalidReadError):
        store.list_streams(after="a\x00")
    with pytest.raises(InvalidReadError):
        store.read_all(event_types=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.append("s-1", None)  # type: ignore[arg-type]
    assert store.wait_for_events(0, 2**1100) is True  # an event is there: no wait at all
    east, west = timezone(timedelta(hours=1)), timezone(timedelta(hours=-14))
    assert store.read_stream("s-1", as_of=datetime(1, 1, 1, 0, 30, tzinfo=east)) == []
    assert len(store.read_stream("s-1", as_of=datetime.max.replace(tzinfo=west))) == 1


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/cronica-test-a\x00.db",
        "sqlite:////tmp/cronica-test-\ud800.db",
        "postgresql://postgres@[::1/test",
        "postgresql://postgres@127.0.0.1:5432/test\x00zz",
        "postgresql://postgres@127.0.0.1:99999/test",
        None,
    ],
)
def test_unusable_urls_are_refused_before_anything_opens(url: Any) -> None:
    with pytest.raises(InvalidURLError):
        cronica.connect(url)
    with pytest.raises(InvalidURLError):
        connect_read_models(url)


def test_store_options_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="max_event_size"):
        cronica.connect("memory://", max_event_size="1")


def test_read_models_refuse_parameters_they_cannot_store(store: EventStore) -> None:
    db = read_models_for(store)
    try:
        with pytest.raises(ReadModelError):
            db.query("SELECT ?", ["\ud800"])
        if db.dialect == "sqlite":
            with pytest.raises(ReadModelError):
                db.query("SELECT ?", [2**63])
        with pytest.raises(ReadModelError), db.transaction() as tx:
            tx.execute("SELECT ?", ["\ud800"])
    finally:
        db.close()


@pytest.mark.parametrize(
    "changes",
    [
        {"aggregateId": "a\x00"},
        {"version": -5},
        {"version": 1.7},
        {"version": math.inf},
        {"version": True},
        {"position": "7"},
    ],
)
def test_an_envelope_with_bad_fields_is_refused(changes: dict[str, Any]) -> None:
    envelope = recorded().to_dict()
    RecordedEvent.from_dict(envelope)  # the good one reads
    with pytest.raises(InvalidInputError):
        RecordedEvent.from_dict({**envelope, **changes})


def test_an_event_class_whose_stored_names_do_not_read_back_is_refused() -> None:
    """A serialization alias alone writes ``mail`` and reads ``emailAddress``: such an event
    would never decode again, and the log is append-only."""
    import pydantic

    from cronica.event_types import DomainEvent

    registry = EventRegistry()

    @registry.register
    class MailChanged(DomainEvent):
        email_address: str = pydantic.Field(serialization_alias="mail")

    with pytest.raises(InvalidEventDataError, match="would not read back"):
        registry.to_new_event(MailChanged(email_address="ana@example.com"))
