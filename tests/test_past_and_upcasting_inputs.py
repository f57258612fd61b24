"""What a past read model and the upcasters must refuse rather than answer wrongly: a past
read model of a store with archived streams (it would leave them out), bad positions, times
and batch sizes; an upcaster that fails on stored data (a typed error, not a KeyError from every
read path); a schemaVersion that is not a whole number (read as 1, its upcasters ran again)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronica import (
    EventStore,
    InvalidEventDataError,
    InvalidReadError,
    NewEvent,
    RecordedEvent,
    Upcasters,
    UpcastingError,
    projection_as_of,
)
from cronica.archive import ArchivePolicy, Archiver
from cronica.examples.bank_read_models import AccountsProjection


def test_a_past_read_model_of_a_store_with_archived_streams_is_refused(
    make_store: Any, tmp_path: Path
) -> None:
    for backend in ("sqlite", "postgresql"):
        store = make_store(backend)
        store.append("old", [NewEvent("AccountCreated", {"owner": "Ana"})],
                     aggregate_type="BankAccount")  # fmt: skip
        moment = datetime.now(UTC)
        archiver = Archiver(store, tmp_path / backend)
        archiver.archive(ArchivePolicy(idle_for=timedelta(0)), actor="o", reason="r")
        with pytest.raises(InvalidReadError, match="restore them first"):
            projection_as_of(store, AccountsProjection(), timestamp=moment)
        archiver.restore(aggregate_ids=["old"])
        with projection_as_of(store, AccountsProjection(), timestamp=moment) as past:
            assert past.query("SELECT owner FROM accounts") == [("Ana",)]


@pytest.mark.parametrize(
    "options",
    [{"position": "5"}, {"position": -3}, {"position": True}, {"timestamp": "2024-01-01"},
     {"position": 1, "batch_size": 0}, {"position": 1, "batch_size": "5"}],
)  # fmt: skip
def test_a_past_read_model_refuses_bad_bounds(store: EventStore, options: dict[str, Any]) -> None:
    store.append("a", [NewEvent("AccountCreated", {"owner": "Ana"})], aggregate_type="BankAccount")
    with pytest.raises(InvalidReadError):
        projection_as_of(store, AccountsProjection(), **options)


def from_name(data: dict[str, Any]) -> dict[str, Any]:
    return {"fullName": data.pop("name")}  # stored data without "name" makes this fail


def test_an_upcaster_failing_on_stored_data_is_a_typed_error_on_every_read(
    store: EventStore,
) -> None:
    store.append("c-1", [NewEvent("Registered", {"nombre": "Ana"})])
    upcasters = Upcasters()
    upcasters.add("Registered", 1, from_name)
    store.upcasters = upcasters
    for read in (store.read_stream, lambda _: store.read_all(), lambda _: store.read_recent(5)):
        with pytest.raises(UpcastingError, match=r"from_name failed on event .*KeyError"):
            read("c-1")


@pytest.mark.parametrize("version", [2.0, "2", 0, -1, True, None])
def test_a_schema_version_that_is_not_a_whole_number_is_refused(
    store: EventStore, version: object
) -> None:
    with pytest.raises(InvalidEventDataError, match="schemaVersion"):
        store.append("c-1", [NewEvent("Registered", {"cents": 500}, {"schemaVersion": version})])
    assert store.read_all() == []
    stored = RecordedEvent(uuid.uuid4(), "Registered", "c-1", "", 1, 1, datetime.now(UTC),
                           {"cents": 500}, {"schemaVersion": version})  # fmt: skip
    upcasters = Upcasters()
    upcasters.add("Registered", 1, lambda data: {"cents": data.pop("euros") * 100})
    with pytest.raises(UpcastingError, match="schemaVersion"):
        upcasters.upcast(stored)  # read as version 1, it was upcast a second time
