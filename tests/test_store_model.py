"""Model-based differential test: a real backend must behave like the in-memory model.

A Hypothesis state machine drives :class:`MemoryEventStore` (the model) and a real backend
(SQLite, PostgreSQL) with the same random operations and compares every outcome: the same
exception class, or the same results. Events are compared on everything but ``position`` and
``timestamp``: memory positions are dense from 1, SQL positions only strictly increase, so a
model position ``p`` stands for the real store's ``p``-th event (``pos_map[p]``). JSON payloads
are compared by JSON value: numbers by decimal value (PostgreSQL's JSONB gives ``1e16`` back as
the int ``10000000000000000`` and ``-0.0`` as ``0.0``), booleans apart from numbers.

After every step the real store's whole log must equal the model's, in the same order, with
strictly increasing positions and dense versions per stream.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as label
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from cronica import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    CronicaError,
    DuplicateEventError,
    EventStore,
    InvalidEventDataError,
    InvalidInputError,
    MemoryEventStore,
    NewEvent,
    RecordedEvent,
    SQLiteEventStore,
    StreamInfo,
    StreamNotFoundError,
    StreamState,
)
from cronica.store.base import AppendOutcome, AppendRequest
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres

T = TypeVar("T")

# -- what the operations draw from -------------------------------------------------------------

POOL_IDS = ("acc-1", "acc-2", "Acc-1", "order/7", "é-ü", "𝄞" * 255)
"""Aggregate ids that come back often, so appends meet existing streams."""
AGGREGATE_TYPES: tuple[str | None, ...] = (None, "", "Account", "Order", "account")
EVENT_TYPES = ("Created", "Deposited", "Withdrawn", "Ünïcode ✓", "T" * 100)
FILTER_TYPES = ("Created", "Deposited", "Nope", "T" * 100)
FILTER_AGGREGATE_TYPES = ("", "Account", "Order", "account", "Nope")
BIG = (2**31, 2**63 - 1, 2**63, 2**64)
"""Integers a Python caller may pass that overflow a 32- or 64-bit column."""


def or_big(small: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    """``small`` mostly, one of :data:`BIG` now and then."""
    return st.one_of(small, small, small, st.sampled_from(BIG))


_CONTROLS = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0)]))
_safe_chars = st.characters(codec="utf-8", exclude_characters=_CONTROLS)
_random_ids = st.text(_safe_chars, min_size=1, max_size=12)
aggregate_ids = st.one_of(
    st.sampled_from(POOL_IDS), st.sampled_from(POOL_IDS), st.sampled_from(POOL_IDS), _random_ids
)
aggregate_types = st.sampled_from(AGGREGATE_TYPES)

_json_text = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8
) | st.sampled_from(["\\u0000", "\\\\u0000", "\u2028", "𝄞", "'", '"'])
_json_scalars = (
    st.none()
    | st.booleans()
    | st.sampled_from([0, 1, -1, 1.0, 0.0, -0.0])
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _json_text
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_json_text, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(_json_text, _json_values, max_size=4)

new_events = st.builds(
    NewEvent,
    event_type=st.sampled_from(EVENT_TYPES),
    data=json_objects,
    metadata=st.none() | json_objects,
    event_id=st.none(),  # a fresh random id: a new event
)
event_lists = st.lists(new_events, min_size=1, max_size=5, unique_by=lambda e: e.event_id)


@dataclass(frozen=True)
class Relative:
    """An exact expected version relative to the model stream's current version."""

    offset: int


ExpectedChoice = StreamState | str | int | Relative
_states = st.sampled_from([ANY, NO_STREAM, EXISTS, "any", "no_stream", "exists"])
_relative = st.sampled_from([Relative(0), Relative(0), Relative(1), Relative(-1)])
valid_expected_choices: st.SearchStrategy[ExpectedChoice] = st.one_of(
    _states, _relative, st.integers(0, 6)
)
# Versions past 2**31 - 1 are invalid input (InvalidExpectedVersionError) on every backend.
expected_choices: st.SearchStrategy[ExpectedChoice] = st.one_of(
    _states, _relative, st.sampled_from([*range(7), *BIG])
)
containers = st.sampled_from(["list", "tuple", "iterator"])

