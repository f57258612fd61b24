"""A projector must not mix versions or lose track of a failure: an older process (a replica
in a rolling deploy, a rollback) leaves a newer version's tables and rebuild alone, a newer one
restarts an older one's rebuild at its own version, a poison event both tracks met is skipped
for both at once, and waiting or operating on what is not there is a typed error."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import cronica
from cronica import EventStore, RecordedEvent
from cronica.errors import InvalidInputError, ProjectionNotFoundError
from cronica.projections import Catalog, Projection, ProjectionWriter, Projector, on
from cronica.readmodels import read_models_for
from cronica.readmodels.base import ReadModelDatabase


class TotalsV1(Projection):
    name = "totals"
    version = 1
    tables: ClassVar = {"totals": "CREATE TABLE {totals} (id TEXT PRIMARY KEY, n INTEGER)"}

    @on("Added")
    def added(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        if event.data.get("bad"):
            raise ValueError("poison")
        db.write("INSERT INTO {totals} VALUES (?, ?)", [event.aggregate_id, self.amount(event)])

    def amount(self, event: RecordedEvent) -> int:
        return int(event.data["amount"])


class TotalsV2(TotalsV1):
    """New code: stores cents."""

    version = 2

    def amount(self, event: RecordedEvent) -> int:
        return int(event.data["amount"]) * 100


@pytest.fixture
def db(store: EventStore) -> Iterator[ReadModelDatabase]:
    with read_models_for(store) as database:
        yield database


def add(store: EventStore, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        store.append(f"a{i}", [cronica.NewEvent("Added", {"amount": 1})], aggregate_type="A")


def totals(db: ReadModelDatabase) -> set[int]:
    return {int(n) for (n,) in db.query("SELECT n FROM totals")}


def test_an_older_projector_leaves_a_newer_rebuild_alone(
    store: EventStore, db: ReadModelDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """The v1 process used to finish the v2 rebuild with v1 handlers and stamp it version 2:
    rows of 1 and of 100 mixed, for good."""
    add(store, 10)
    with Projector(store, [TotalsV1()], db, batch_size=5, owner="old") as old:
        old.run_until_caught_up()
    with Projector(store, [TotalsV2()], db, batch_size=5, owner="new") as new:
        new.run_once()  # the v2 rebuild is half done
    with Projector(store, [TotalsV1()], db, batch_size=5, owner="old") as old:
        old.run_until_caught_up()
        record = old.catalog.record("totals")
        assert (record.version, record.rebuild_version) == (1, 2)  # untouched
    assert "left to the processes that run version 2" in caplog.text
    with Projector(store, [TotalsV2()], db, batch_size=5, owner="new") as new:
        new.run_until_caught_up()
        assert new.catalog.record("totals").version == 2
    assert totals(db) == {100}
    with Projector(store, [TotalsV1()], db, owner="old") as old:  # a rollback
        old.run_until_caught_up()
        assert old.catalog.record("totals").rebuild_generation is None  # no rebuild down to v1
    assert totals(db) == {100}


def test_a_newer_projector_restarts_an_older_rebuild_at_its_version(
    store: EventStore, db: ReadModelDatabase
) -> None:
    add(store, 10)
    with Projector(store, [TotalsV1()], db, batch_size=5, owner="old") as old:
        old.run_until_caught_up()
        old.catalog.request_rebuild("totals", actor="ops", reason="r")
        old.run_once()  # a v1 rebuild, half done
        assert old.catalog.record("totals").rebuild_version == 1
    with Projector(store, [TotalsV2()], db, batch_size=5, owner="new") as new:
        new.run_until_caught_up()
        record = new.catalog.record("totals")
        assert (record.version, record.rebuild_generation) == (2, None)
    assert totals(db) == {100}


def test_a_poison_event_both_tracks_met_is_skipped_for_both_at_once(
    store: EventStore, db: ReadModelDatabase
) -> None:
    """The second track's failure overwrote the first's: one skip moved one checkpoint, and
    the projection failed again on the same event."""
    add(store, 10)
    with Projector(store, [TotalsV1()], db, batch_size=5, catch_up_batch_size=5) as p:
        p.run_until_caught_up()
        p.catalog.request_rebuild("totals", actor="ops", reason="r")
        p.run_once()
        p.run_once()  # the rebuild track is level with the live one
        record = p.catalog.record("totals")
        assert record.rebuild_position == record.position
        store.append("bad", [cronica.NewEvent("Added", {"bad": True})], aggregate_type="A")
        p.run_once()
        failed = p.catalog.record("totals")
        assert (failed.state, failed.failed_track) == ("failed", "both")
        p.catalog.skip("totals", actor="ops", reason="poison")
        add(store, 1, start=10)
        p.run_until_caught_up()
        record = p.catalog.record("totals")
        assert record.state != "failed" and record.rebuild_generation is None
        assert record.position == store.head_position()
    assert len(totals(db)) == 1 and db.query("SELECT count(*) FROM totals") == [(11,)]


@pytest.mark.parametrize(
    ("position", "timeout", "names"),
    [("5", 0, None), (None, 0, None), (-1, 0, None), (True, 0, None), (1, math.nan, None),
     (1, math.inf, None), (1, -1, None), (1, 0, "totals"), (1, 0, [])],
)  # fmt: skip
def test_waiting_for_a_position_checks_what_it_is_given(
    store: EventStore, db: ReadModelDatabase, position: Any, timeout: Any, names: Any
) -> None:
    """A string position was a TypeError, NaN waited for ever, a name was read letter by
    letter, and no names was a syntax error on PostgreSQL."""
    add(store, 1)
    with Projector(store, [TotalsV1()], db) as p:
        p.run_until_caught_up()
        if names == []:  # the projector has nothing to wait for; the catalog says so
            assert p.wait_for(position, timeout, names) is True
        else:
            with pytest.raises(InvalidInputError):
                p.wait_for(position, timeout, names)
        with pytest.raises(InvalidInputError):
            p.catalog.wait_for(position, timeout, names if names is not None else [])


def test_operating_on_a_database_no_projector_ran_on_names_the_projection(
    db: ReadModelDatabase,
) -> None:
    catalog = Catalog(db)
    for act in (catalog.skip, catalog.retry, catalog.request_rebuild):
        with pytest.raises(ProjectionNotFoundError):
            act("accounts", actor="ops", reason="r")
