"""The customer example (seed 1.7.3): a v1 event read by today's code through an upcaster."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import cronica
from cronica import EventStore, InvalidEventDataError, NewEvent, Repository, StreamNotFoundError
from cronica.examples.customers import (
    Customer,
    CustomerEmailChanged,
    CustomerRegistered,
    customer_events,
    customer_upcasters,
)

MakeStore = Callable[..., EventStore]

CUSTOMER = "client-1"
V1_DATA = {"name": "Juan Pérez"}
V2_DATA = {"firstName": "Juan", "lastName": "Pérez", "email": None}


def write_v1(store: EventStore, customer_id: str = CUSTOMER) -> None:
    """What the old code wrote: schema version 1, no schemaVersion in the metadata."""
    store.append(
        customer_id,
        [NewEvent("CustomerRegistered", dict(V1_DATA))],
        aggregate_type="Customer",
    )


@pytest.fixture
def upcasting_store(backend: str, make_store: MakeStore) -> EventStore:
    """A store of each backend that reads through ``customer_upcasters``."""
    return make_store(backend, upcasters=customer_upcasters)


@pytest.fixture
def raw_reader(
    backend: str, make_store: MakeStore, upcasting_store: EventStore
) -> Iterator[Callable[[], EventStore]]:
    """``raw_reader()``: a store that reads the same events without upcasters.

    SQLite and PostgreSQL: a second store on the same database. Memory: the same store with
    its upcasters detached (there is no second handle on a memory store's events).
    """
    if backend == "memory":

        def detach() -> EventStore:
            upcasting_store.upcasters = None
            return upcasting_store

        yield detach
        upcasting_store.upcasters = customer_upcasters
    else:
        yield lambda: make_store(backend)


def test_a_v1_event_is_read_as_v2_by_every_read_path(upcasting_store: EventStore) -> None:
    write_v1(upcasting_store)

    [event] = upcasting_store.read_stream(CUSTOMER)
    assert (event.event_type, event.data, event.metadata) == (
        "CustomerRegistered",
        V2_DATA,
        {"schemaVersion": 2},
    )
    assert (event.version, event.aggregate_type) == (1, "Customer")
    assert upcasting_store.read_all() == [event]
    assert upcasting_store.read_all(event_types=["CustomerRegistered"]) == [event]
    assert upcasting_store.read_stream(CUSTOMER, backward=True, limit=1) == [event]


def test_upcasting_leaves_the_stored_event_unchanged(
    upcasting_store: EventStore, raw_reader: Callable[[], EventStore]
) -> None:
    write_v1(upcasting_store)
    upcast = upcasting_store.read_stream(CUSTOMER)
    upcasting_store.read_all()  # read twice: an upcaster must not change what is stored

    raw = raw_reader()
    assert raw.upcasters is None
    [stored] = raw.read_stream(CUSTOMER)
    assert (stored.data, stored.metadata) == (V1_DATA, {})
    assert raw.read_all() == [stored]
    assert (stored.event_id, stored.position, stored.timestamp) == (
        upcast[0].event_id,
        upcast[0].position,
        upcast[0].timestamp,
    )


def test_a_repository_loads_a_customer_registered_in_v1(upcasting_store: EventStore) -> None:
    write_v1(upcasting_store)
    customers = Repository(upcasting_store, Customer, customer_events)

    customer = customers.load(CUSTOMER)
    assert (customer.first_name, customer.last_name, customer.email, customer.version) == (
        "Juan",
        "Pérez",
        None,
        1,
    )

    result = customers.execute(CUSTOMER, lambda c: c.change_email("juan@example.com"))
    assert result.to_version == 2
    again = customers.load(CUSTOMER)
    assert (again.first_name, again.last_name, again.email) == ("Juan", "Pérez", "juan@example.com")
    assert customers.load(CUSTOMER, version=1).email is None


def test_new_events_carry_their_schema_version(
    upcasting_store: EventStore, raw_reader: Callable[[], EventStore]
) -> None:
    customers = Repository(upcasting_store, Customer, customer_events)
    customers.create("client-2", lambda c: c.register("Ana", "López", "ana@example.com"))
    customers.execute("client-2", lambda c: c.change_email("ana@example.org"))

    registered, changed = raw_reader().read_stream("client-2")
    assert registered.event_type == "CustomerRegistered"
    assert registered.data == {"firstName": "Ana", "lastName": "López", "email": "ana@example.com"}
    assert registered.metadata["schemaVersion"] == 2
    # CustomerEmailChanged is at version 1: no schema version is written for it.
    assert changed.data == {"email": "ana@example.org"}
    assert "schemaVersion" not in changed.metadata

    # A v2 event passes the upcaster untouched.
    [read] = upcasting_store.read_stream("client-2", to_version=1)
    assert (read.data, read.metadata) == (registered.data, registered.metadata)
    loaded = customers.load("client-2")
    assert (loaded.first_name, loaded.last_name, loaded.email) == (
        "Ana",
        "López",
        "ana@example.org",
    )


def test_v1_and_v2_events_read_side_by_side(upcasting_store: EventStore) -> None:
    write_v1(upcasting_store, "client-old")
    customers = Repository(upcasting_store, Customer, customer_events)
    customers.create("client-new", lambda c: c.register("Ana", "López"))

    assert [e.data for e in upcasting_store.read_all()] == [
        V2_DATA,
        {"firstName": "Ana", "lastName": "López", "email": None},
    ]
    assert {e.metadata["schemaVersion"] for e in upcasting_store.read_all()} == {2}


def test_without_the_upcaster_loading_a_v1_event_names_the_versions(
    backend: str, make_store: MakeStore
) -> None:
    store = make_store(backend)
    write_v1(store)
    customers = Repository(store, Customer, customer_events)
    with pytest.raises(
        InvalidEventDataError,
        match=r"\(CustomerRegistered\) is at schema version 1, the code reads version 2",
    ):
        customers.load(CUSTOMER)
    with pytest.raises(InvalidEventDataError, match="schema version 1"):
        customers.execute(CUSTOMER, lambda c: c.change_email("juan@example.com"))
    assert len(store.read_all()) == 1


def test_a_v1_name_without_a_space_becomes_a_first_name() -> None:
    store = cronica.connect("memory://", upcasters=customer_upcasters)
    store.append("client-3", [NewEvent("CustomerRegistered", {"name": "Cher"})])
    [event] = store.read_stream("client-3")
    assert event.data == {"firstName": "Cher", "lastName": "", "email": None}


def test_a_v1_name_with_several_spaces_keeps_the_rest_as_the_last_name() -> None:
    store = cronica.connect("memory://", upcasters=customer_upcasters)
    store.append("client-4", [NewEvent("CustomerRegistered", {"name": "Ana María López García"})])
    [event] = store.read_stream("client-4")
    assert (event.data["firstName"], event.data["lastName"]) == ("Ana", "María López García")


def test_the_registry_and_the_upcasters_agree_on_version_2() -> None:
    assert customer_events.versions() == {"CustomerRegistered": 2, "CustomerEmailChanged": 1}
    assert customer_upcasters.target_version("CustomerRegistered") == 2
    customer_upcasters.check(customer_events)  # raises on a gap or a shortfall
    assert customer_events.type_of(CustomerRegistered(first_name="a", last_name="b")).version == 2
    assert customer_events.type_of(CustomerEmailChanged(email="e")).version == 1


def test_an_unknown_customer_is_not_found(upcasting_store: EventStore) -> None:
    customers = Repository(upcasting_store, Customer, customer_events)
    with pytest.raises(StreamNotFoundError):
        customers.load("client-missing")


def test_the_example_script_reads_the_v1_event_through_the_upcaster(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cronica.examples import customers

    customers.main(["--store", "memory://"])
    out = capsys.readouterr().out
    assert ": Juan / Pérez / juan@example.com" in out
    assert "'firstName': 'Juan'" in out


def test_a_customer_registers_only_once() -> None:
    from cronica import InvariantError
    from cronica.examples.customers import Customer
    from cronica.testing import AggregateScenario

    AggregateScenario(Customer).given(CustomerRegistered(first_name="A", last_name="B")).when(
        lambda c: c.register("C", "D")
    ).then_raises(InvariantError, match="already registered")
