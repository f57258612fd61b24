"""Upcaster chains: checked when attached, applied on every read path of every backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from cronica import (
    EventRegistry,
    EventStore,
    NewEvent,
    RecordedEvent,
    Upcasters,
    UpcastingError,
    connect,
)


def rename_v1(data: dict[str, Any]) -> dict[str, Any]:
    return {"fullName": data.pop("name")}


def split_v2(data: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data.pop("fullName").partition(" ")
    return {"first": first, "last": last}


def chain() -> Upcasters:
    upcasters = Upcasters()
    upcasters.add("Registered", 1, rename_v1)
    upcasters.add("Registered", 2, split_v2)
    upcasters.add_defaults("Registered", 3, country="ES")
    return upcasters


def event(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> RecordedEvent:
    return RecordedEvent(
        uuid.uuid4(), "Registered", "c-1", "Customer", 1, 1, datetime.now(UTC), data, metadata or {}
    )


def test_a_v1_event_climbs_the_whole_chain_to_the_newest_version() -> None:
    upcast = chain().upcast(event({"name": "Juan Pérez"}, {"actor": "a"}))
    assert upcast.data == {"first": "Juan", "last": "Pérez", "country": "ES"}
    assert upcast.metadata == {"actor": "a", "schemaVersion": 4}


def test_an_event_in_the_middle_of_the_chain_climbs_only_the_rest() -> None:
    upcast = chain().upcast(event({"first": "A", "last": "B"}, {"schemaVersion": 3}))
    assert upcast.data == {"first": "A", "last": "B", "country": "ES"}


def test_an_event_at_the_newest_version_and_other_types_are_untouched() -> None:
    current = event({"first": "A", "last": "B", "country": "FR"}, {"schemaVersion": 4})
    assert chain().upcast(current) is current
    other = current._replace(event_type="Other")
    assert chain().upcast(other) is other


def test_upcasting_never_changes_the_stored_event() -> None:
    original = event({"name": "Juan Pérez", "tags": ["a"]})
    upcasters = Upcasters()

    @upcasters.register("Registered", from_version=1)
    def mutate(data: dict[str, Any]) -> dict[str, Any]:
        data["tags"].append("b")
        data["name"] = "changed"
        return data

    assert upcasters.upcast(original).data == {"name": "changed", "tags": ["a", "b"]}
    assert original.data == {"name": "Juan Pérez", "tags": ["a"]}


def test_two_upcasters_for_one_step_are_refused_naming_type_and_versions() -> None:
    upcasters = chain()
    with pytest.raises(UpcastingError, match=r"Registered: two upcasters from version 1 to 2"):
        upcasters.add("Registered", 1, split_v2)


def test_a_gap_in_a_chain_is_refused_when_the_store_gets_it(tmp_path: Any) -> None:
    upcasters = Upcasters()
    upcasters.add("Registered", 1, rename_v1)
    upcasters.add("Registered", 3, split_v2)
    with pytest.raises(UpcastingError, match=r"Registered: no upcaster from version 2 to 3"):
        upcasters.check()
    with pytest.raises(UpcastingError, match="no upcaster from version 2 to 3"):
        connect("memory://", upcasters=upcasters)
    with pytest.raises(UpcastingError, match="no upcaster from version 2 to 3"):
        connect(f"sqlite:///{tmp_path}/x.db", upcasters=upcasters)


@dataclass(frozen=True)
class Registered:
    first: str
    last: str
    country: str


def test_a_chain_that_falls_short_of_the_registered_version_is_refused() -> None:
    registry = EventRegistry()
    registry.register(version=5)(Registered)
    with pytest.raises(UpcastingError, match="reach version 4 but the code registers version 5"):
        chain().check(registry)
    registry = EventRegistry()
    registry.register(version=4)(Registered)
    chain().check(registry)


def test_an_event_older_than_the_chain_reaches_is_an_error() -> None:
    upcasters = Upcasters()
    upcasters.add("Registered", 2, split_v2)
    with pytest.raises(UpcastingError, match="schema version 1, and no upcaster starts there"):
        upcasters.upcast(event({"name": "x"}))


def test_an_upcaster_returning_something_else_than_a_dict_is_an_error() -> None:
    upcasters = Upcasters()
    upcasters.add("Registered", 1, lambda data: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(UpcastingError, match="not a dict"):
        upcasters.upcast(event({"name": "x"}))


@pytest.mark.parametrize("from_version", [0, -1, True])
def test_a_step_must_start_at_a_positive_version(from_version: int) -> None:
    with pytest.raises(UpcastingError, match="from_version"):
        Upcasters().add("Registered", from_version, rename_v1)


def test_every_read_path_of_every_backend_upcasts(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    store = make_store(backend, upcasters=chain())
    store.append("c-1", [NewEvent("Registered", {"name": "Ana Gil"})], aggregate_type="Customer")
    store.append("c-1", [NewEvent("Renamed", {"name": "x"})])
    newest = {"first": "Ana", "last": "Gil", "country": "ES"}
    assert store.read_stream("c-1")[0].data == newest
    assert store.read_stream("c-1", backward=True)[-1].data == newest
    assert store.read_all()[0].data == newest
    assert store.read_all(event_types=["Registered"])[0].metadata["schemaVersion"] == 4
    assert store.read_all()[1].data == {"name": "x"}
    # The stored event is as written: without the chain, the store reads version 1.
    store.upcasters = None
    assert store.read_stream("c-1")[0].data == {"name": "Ana Gil"}
    assert store.read_all()[0].metadata == {}


def test_a_store_without_upcasters_reads_what_was_written() -> None:
    store = connect("memory://", upcasters=Upcasters())
    assert store.upcasters is None
    store.append("c-1", [NewEvent("Registered", {"name": "Ana"})])
    assert store.read_stream("c-1")[0].data == {"name": "Ana"}


def test_the_command_line_reads_through_upcasters(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from cronica.cli import app

    url = f"sqlite:///{tmp_path}/cli.db"
    with connect(url) as store:
        store.append("c-1", [NewEvent("CustomerRegistered", {"name": "Juan Pérez"})])
    runner = CliRunner()
    spec = "cronica.examples.customers:customer_upcasters"
    for args in (["read", "c-1"], ["read"]):
        upcast = runner.invoke(app, [*args, "--store", url, "--json", "--upcasters", spec])
        assert upcast.exit_code == 0, upcast.output
        assert '"firstName":"Juan"' in upcast.stdout.replace(" ", "")
        plain = runner.invoke(app, [*args, "--store", url, "--json"])
        assert '"name":"JuanPérez"' in plain.stdout.replace(" ", "")
    from_env = runner.invoke(
        app, ["read", "c-1", "--store", url, "--json"], env={"CRONICA_UPCASTERS": spec}
    )
    assert '"lastName":"Pérez"' in from_env.stdout.replace(" ", "")
    wrong = runner.invoke(app, ["read", "--store", url, "--upcasters", "cronica:connect"])
    assert wrong.exit_code == 1 and "not a Upcasters" in wrong.stderr
