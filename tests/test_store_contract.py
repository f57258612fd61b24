"""The event store contract, run against every backend (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import cronica
from cronica import (
    EXISTS,
    NO_STREAM,
    AggregateTypeMismatchError,
    AppendResult,
    ConcurrencyError,
    DuplicateEventError,
    EventStore,
    EventTooLargeError,
    InvalidAggregateIdError,
    InvalidAggregateTypeError,
    InvalidEventDataError,
    InvalidEventTypeError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidReadError,
    NewEvent,
    StreamNotFoundError,
)


def ev(event_type: str = "DepositMade", **data: Any) -> NewEvent:
    return NewEvent(event_type, data or {"amount": "10.00"})


def bank_story(store: EventStore, account: str = "acc_12345") -> AppendResult:
    return store.append(
        account,
        [
            NewEvent("AccountCreated", {"owner": "Juan Pérez"}, {"actor": "teller-7"}),
            NewEvent("DepositMade", {"amount": "1000.00"}),
            NewEvent("WithdrawalMade", {"amount": "500.00"}),
        ],
        NO_STREAM,
        aggregate_type="Account",
    )


# -- appending ---------------------------------------------------------------------------------


def test_append_returns_versions_and_last_position(store: EventStore) -> None:
    result = bank_story(store)
    assert (result.from_version, result.to_version) == (1, 3)
    events = store.read_all()
    assert result.position == events[-1].position
    more = store.append("acc_12345", [ev()], 3)
    assert (more.from_version, more.to_version) == (4, 4)
    assert more.position > result.position


def test_recorded_event_carries_the_whole_envelope(store: EventStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    bank_story(store)
    first = store.read_stream("acc_12345")[0]
    assert first.event_type == "AccountCreated"
    assert first.aggregate_id == "acc_12345"
    assert first.aggregate_type == "Account"
    assert first.version == 1
    assert first.position >= 1
    assert first.data == {"owner": "Juan Pérez"}
    assert first.metadata == {"actor": "teller-7"}
    assert isinstance(first.event_id, uuid.UUID)
    assert before <= first.timestamp <= datetime.now(UTC) + timedelta(seconds=1)
    envelope = first.to_dict()
    assert set(envelope) == {
        "eventId",
        "eventType",
        "aggregateId",
        "aggregateType",
        "version",
        "position",
        "timestamp",
        "data",
        "metadata",
    }
    assert envelope["timestamp"].endswith("Z")
    assert cronica.RecordedEvent.from_json(first.to_json()) == first


def test_versions_are_dense_per_stream_and_positions_increase(store: EventStore) -> None:
    for i in range(5):
        store.append("a", [ev(), ev()])
        store.append("b", [ev()])
        store.append(f"c{i}", [ev()])
    for stream in ("a", "b"):
        versions = [e.version for e in store.read_stream(stream)]
        assert versions == list(range(1, len(versions) + 1))
    positions = [e.position for e in store.read_all()]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions) == 20


def test_expected_version_no_stream(store: EventStore) -> None:
    store.append("s", [ev()], NO_STREAM)
    with pytest.raises(ConcurrencyError) as info:
        store.append("s", [ev()], NO_STREAM)
    assert info.value.expected is NO_STREAM
    assert info.value.actual == 1
    assert "expected version no_stream" in str(info.value)


def test_expected_version_exists(store: EventStore) -> None:
    with pytest.raises(ConcurrencyError) as info:
        store.append("s", [ev()], EXISTS)
    assert info.value.actual == 0
    store.append("s", [ev()])
    assert store.append("s", [ev()], EXISTS).to_version == 2


def test_expected_version_exact(store: EventStore) -> None:
    store.append("s", [ev()], 0)
    store.append("s", [ev(), ev()], 1)
    with pytest.raises(ConcurrencyError) as info:
        store.append("s", [ev()], 1)
    assert (info.value.aggregate_id, info.value.expected, info.value.actual) == ("s", 1, 3)
    assert "expected version 1, actual version 3" in str(info.value)
    with pytest.raises(ConcurrencyError):
        store.append("new", [ev()], 2)
    assert [e.version for e in store.read_stream("s")] == [1, 2, 3]
    with pytest.raises(StreamNotFoundError):
        store.stream_info("new")


def test_expected_version_strings_are_accepted(store: EventStore) -> None:
    store.append("s", [ev()], "no_stream")
    store.append("s", [ev()], "exists")
    store.append("s", [ev()], "any")
    assert store.stream_info("s").version == 3


def test_a_failed_append_writes_nothing(store: EventStore) -> None:
    store.append("s", [ev()])
    with pytest.raises(ConcurrencyError):
        store.append("s", [ev(), ev(), ev()], 0)
    assert len(store.read_all()) == 1
    assert store.stream_info("s").version == 1


def test_aggregate_type_is_kept_and_checked(store: EventStore) -> None:
    store.append("acc-1", [ev()], aggregate_type="Account")
    store.append("acc-1", [ev()])  # no type: the stream's
    assert {e.aggregate_type for e in store.read_stream("acc-1")} == {"Account"}
    with pytest.raises(AggregateTypeMismatchError) as info:
        store.append("acc-1", [ev()], aggregate_type="Order")
    assert (info.value.expected, info.value.actual) == ("Order", "Account")
    assert store.stream_info("acc-1").version == 2
    store.append("untyped", [ev()])
    assert store.stream_info("untyped").aggregate_type == ""


# -- idempotency -------------------------------------------------------------------------------


def test_retrying_a_written_batch_returns_the_original_result(store: EventStore) -> None:
    batch = [ev("A"), ev("B")]
    first = store.append("s", batch, NO_STREAM)
    store.append("s", [ev("C")])
    again = store.append("s", batch, NO_STREAM)
    assert again == first
    assert [e.event_type for e in store.read_stream("s")] == ["A", "B", "C"]


def test_retry_with_event_ids_as_strings(store: EventStore) -> None:
    event_id = str(uuid.uuid4())
    first = store.append("s", [NewEvent("A", {"x": 1}, event_id=event_id)])
    again = store.append("s", [NewEvent("A", {"x": 1}, event_id=uuid.UUID(event_id))])
    assert again == first
    assert len(store.read_all()) == 1


def test_reusing_an_event_id_with_other_content_is_an_error(store: EventStore) -> None:
    event_id = uuid.uuid4()
    store.append("s", [NewEvent("A", {"x": 1}, event_id=event_id)])
    with pytest.raises(DuplicateEventError):
        store.append("s", [NewEvent("A", {"x": 2}, event_id=event_id)])
    with pytest.raises(DuplicateEventError):
        store.append("s", [NewEvent("B", {"x": 1}, event_id=event_id)])
    with pytest.raises(DuplicateEventError):
        store.append("s", [NewEvent("A", {"x": 1}, {"m": 1}, event_id=event_id)])
    with pytest.raises(DuplicateEventError):
        store.append("other", [NewEvent("A", {"x": 1}, event_id=event_id)])
    with pytest.raises(DuplicateEventError):  # part old, part new
        store.append("s", [NewEvent("A", {"x": 1}, event_id=event_id), ev()])
    assert len(store.read_all()) == 1


def test_an_event_id_twice_in_one_append_is_invalid(store: EventStore) -> None:
    event = ev()
    with pytest.raises(InvalidInputError):
        store.append("s", [event, event])
    assert store.read_all() == []


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aggregate_id", ["", "x" * 256, "a\nb", "tab\there", "nul\x00", "del\x7f", 42, None]
)
def test_bad_aggregate_ids_are_refused(store: EventStore, aggregate_id: Any) -> None:
    with pytest.raises(InvalidAggregateIdError):
        store.append(aggregate_id, [ev()])
    assert store.read_all() == []


def test_longest_aggregate_id_and_unicode_are_fine(store: EventStore) -> None:
    store.append("x" * 255, [ev()])
    store.append("cuenta-ñandú-€-😀", [ev()])
    assert store.stream_info("x" * 255).version == 1
    assert store.read_stream("cuenta-ñandú-€-😀")[0].aggregate_id == "cuenta-ñandú-€-😀"


@pytest.mark.parametrize("event_type", ["", "x" * 101, "Bad\nType", 7, None])
def test_bad_event_types_are_refused_when_the_event_is_made(event_type: Any) -> None:
    with pytest.raises(InvalidEventTypeError):
        NewEvent(event_type, {})


@pytest.mark.parametrize(
    "data",
    [
        [1, 2],
        "text",
        None,
        {"when": object()},
        {"big": 2**70},
        {"nul": "a\x00b"},
        {1: "non-string key"},
    ],
)
def test_bad_data_is_refused_when_the_event_is_made(data: Any) -> None:
    with pytest.raises(InvalidEventDataError):
        NewEvent("A", data)


def test_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    assert NewEvent("A", {"path": "C:\\u0000"}).data == {"path": "C:\\u0000"}


def test_bad_metadata_is_refused() -> None:
    with pytest.raises(InvalidEventDataError):
        NewEvent("A", {}, metadata=["not", "an", "object"])  # type: ignore[arg-type]


def test_bad_event_ids_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        NewEvent("A", {}, event_id="not-a-uuid")


@pytest.mark.parametrize("expected", [-1, -100, 1.5, True, "sometimes", None])
def test_bad_expected_versions_are_refused(store: EventStore, expected: Any) -> None:
    with pytest.raises(InvalidExpectedVersionError):
        store.append("s", [ev()], expected)
    assert store.read_all() == []


@pytest.mark.parametrize("aggregate_type", ["x" * 101, "a\x01", 3])
def test_bad_aggregate_types_are_refused(store: EventStore, aggregate_type: Any) -> None:
    with pytest.raises(InvalidAggregateTypeError):
        store.append("s", [ev()], aggregate_type=aggregate_type)


def test_empty_and_non_event_batches_are_refused(store: EventStore) -> None:
    with pytest.raises(InvalidInputError):
        store.append("s", [])
    with pytest.raises(InvalidInputError):
        store.append("s", [{"eventType": "A"}])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        store.append("s", ev())  # type: ignore[arg-type]
    assert store.read_all() == []


def test_events_over_the_size_limit_are_refused(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    store = make_store(backend)
    assert store.max_event_size == 1024 * 1024
    big = NewEvent("Big", {"blob": "x" * (1024 * 1024)})
    with pytest.raises(EventTooLargeError) as info:
        store.append("s", [ev(), big])
    assert info.value.limit == 1024 * 1024
    assert store.read_all() == []
    small_store = make_store(backend, max_event_size=100)
    with pytest.raises(EventTooLargeError):
        small_store.append("s", [NewEvent("A", {"blob": "y" * 100})])
    small_store.append("s", [NewEvent("A", {"blob": "y" * 10})])


def test_every_error_is_a_cronica_error(store: EventStore) -> None:
    store.append("s", [ev()])
    failures: list[Callable[[], object]] = [
        lambda: store.append("", [ev()]),
        lambda: store.append("s", [ev()], NO_STREAM),
        lambda: store.stream_info("missing"),
        lambda: store.read_stream("s", from_version=0),
        lambda: store.read_all(after=-1),
        lambda: NewEvent("A", [1]),  # type: ignore[arg-type]
    ]
    for fail in failures:
        with pytest.raises(cronica.CronicaError):
            fail()


# -- reading a stream --------------------------------------------------------------------------


def test_read_stream_ranges_direction_and_limit(store: EventStore) -> None:
    store.append("s", [NewEvent("E", {"n": n}) for n in range(1, 11)])

    def versions(events: list[cronica.RecordedEvent]) -> list[int]:
        return [e.version for e in events]

    assert versions(store.read_stream("s")) == list(range(1, 11))
    assert versions(store.read_stream("s", from_version=4, to_version=6)) == [4, 5, 6]
    assert versions(store.read_stream("s", limit=3)) == [1, 2, 3]
    assert versions(store.read_stream("s", backward=True, limit=3)) == [10, 9, 8]
    assert versions(store.read_stream("s", from_version=3, to_version=5, backward=True)) == [
        5,
        4,
        3,
    ]
    assert store.read_stream("s", from_version=11) == []
    assert store.read_stream("s", from_version=5, to_version=4) == []
    assert store.read_stream("s", limit=0) == []
    assert store.read_stream("unknown") == []
    assert [e.data["n"] for e in store.read_stream("s", to_version=2)] == [1, 2]


@pytest.mark.parametrize(
    "kwargs",
    [{"from_version": 0}, {"to_version": -1}, {"limit": -1}, {"as_of": datetime(2026, 1, 1)}],
)
def test_read_stream_refuses_bad_arguments(store: EventStore, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidReadError):
        store.read_stream("s", **kwargs)


def test_read_stream_as_of_shows_the_stream_as_it_was(store: EventStore) -> None:
    store.append("s", [NewEvent("Opened", {})])
    first = store.read_stream("s")[0].timestamp
    store.append("s", [NewEvent("Changed", {})])
    second = store.read_stream("s")[1].timestamp
    assert second >= first
    assert [e.event_type for e in store.read_stream("s", as_of=first)] == ["Opened"]
    assert len(store.read_stream("s", as_of=second)) == 2
    assert store.read_stream("s", as_of=first - timedelta(microseconds=1)) == []
    other_zone = first.astimezone(
        cronica.events.parse_timestamp("2026-01-01T00:00:00+05:00").tzinfo
    )
    assert len(store.read_stream("s", as_of=other_zone)) == 1


# -- reading the global log --------------------------------------------------------------------


def test_read_all_pages_and_filters(store: EventStore) -> None:
    store.append("acc-1", [NewEvent("AccountCreated", {}), ev()], aggregate_type="Account")
    store.append("ord-1", [NewEvent("CartCreated", {})], aggregate_type="Order")
    store.append("acc-2", [NewEvent("AccountCreated", {})], aggregate_type="Account")
    everything = store.read_all()
    assert [e.event_type for e in everything] == [
        "AccountCreated",
        "DepositMade",
        "CartCreated",
        "AccountCreated",
    ]
    first_two = store.read_all(limit=2)
    assert first_two == everything[:2]
    assert store.read_all(after=first_two[-1].position) == everything[2:]
    assert store.read_all(after=everything[-1].position) == []
    created = store.read_all(event_types=["AccountCreated"])
    assert [e.aggregate_id for e in created] == ["acc-1", "acc-2"]
    orders = store.read_all(aggregate_types=["Order"])
    assert [e.aggregate_id for e in orders] == ["ord-1"]
    both = store.read_all(event_types=["AccountCreated", "CartCreated"], aggregate_types=["Order"])
    assert [e.event_type for e in both] == ["CartCreated"]
    assert store.read_all(event_types=[]) == []
    assert store.read_all(limit=0) == []
    assert store.read_all(event_types=["AccountCreated"], limit=1) == created[:1]


@pytest.mark.parametrize(
    "kwargs",
    [{"after": -1}, {"limit": -5}, {"event_types": "AccountCreated"}, {"event_types": [""]}],
)
def test_read_all_refuses_bad_arguments(store: EventStore, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        store.read_all(**kwargs)


# -- streams -----------------------------------------------------------------------------------


def test_stream_info(store: EventStore) -> None:
    bank_story(store)
    info = store.stream_info("acc_12345")
    assert (info.aggregate_id, info.aggregate_type, info.version) == ("acc_12345", "Account", 3)
    events = store.read_stream("acc_12345")
    assert info.created == events[0].timestamp
    assert info.updated == events[-1].timestamp
    store.append("acc_12345", [ev()])
    later = store.stream_info("acc_12345")
    assert later.version == 4 and later.created == info.created and later.updated >= info.updated
    with pytest.raises(StreamNotFoundError):
        store.stream_info("nobody")


def test_list_streams_by_type_paged(store: EventStore) -> None:
    for i in range(7):
        store.append(f"acc-{i}", [ev()], aggregate_type="Account")
    store.append("ord-1", [ev()], aggregate_type="Order")
    page1 = store.list_streams("Account", limit=3)
    assert [s.aggregate_id for s in page1] == ["acc-0", "acc-1", "acc-2"]
    page2 = store.list_streams("Account", after=page1[-1].aggregate_id, limit=3)
    assert [s.aggregate_id for s in page2] == ["acc-3", "acc-4", "acc-5"]
    page3 = store.list_streams("Account", after=page2[-1].aggregate_id, limit=3)
    assert [s.aggregate_id for s in page3] == ["acc-6"]
    assert [s.aggregate_id for s in store.list_streams("Order")] == ["ord-1"]
    assert len(store.list_streams()) == 8
    assert store.list_streams("Nothing") == []


def test_list_streams_orders_by_code_point(store: EventStore) -> None:
    for name in ["b", "B", "a", "á", "A-1", "a-1"]:
        store.append(name, [ev()])
    assert [s.aggregate_id for s in store.list_streams()] == sorted(
        ["b", "B", "a", "á", "A-1", "a-1"]
    )


def test_status_counts(store: EventStore) -> None:
    bank_story(store)
    store.append("other", [ev()])
    status = store.status()
    assert (status.streams, status.events) == (2, 4)
    assert status.head_position == store.read_all()[-1].position
    assert status.head_position == store.head_position()
    assert status.events == store.count_events()
    assert status.readable_position == status.head_position
    assert status.waiting_on == []


@pytest.mark.parametrize(("first", "second"), [(0, False), (1, True), ([0], [False]), ("1", 1)])
def test_a_boolean_is_not_a_number_when_comparing_retries(
    store: EventStore, first: Any, second: Any
) -> None:
    event_id = uuid.uuid4()
    store.append("s", [NewEvent("A", {"x": first}, event_id=event_id)])
    with pytest.raises(DuplicateEventError):
        store.append("s", [NewEvent("A", {"x": second}, event_id=event_id)])


def test_a_retry_with_an_equal_number_in_another_form_is_the_same_event(store: EventStore) -> None:
    event_id = uuid.uuid4()
    first = store.append("s", [NewEvent("A", {"x": 1, "y": [2.5]}, event_id=event_id)])
    assert store.append("s", [NewEvent("A", {"y": [2.5], "x": 1.0}, event_id=event_id)]) == first


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
def test_lone_surrogates_are_refused_everywhere(store: EventStore, text: str) -> None:
    with pytest.raises(InvalidAggregateIdError):
        store.append(text, [ev()])
    with pytest.raises(InvalidAggregateIdError):
        store.read_stream(text)
    with pytest.raises(InvalidEventTypeError):
        NewEvent(text, {})
    with pytest.raises(InvalidEventDataError):
        NewEvent("A", {"x": text})
    with pytest.raises(InvalidAggregateTypeError):
        store.append("s", [ev()], aggregate_type=text)
    assert store.read_all() == []


def test_huge_numbers_read_as_no_bound_and_never_reach_the_driver(store: EventStore) -> None:
    store.append("s", [ev(), ev()])
    huge = 2**64
    assert store.read_stream("s", from_version=huge) == []
    assert len(store.read_stream("s", to_version=huge, limit=huge)) == 2
    assert store.read_all(after=huge) == []
    assert len(store.read_all(limit=huge)) == 2
    assert len(store.list_streams(limit=huge)) == 1
    with pytest.raises(InvalidExpectedVersionError):
        store.append("s", [ev()], huge)
    with pytest.raises(InvalidExpectedVersionError):
        store.append("s", [ev()], 2**31)


def test_read_recent_gives_the_newest_events_first(store: EventStore) -> None:
    for n in range(5):
        store.append(f"s-{n % 2}", [NewEvent("Even" if n % 2 == 0 else "OddHappened", {"n": n})])
    newest = store.read_recent(3)
    assert [e.data["n"] for e in newest] == [4, 3, 2]
    assert [e.data["n"] for e in store.read_recent(10, ["OddHappened"])] == [3, 1]
    assert store.read_recent(0) == []
    with pytest.raises(InvalidReadError):
        store.read_recent(-1)
    with pytest.raises(InvalidReadError):
        store.read_recent(3, "Even")