BAD_IDS: tuple[Any, ...] = ("", "a" * 256, "a\x00b", "\x1f", "tab\there", "\x7f", "\x85", 7, None)
SURROGATE_IDS = ("\ud800", "acc-\udfff")
"""Not control characters, but no UTF-8 form: no SQL backend can store them."""
BAD_EXPECTED: tuple[Any, ...] = (-1, -7, True, False, "ANY", "whatever", 1.0, None, [])
BAD_AGGREGATE_TYPES: tuple[Any, ...] = ("A" * 101, "a\nb", "\x00", 3)
BAD_DATA: tuple[Any, ...] = (
    [],
    "text",
    1,
    [("a", 1)],
    {1: "non-string key"},
    {"nul": "a\x00b"},
    {"surrogate": "\ud800"},
    {"too_big": 2**64},
    {"object": object()},
)

# -- comparing ---------------------------------------------------------------------------------


def canon(value: object) -> object:
    """A JSON value as a hashable form: numbers by decimal value, booleans apart from numbers."""
    if value is None or isinstance(value, bool | str):
        return (type(value).__name__, value)
    if isinstance(value, int):
        return ("number", Decimal(value))
    if isinstance(value, float):
        return ("number", Decimal(repr(value)))
    if isinstance(value, list):
        return ("list", tuple(canon(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, canon(item)) for key, item in value.items()))
    raise TypeError(f"not a JSON value: {value!r}")


def event_key(event: RecordedEvent) -> tuple[object, ...]:
    return (
        event.event_id,
        event.event_type,
        event.aggregate_id,
        event.aggregate_type,
        event.version,
        canon(event.data),
        canon(event.metadata),
    )


def info_key(info: StreamInfo) -> tuple[str, str, int]:
    return (info.aggregate_id, info.aggregate_type, info.version)


def content_differs(event: NewEvent, stored: NewEvent) -> bool:
    return (
        event.event_type != stored.event_type
        or canon(event.data) != canon(stored.data)
        or canon(event.metadata) != canon(stored.metadata)
    )


