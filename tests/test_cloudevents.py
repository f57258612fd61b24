"""CloudEvents 1.0 mapping, both ways."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from cronica import (
    InvalidEventDataError,
    MemoryEventStore,
    NewEvent,
    from_cloudevent,
    recorded_from_cloudevent,
    to_cloudevent,
)


def stored_event() -> Any:
    store = MemoryEventStore()
    store.append(
        "acc-1",
        [NewEvent("DepositMade", {"amount": "10.00"}, {"actor": "ana", "reason": "salary"})],
        aggregate_type="Account",
    )
    return store.read_all()[0]


def test_a_recorded_event_maps_to_a_cloudevent_and_back() -> None:
    event = stored_event()
    ce = to_cloudevent(event)
    assert ce["specversion"] == "1.0"
    assert ce["id"] == str(event.event_id)
    assert ce["type"] == "DepositMade"
    assert ce["subject"] == "acc-1"
    assert ce["source"] == "/cronica"
    assert ce["datacontenttype"] == "application/json"
    assert ce["data"] == {"amount": "10.00"}
    assert ce["time"].endswith("Z")
    assert (ce["aggregatetype"], ce["aggregateversion"], ce["position"]) == ("Account", 1, 1)
    assert all(name.isalnum() and name.islower() for name in ce if name != "data")
    assert recorded_from_cloudevent(ce) == event


def test_an_incoming_cloudevent_becomes_an_event_to_append() -> None:
    ce = {
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "https://bank.example/teller",
        "type": "DepositMade",
        "time": datetime(2026, 1, 5, tzinfo=UTC).isoformat(),
        "data": {"amount": "5.00"},
        "tellerid": "t-7",
    }
    event = from_cloudevent(ce)
    assert event.event_type == "DepositMade"
    assert event.data == {"amount": "5.00"}
    assert event.metadata == {"source": "https://bank.example/teller", "tellerid": "t-7"}
    # A non-UUID id maps to a stable UUID, so a producer's retry is idempotent.
    assert from_cloudevent(ce).event_id == event.event_id
    assert from_cloudevent({**ce, "source": "/other"}).event_id != event.event_id
    uuid_ce = {**ce, "id": str(uuid.UUID(int=7))}
    assert from_cloudevent(uuid_ce).event_id == uuid.UUID(int=7)


def test_retrying_a_cloudevent_append_is_idempotent() -> None:
    store = MemoryEventStore()
    ce = {"specversion": "1.0", "id": "x-1", "source": "/p", "type": "A", "data": {}}
    first = store.append("s", [from_cloudevent(ce)])
    assert store.append("s", [from_cloudevent(ce)]) == first
    assert len(store.read_all()) == 1


@pytest.mark.parametrize(
    "ce",
    [
        [],
        {"specversion": "0.3", "id": "1", "source": "/", "type": "A"},
        {"specversion": "1.0", "source": "/", "type": "A"},
        {"specversion": "1.0", "id": "1", "source": "/", "type": ""},
        {"specversion": "1.0", "id": "1", "source": "/", "type": "A", "data": [1]},
        {"specversion": "1.0", "id": "1", "source": "/", "type": "A", "data_base64": "AA=="},
        {
            "specversion": "1.0",
            "id": "1",
            "source": "/",
            "type": "A",
            "datacontenttype": "text/xml",
        },
        {"specversion": "1.0", "id": "1", "source": "/", "type": "A", "metadata": "[1]"},
    ],
)
def test_malformed_cloudevents_are_refused(ce: Any) -> None:
    with pytest.raises(InvalidEventDataError):
        from_cloudevent(ce)


def test_recorded_from_cloudevent_needs_the_cronica_extensions() -> None:
    with pytest.raises(InvalidEventDataError):
        recorded_from_cloudevent({"specversion": "1.0", "id": "1", "source": "/", "type": "A"})
