"""The event registry: payload classes <-> event type names and JSON data."""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cronica import (
    DomainEvent,
    EventNameWarning,
    EventRegistry,
    InvalidEventDataError,
    InvalidEventTypeError,
    InvalidInputError,
    RecordedEvent,
    UnknownEventTypeError,
)


@dataclass(frozen=True)
class ItemPacked:
    sku: str
    weight: Decimal


class PaymentReceived(DomainEvent):
    payment_id: str
    amount: Decimal


def recorded(
    event_type: str, data: dict[str, object], metadata: dict[str, object]
) -> RecordedEvent:
    return RecordedEvent(
        uuid.uuid4(), event_type, "s-1", "T", 1, 1, datetime.now(UTC), data, metadata
    )


def test_a_dataclass_round_trips_with_decimals_as_strings() -> None:
    registry = EventRegistry()
    registry.register(ItemPacked)
    new = registry.to_new_event(ItemPacked("a-1", Decimal("2.50")), {"actor": "x"})
    assert (new.event_type, new.data, new.metadata) == (
        "ItemPacked",
        {"sku": "a-1", "weight": "2.50"},
        {"actor": "x"},
    )
    back = registry.decode(recorded("ItemPacked", new.data, new.metadata))
    assert back == ItemPacked("a-1", Decimal("2.50"))
    assert isinstance(back.weight, Decimal)


def test_a_domain_event_is_camel_case_on_the_wire_and_snake_case_in_python() -> None:
    registry = EventRegistry()
    registry.register(PaymentReceived)
    new = registry.to_new_event(PaymentReceived(payment_id="p-1", amount=Decimal("10.00")))
    assert new.data == {"paymentId": "p-1", "amount": "10.00"}
    decoded = registry.decode(recorded("PaymentReceived", new.data, {}))
    assert decoded == PaymentReceived(payment_id="p-1", amount=Decimal("10.00"))


def test_a_newer_schema_version_is_written_into_the_metadata() -> None:
    registry = EventRegistry()
    registry.register(name="Packed", version=3)(ItemPacked)
    new = registry.to_new_event(ItemPacked("a", Decimal(1)))
    assert new.event_type == "Packed"
    assert new.metadata == {"schemaVersion": 3}
    assert registry.versions() == {"Packed": 3}


def test_reading_an_older_schema_version_without_an_upcaster_names_both_versions() -> None:
    registry = EventRegistry()
    registry.register(version=2)(ItemPacked)
    with pytest.raises(InvalidEventDataError, match=r"schema version 1.*reads version 2"):
        registry.decode(recorded("ItemPacked", {"sku": "a", "weight": "1"}, {}))


def test_data_that_does_not_fit_the_class_is_a_typed_error_naming_the_event() -> None:
    registry = EventRegistry()
    registry.register(ItemPacked)
    with pytest.raises(InvalidEventDataError, match="ItemPacked"):
        registry.decode(recorded("ItemPacked", {"sku": "a"}, {}))
    with pytest.raises(InvalidEventDataError, match="ItemPacked"):
        registry.decode(recorded("ItemPacked", {"sku": "a", "weight": "heavy"}, {}))


def test_unknown_types_and_classes_are_lookup_errors() -> None:
    registry = EventRegistry()
    with pytest.raises(UnknownEventTypeError, match="Nope"):
        registry.get("Nope")
    with pytest.raises(UnknownEventTypeError, match="ItemPacked"):
        registry.encode(ItemPacked("a", Decimal(1)))
    assert "Nope" not in registry


def test_registering_a_name_or_a_class_twice_is_refused() -> None:
    registry = EventRegistry()
    registry.register(ItemPacked)
    with pytest.raises(InvalidInputError, match="already registered"):
        registry.register(name="ItemPacked")(PaymentReceived)
    with pytest.raises(InvalidInputError, match="already registered"):
        registry.register(name="Other")(ItemPacked)


@pytest.mark.parametrize("version", [0, -1, True, "2"])
def test_a_schema_version_must_be_a_positive_integer(version: object) -> None:
    with pytest.raises(InvalidInputError, match="schema version"):
        EventRegistry().register(version=version)(ItemPacked)  # type: ignore[call-overload]


@pytest.mark.parametrize("name", ["", "x" * 101, "Bad\nName"])
def test_an_invalid_type_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidEventTypeError):
        EventRegistry().register(name=name)(ItemPacked)


@pytest.mark.parametrize(
    "name", ["MakeDeposit", "CreateAccount", "ShipOrder", "Deposit", "AddProduct", "orderPlace"]
)
def test_an_imperative_name_warns_at_registration(name: str) -> None:
    with pytest.warns(EventNameWarning, match=f"{name}.*past-tense"):
        EventRegistry().register(name=name)(ItemPacked)


@pytest.mark.parametrize(
    "name",
    [
        "DepositMade",
        "AccountCreated",
        "TransferSent",
        "OrderShipped",
        "PaymentMade",
        "OrderPaid",
        "MoneyWithdrawn",
        "CustomerRegistered",
        "PersonalDataErased",
        "OrderV2Placed",
    ],
)
def test_a_past_tense_name_registers_silently(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EventRegistry().register(name=name)(ItemPacked)