def confuse(value: object) -> object | None:
    """``value`` with its first boolean turned into a number or 0/1 into a boolean, or None.

    Python says ``True == 1``; JSON does not: the result is different content.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, list):
        for index, item in enumerate(value):
            changed = confuse(item)
            if changed is not None:
                return [*value[:index], changed, *value[index + 1 :]]
    if isinstance(value, dict):
        for key, item in value.items():
            changed = confuse(item)
            if changed is not None:
                return {**value, key: changed}
    return None


def contain(events: Sequence[Any], container: str) -> Iterable[Any]:
    if container == "tuple":
        return tuple(events)
    if container == "iterator":
        return iter(list(events))
    return list(events)


@dataclass(frozen=True)
class Batch:
    """A batch both stores accepted: retrying it must give the same versions again."""

    aggregate_id: str
    events: tuple[NewEvent, ...]
    from_version: int
    to_version: int
    position: int
    """The model's position of the batch's last event."""


@dataclass(frozen=True)
class RequestSpec:
    events: tuple[NewEvent, ...]
    expected: ExpectedChoice
    aggregate_type: str | None
    repeat_previous: bool


request_specs = st.builds(
    RequestSpec,
    events=event_lists.map(tuple),
    expected=valid_expected_choices,
    aggregate_type=aggregate_types,
    repeat_previous=st.booleans(),
)

SETTLE_SECONDS = 30.0


class StoreModel(RuleBasedStateMachine):
    """The model and one real backend, side by side; subclasses open the real one."""

    batches: Bundle[Batch] = Bundle("batches")

    def __init__(self) -> None:
        super().__init__()
        self.model = MemoryEventStore()
        self.real = self.open_real()
        self.pos_map: list[int] = [0]
        """``pos_map[p]``: the real position of the model's ``p``-th event (0 for none)."""
        self.pending_positions: list[tuple[int, int]] = []
        """(model position, real position) pairs to check once the log is synced."""

    def open_real(self, *, group_commit: bool = True) -> EventStore:
        """A fresh real store (the first call) or the same database again (later calls)."""
        raise NotImplementedError

    def close_real(self) -> None:
        self.real.close()

    def teardown(self) -> None:
        self.model.close()
        self.close_real()

    # -- helpers ---------------------------------------------------------------------------

    def outcomes(
        self, op: Callable[[EventStore], T], real_op: Callable[[EventStore], T] | None = None
    ) -> tuple[T | Exception, T | Exception]:
        """``op`` run on the model and ``real_op`` (default: ``op``) on the real store."""
        results: list[T | Exception] = []
        for store, call in ((self.model, op), (self.real, real_op or op)):
            try:
                results.append(call(store))
            except Exception as exc:
                results.append(exc)
        return results[0], results[1]

    def both(
        self,
        what: str,
        op: Callable[[EventStore], T],
        real_op: Callable[[EventStore], T] | None = None,
    ) -> tuple[T, T] | None:
        """The same exception class from both (then None), or both results."""
        model, real = self.outcomes(op, real_op)
        label(f"{what.split('(')[0]}: {type(model).__name__}")
        outcome = f"{what}: model {model!r}, real {real!r}"
        assert type(model) is type(real), outcome
        if isinstance(model, Exception) or isinstance(real, Exception):
            assert isinstance(real, CronicaError), outcome
            return None
        return model, real

    def model_version(self, aggregate_id: str) -> int:
        try:
            return self.model.stream_info(aggregate_id).version
        except StreamNotFoundError:
            return 0

    def resolve(self, expected: ExpectedChoice, version: int) -> Any:
        return version + expected.offset if isinstance(expected, Relative) else expected

    def check_results(self, what: str, model: AppendOutcome, real: AppendOutcome) -> None:
        outcome = f"{what}: model {model!r}, real {real!r}"
        label(f"{what}: {type(model).__name__}")
        assert type(model) is type(real), outcome
        if isinstance(model, AppendResult):
            assert isinstance(real, AppendResult), outcome
            assert (model.from_version, model.to_version) == (
                real.from_version,
                real.to_version,
            ), outcome
            self.pending_positions.append((model.position, real.position))

    def check_events(
        self, what: str, model: list[RecordedEvent], real: list[RecordedEvent]
    ) -> None:
        assert [event_key(e) for e in model] == [event_key(e) for e in real], what
        for m, r in zip(model, real, strict=True):
            assert r.position == self.pos_map[m.position], (what, m, r)

    def real_after(self, index: int, between: bool) -> int:
        """The real position that stands for the model's ``after=index``."""
        last = len(self.pos_map) - 1
        if index > last:
            return self.pos_map[last] + (index - last)
        if between and index < last and self.pos_map[index + 1] - self.pos_map[index] > 1:
            return self.pos_map[index] + 1
        return self.pos_map[index]

    def record(self, aggregate_id: str, events: Sequence[NewEvent], result: AppendResult) -> Batch:
        return Batch(
            aggregate_id, tuple(events), result.from_version, result.to_version, result.position
        )

    # -- appending -------------------------------------------------------------------------

    @initialize(
        target=batches,
        seeds=st.lists(
            st.tuples(st.sampled_from(POOL_IDS), event_lists, aggregate_types), max_size=6
        ),
    )
    def seed(self, seeds: list[tuple[str, list[NewEvent], str | None]]) -> MultipleResults[Batch]:
        """Start from a few streams, so that most steps meet stored events."""
        accepted = []
        for aggregate_id, events, aggregate_type in seeds:
            batch = self.append(aggregate_id, events, ANY, aggregate_type, "list")
            if isinstance(batch, Batch):
                accepted.append(batch)
        return multiple(*accepted)

    @rule(
        target=batches,
        aggregate_id=st.sampled_from(POOL_IDS),
        events=event_lists,
        exact=st.booleans(),
    )
    def extend_stream(
        self, aggregate_id: str, events: list[NewEvent], exact: bool
    ) -> Batch | MultipleResults[Batch]:
        """An append that usually succeeds, so streams grow."""
        return self.append(aggregate_id, events, Relative(0) if exact else ANY, None, "list")

    @rule(
        target=batches,
        aggregate_id=aggregate_ids,
        events=event_lists,
        expected=expected_choices,
        aggregate_type=aggregate_types,
        container=containers,
    )
    def append(
        self,
        aggregate_id: str,
        events: list[NewEvent],
        expected: ExpectedChoice,
        aggregate_type: str | None,
        container: str,
    ) -> Batch | MultipleResults[Batch]:
        version = self.resolve(expected, self.model_version(aggregate_id))
        results = self.both(
            "append",
            lambda store: store.append(
                aggregate_id, contain(events, container), version, aggregate_type
            ),
        )
        if results is None:
            return multiple()
        self.check_results("append", *results)
        return self.record(aggregate_id, events, results[0])

    @rule(
        batch=batches,
        variant=st.sampled_from(["same", "slice", "reversed", "other_stream", "with_new"]),
        cut=st.tuples(st.integers(0, 4), st.integers(1, 5)),
        other=aggregate_ids,
        fresh=new_events,
        expected=valid_expected_choices,
        aggregate_type=aggregate_types,
    )
    def retry(
        self,
        batch: Batch,
        variant: str,
        cut: tuple[int, int],
        other: str,
        fresh: NewEvent,
        expected: ExpectedChoice,
        aggregate_type: str | None,
    ) -> None:
        """Re-append stored NewEvent objects: idempotent in place and order, else a duplicate."""
        events = list(batch.events)
        aggregate_id = batch.aggregate_id
        succeeds = True
        if variant == "slice":
            start = min(cut[0], len(events) - 1)
            events = events[start : start + cut[1]]
        elif variant == "reversed":
            events.reverse()
            succeeds = len(events) == 1
        elif variant == "other_stream":
            if other == batch.aggregate_id:
                other = "acc-2" if other == "acc-1" else "acc-1"
            aggregate_id = other
            succeeds = False
        elif variant == "with_new":
            events.insert(cut[0] % (len(events) + 1), fresh)
            succeeds = False
        # Any valid expectation and aggregate type: they do not matter to a retry.
        version = self.resolve(expected, self.model_version(aggregate_id))
        if isinstance(version, int) and version < 0:
            version = ANY
        model_outcome = self._append_outcome(
            self.model, aggregate_id, events, version, aggregate_type
        )
        if succeeds:
            offset = batch.events.index(events[0])
            first = batch.from_version + offset
            assert isinstance(model_outcome, AppendResult), model_outcome
            assert model_outcome.from_version == first
            assert model_outcome.to_version == first + len(events) - 1
        else:
            assert isinstance(model_outcome, DuplicateEventError), model_outcome
        real_outcome = self._append_outcome(
            self.real, aggregate_id, events, version, aggregate_type
        )
        self.check_results(f"retry ({variant})", model_outcome, real_outcome)

    @staticmethod
    def _append_outcome(
        store: EventStore,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected: Any,
        aggregate_type: str | None,
    ) -> AppendOutcome:
        try:
            return store.append(aggregate_id, events, expected, aggregate_type)
        except CronicaError as exc:
            return exc

    @rule(
        batch=batches,
        index=st.integers(0, 4),
        change=st.sampled_from(["event_type", "data", "metadata", "confuse_data", "confuse_meta"]),
        new_type=st.sampled_from(EVENT_TYPES),
        new_data=json_objects,
        elsewhere=st.none() | aggregate_ids,
        extra=st.lists(new_events, max_size=2),
    )
    def reuse_event_id(
        self,
        batch: Batch,
        index: int,
        change: str,
        new_type: str,
        new_data: dict[str, Any],
        elsewhere: str | None,
        extra: list[NewEvent],
    ) -> None:
        """One stored event id with other content: a DuplicateEventError, and nothing written."""
        stored = batch.events[index % len(batch.events)]
        event_type, data, metadata = stored.event_type, stored.data, stored.metadata
        if change == "event_type":
            event_type = new_type
        elif change == "data":
            data = new_data
        elif change == "metadata":
            metadata = new_data
        else:
            original = data if change == "confuse_data" else metadata
            confused = confuse(original)
            if not isinstance(confused, dict):
                confused = {**original, "flag": True}
            if change == "confuse_data":
                data = confused
            else:
                metadata = confused
        mutant = NewEvent(event_type, data, metadata, event_id=stored.event_id)
        aggregate_id = batch.aggregate_id if elsewhere is None else elsewhere
        events = [mutant, *(e for e in extra if e.event_id != mutant.event_id)]
        model_outcome = self._append_outcome(self.model, aggregate_id, events, ANY, None)
        if content_differs(mutant, stored) or aggregate_id != batch.aggregate_id or extra:
            assert isinstance(model_outcome, DuplicateEventError), (mutant, stored, model_outcome)
        real_outcome = self._append_outcome(self.real, aggregate_id, events, ANY, None)
        self.check_results(f"reuse event id ({change})", model_outcome, real_outcome)

    @rule(
        target=batches,
        one_stream=st.booleans(),
        ids=st.lists(aggregate_ids, min_size=2, max_size=4, unique=True),
        specs=st.lists(request_specs, min_size=2, max_size=4),
        old=st.none() | batches,
        old_expected=st.sampled_from([ANY, NO_STREAM, EXISTS, 0]),
    )
    def append_batch(
        self,
        one_stream: bool,
        ids: list[str],
        specs: list[RequestSpec],
        old: Batch | None,
        old_expected: ExpectedChoice,
    ) -> MultipleResults[Batch]:
        """Several requests in one backend transaction (what group commit hands over).

        Only batch shapes whose global order every backend keeps: one stream, or distinct
        streams in aggregate-id order (PostgreSQL writes a batch in aggregate-id order); plus,
        last, maybe a retry of a stored batch, which writes nothing.
        """
        if one_stream:
            streams = [ids[0]] * len(specs)
        else:
            streams = sorted(ids)[: len(specs)]
            specs = specs[: len(streams)]
        versions = {aggregate_id: self.model_version(aggregate_id) for aggregate_id in streams}
        args: list[tuple[str, tuple[NewEvent, ...], Any, str | None]] = []
        for number, (aggregate_id, spec) in enumerate(zip(streams, specs, strict=True)):
            events = args[-1][1] if spec.repeat_previous and number else spec.events
            expected = self.resolve(spec.expected, versions[aggregate_id])
            versions[aggregate_id] += len(events)
            args.append((aggregate_id, events, expected, spec.aggregate_type))
        if old is not None:
            args.append((old.aggregate_id, old.events, old_expected, None))

        def run(store: EventStore) -> list[AppendOutcome]:
            requests: list[AppendRequest] = [store.prepare_append(*arg) for arg in args]
            return store._append_batch(requests)

        results = self.both("append batch", run)
        if results is None:
            return multiple()
        accepted = []
        for number, (model, real) in enumerate(zip(*results, strict=True)):
            self.check_results(f"batch request {number}", model, real)
            if isinstance(model, AppendResult):
                accepted.append(self.record(args[number][0], args[number][1], model))
        if old is not None:
            last = results[0][-1]
            assert isinstance(last, AppendResult), last
            assert (last.from_version, last.to_version) == (old.from_version, old.to_version)
        return multiple(*accepted)

    @rule(
        kind=st.sampled_from(
            ["id", "surrogate_id", "expected", "aggregate_type", "events", "data", "metadata"]
        ),
        bad_id=st.sampled_from(BAD_IDS),
        surrogate_id=st.sampled_from(SURROGATE_IDS),
        bad_expected=st.sampled_from(BAD_EXPECTED),
        bad_type=st.sampled_from(BAD_AGGREGATE_TYPES),
        bad_data=st.sampled_from(BAD_DATA),
        events_shape=st.sampled_from(["empty", "single", "dict", "string", "none", "twice"]),
        aggregate_id=aggregate_ids,
        events=event_lists,
    )
    def invalid_append(
        self,
        kind: str,
        bad_id: Any,
        surrogate_id: str,
        bad_expected: Any,
        bad_type: Any,
        bad_data: Any,
        events_shape: str,
        aggregate_id: str,
        events: list[NewEvent],
    ) -> None:
        """Invalid input: the same InvalidInputError subclass from both, nothing written."""
        if kind in ("data", "metadata"):
            payload = (bad_data, None) if kind == "data" else ({}, bad_data)
            with pytest.raises(InvalidEventDataError):
                NewEvent("Created", *payload)
            return
        target: Any = aggregate_id
        batch: Any = events
        expected: Any = ANY
        agg_type: Any = None
        if kind == "id":
            target = bad_id
        elif kind == "surrogate_id":
            target = surrogate_id
        elif kind == "expected":
            expected = bad_expected
        elif kind == "aggregate_type":
            agg_type = bad_type
        else:
            batch = {
                "empty": [],
                "single": events[0],
                "dict": [events[0], {"event_type": "Created", "data": {}}],
                "string": "Created",
                "none": [None],
                "twice": [events[0], *events],
            }[events_shape]
        before = self.model.status().events
        model, real = self.outcomes(lambda store: store.append(target, batch, expected, agg_type))
        assert isinstance(model, InvalidInputError), (kind, model, real)
        assert type(model) is type(real), (kind, model, real)
        assert self.model.status().events == before

    # -- reading ---------------------------------------------------------------------------

    @rule(
        aggregate_id=aggregate_ids,
        from_version=or_big(st.integers(1, 8)),
        to_version=st.none() | or_big(st.integers(0, 8)),
        backward=st.booleans(),
        limit=st.none() | or_big(st.integers(0, 6)),
    )
    def read_stream(
        self,
        aggregate_id: str,
        from_version: int,
        to_version: int | None,
        backward: bool,
        limit: int | None,
    ) -> None:
        results = self.both(
            "read_stream",
            lambda store: store.read_stream(
                aggregate_id, from_version, to_version, backward=backward, limit=limit
            ),
        )
        if results is not None:
            self.check_events("read_stream", *results)

    @rule(
        after=or_big(st.integers(0, 40)),
        between=st.booleans(),
        limit=st.none() | or_big(st.integers(0, 8)),
        event_types=st.none() | st.lists(st.sampled_from(FILTER_TYPES), max_size=3),
        agg_types=st.none() | st.lists(st.sampled_from(FILTER_AGGREGATE_TYPES), max_size=3),
    )
    def read_all(
        self,
        after: int,
        between: bool,
        limit: int | None,
        event_types: list[str] | None,
        agg_types: list[str] | None,
    ) -> None:
        last = len(self.pos_map) - 1
        if after <= last:
            real_after = self.real_after(after, between)
        elif after >= 2**62:  # beyond any position on either numbering
            real_after = after
        else:
            real_after = self.pos_map[last] + (after - last)
        what = f"read_all(after={after}->{real_after}, {limit}, {event_types}, {agg_types})"
        results = self.both(
            what,
            lambda store: store.read_all(after, limit, event_types, agg_types),
            lambda store: store.read_all(real_after, limit, event_types, agg_types),
        )
        if results is not None:
            self.check_events(what, *results)

    @rule(aggregate_id=aggregate_ids)
    def stream_info(self, aggregate_id: str) -> None:
        results = self.both("stream_info", lambda store: store.stream_info(aggregate_id))
        if results is None:
            return
        model, real = results
        assert info_key(model) == info_key(real), (model, real)
        for store, info in ((self.model, model), (self.real, real)):
            events = store.read_stream(aggregate_id)
            assert info.version == len(events) == events[-1].version
            assert info.created == events[0].timestamp, (store.backend_name, info, events[0])
            assert info.updated == events[-1].timestamp, (store.backend_name, info, events[-1])

    @rule(
        aggregate_type=st.none() | st.sampled_from(FILTER_AGGREGATE_TYPES),
        after=st.none() | aggregate_ids | st.just(""),
        limit=st.none() | or_big(st.integers(0, 4)),
    )
    def list_streams(self, aggregate_type: str | None, after: str | None, limit: Any) -> None:
        results = self.both(
            "list_streams", lambda store: store.list_streams(aggregate_type, after, limit)
        )
        if results is not None:
            assert [info_key(i) for i in results[0]] == [info_key(i) for i in results[1]]

    @rule(
        aggregate_type=st.none() | st.sampled_from(FILTER_AGGREGATE_TYPES),
        page_size=st.integers(1, 3),
    )
    def page_streams(self, aggregate_type: str | None, page_size: int) -> None:
        """Follow the ``after`` cursor page by page: the pages add up to the full list."""
        for store in (self.model, self.real):
            pages: list[StreamInfo] = []
            after: str | None = None
            while True:
                page = store.list_streams(aggregate_type, after, page_size)
                assert len(page) <= page_size
                pages.extend(page)
                if len(page) < page_size:
                    break
                after = page[-1].aggregate_id
            everything = store.list_streams(aggregate_type, limit=10_000)
            assert [info_key(i) for i in pages] == [info_key(i) for i in everything]
        model_all = self.model.list_streams(aggregate_type, limit=10_000)
        real_all = self.real.list_streams(aggregate_type, limit=10_000)
        assert [info_key(i) for i in model_all] == [info_key(i) for i in real_all]

    @rule(
        aggregate_id=st.sampled_from(POOL_IDS),
        index=st.integers(0, 30),
        shift=st.sampled_from([-1, 0, 1]),
    )
    def read_stream_as_of(self, aggregate_id: str, index: int, shift: int) -> None:
        """``as_of`` keeps the events recorded up to then (each store by its own clock)."""
        for store in (self.model, self.real):
            events = store.read_stream(aggregate_id)
            if not events:
                continue
            as_of = events[index % len(events)].timestamp + timedelta(microseconds=shift)
            expected = [event_key(e) for e in events if e.timestamp <= as_of]
            got = store.read_stream(aggregate_id, as_of=as_of)
            assert [event_key(e) for e in got] == expected, (store.backend_name, as_of)
            stamps = [e.timestamp for e in events]
            assert stamps == sorted(stamps), f"{store.backend_name}: a stream's time went back"

    @rule(
        call=st.sampled_from(
            [
                ("read_stream", {"aggregate_id": ""}),
                ("read_stream", {"aggregate_id": "a" * 256}),
                ("read_stream", {"aggregate_id": "\ud800"}),
                ("read_stream", {"aggregate_id": "acc-1", "from_version": 0}),
                ("read_stream", {"aggregate_id": "acc-1", "from_version": -1}),
                ("read_stream", {"aggregate_id": "acc-1", "from_version": True}),
                ("read_stream", {"aggregate_id": "acc-1", "to_version": -1}),
                ("read_stream", {"aggregate_id": "acc-1", "limit": -1}),
                ("read_stream", {"aggregate_id": "acc-1", "as_of": datetime(2020, 1, 1)}),
                ("read_all", {"after": -1}),
                ("read_all", {"after": True}),
                ("read_all", {"limit": -1}),
                ("read_all", {"event_types": "Created"}),
                ("read_all", {"event_types": [""]}),
                ("read_all", {"event_types": ["\ud800"]}),
                ("read_all", {"aggregate_types": ["x" * 101]}),
                ("stream_info", {"aggregate_id": "a\nb"}),
                ("stream_info", {"aggregate_id": "\ud800"}),
                ("list_streams", {"aggregate_type": "\x00"}),
                ("list_streams", {"after": 5}),
                ("list_streams", {"after": "\ud800"}),
                ("list_streams", {"limit": -1}),
            ]
        )
    )
    def invalid_read(self, call: tuple[str, dict[str, Any]]) -> None:
        """Bad read arguments: the same error class from both (or the same empty answer)."""
        name, kwargs = call
        results = self.both(f"{name}(**{kwargs!r})", lambda store: getattr(store, name)(**kwargs))
        if results is not None:
            assert results[0] == results[1] == [], results

    @rule(group_commit=st.booleans())
    def reopen(self, group_commit: bool) -> None:
        """Close the real store and open its database again: everything is still there, and
        new positions go on above the old ones (the invariant checks both)."""
        self.real.close()
        self.real = self.open_real(group_commit=group_commit)

    @rule()
    def status(self) -> None:
        model, real = self.model.status(), self.real.status()
        assert (model.streams, model.events) == (real.streams, real.events), (model, real)
        assert real.head_position == self.pos_map[-1], (real, self.pos_map[-1])

    # -- after every step ------------------------------------------------------------------

    @invariant()
    def same_log(self) -> None:
        """The real log is the model's, in order; positions increase, versions are dense."""
        model = self.model.read_all()
        assert [e.position for e in model] == list(range(1, len(model) + 1))
        real = self.real.read_all()
        deadline = time.monotonic() + SETTLE_SECONDS
        # A PostgreSQL reader sees nothing above a transaction still open elsewhere in the
        # cluster (another test, say); wait for it before calling events missing.
        while len(real) < len(model) and time.monotonic() < deadline:
            time.sleep(0.05)
            real = self.real.read_all()
        assert [event_key(e) for e in real] == [event_key(e) for e in model], "logs differ"
        positions = [e.position for e in real]
        assert all(a < b for a, b in itertools.pairwise(positions)), positions
        assert positions[: len(self.pos_map) - 1] == self.pos_map[1:], "positions changed"
        self.pos_map = [0, *positions]
        for model_position, real_position in self.pending_positions:
            assert self.pos_map[model_position] == real_position, (
                f"result position {real_position} is not that of the model's {model_position}"
            )
        self.pending_positions.clear()
        versions: dict[str, int] = {}
        for recorded in real:
            versions[recorded.aggregate_id] = versions.get(recorded.aggregate_id, 0) + 1
            assert recorded.version == versions[recorded.aggregate_id], recorded


class SQLiteModel(StoreModel):
    directory: Path | None = None

    def open_real(self, *, group_commit: bool = True) -> EventStore:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="cronica-model-"))
        return SQLiteEventStore(self.directory / "events.db", group_commit=group_commit)

    def close_real(self) -> None:
        try:
            super().close_real()
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)


class PostgresModel(StoreModel):
    schema: str | None = None

    def open_real(self, *, group_commit: bool = True) -> EventStore:
        from cronica.store.postgres import PostgresEventStore

        if self.schema is None:
            self.schema = f"model_{uuid.uuid4().hex[:16]}"
        try:
            return PostgresEventStore(POSTGRES_URL, schema=self.schema, group_commit=group_commit)
        except BaseException:
            drop_schema(self.schema)
            raise

    def close_real(self) -> None:
        try:
            super().close_real()
        finally:
            if self.schema is not None:
                drop_schema(self.schema)


MODEL_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # Shrink one failure, not every distinct one: shrinking a state machine is slow, and the
    # suite's timeout is 300 s.
    report_multiple_bugs=False,
)


def test_sqlite_behaves_like_the_model() -> None:
    run_state_machine_as_test(SQLiteModel, settings=MODEL_SETTINGS)


@pytest.mark.postgres
def test_postgres_behaves_like_the_model() -> None:
    require_postgres()
    run_state_machine_as_test(PostgresModel, settings=MODEL_SETTINGS)
