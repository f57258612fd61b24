"""Read-model rows with a time to live (seed 1.7.4, strategy 3): the projector deletes the rows
past their projection's retention, in the live generation and in a rebuild's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from cronica import EventStore, InvalidInputError, NewEvent, RecordedEvent
from cronica.projections import Projection, ProjectionWriter, Projector, Retention, on


class LoginsProjection(Projection):
    """Recent logins, kept 30 days."""

    name = "recent_logins"
    tables = {
        "recent_logins": """CREATE TABLE {recent_logins} (
            event_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, at TEXT NOT NULL)""",
        "login_counts": """CREATE TABLE {login_counts} (
            user_id TEXT PRIMARY KEY, logins INTEGER NOT NULL)""",
    }
    retention = {"recent_logins": Retention("at", timedelta(days=30))}

    @on("UserLoggedIn")
    def logged_in(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.insert(
            "recent_logins",
            {"event_id": str(event.event_id), "user_id": event.aggregate_id,
             "at": event.timestamp.isoformat()},
        )  # fmt: skip
        db.write(
            "INSERT INTO {login_counts} VALUES (?, 1) ON CONFLICT (user_id)"
            " DO UPDATE SET logins = {login_counts}.logins + 1",
            [event.aggregate_id],
        )


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def logins(projector: Projector) -> list[tuple[str, int]]:
    rows = projector.read_models.query(
        "SELECT user_id, COUNT(*) FROM recent_logins GROUP BY user_id ORDER BY user_id"
    )
    return [(str(user), int(n)) for user, n in rows]


def test_rows_past_their_time_to_live_are_deleted_by_the_projector(store: EventStore) -> None:
    clock = Clock()
    store.append("ana", [NewEvent("UserLoggedIn", {})])
    store.append("bob", [NewEvent("UserLoggedIn", {})])
    time.sleep(0.05)
    store.append("ana", [NewEvent("UserLoggedIn", {})])
    first, second, third = (e.timestamp for e in store.read_all())
    assert second < third
    with Projector(store, [LoginsProjection()], retention_interval=0, clock=clock) as projector:
        projector.run_until_caught_up()
        assert logins(projector) == [("ana", 2), ("bob", 1)]
        clock.now = first + timedelta(days=30)  # the first is just 30 days old: kept
        projector.run_once()
        assert logins(projector) == [("ana", 2), ("bob", 1)]
        clock.now = second + (third - second) / 2 + timedelta(days=30)  # past the first two
        projector.run_once()
        assert logins(projector) == [("ana", 1)]
        assert projector.expired_rows == 2
        # Only the table with a retention: the counts stay.
        counts = projector.read_models.query("SELECT user_id, logins FROM login_counts")
        assert sorted(counts) == [("ana", 2), ("bob", 1)]


def test_a_rebuild_brings_no_expired_row_back_for_long(store: EventStore) -> None:
    clock = Clock()
    store.append("ana", [NewEvent("UserLoggedIn", {})])
    with Projector(store, [LoginsProjection()], retention_interval=0, clock=clock) as projector:
        projector.run_until_caught_up()
        clock.now += timedelta(days=31)
        projector.catalog.request_rebuild("recent_logins", actor="test", reason="retention")
        projector.run_once()  # the rebuild fills its generation, is swept, and switches
        assert projector.catalog.record("recent_logins").generation == 2
        assert logins(projector) == []


def test_expiry_waits_for_the_interval(store: EventStore) -> None:
    clock = Clock()
    store.append("ana", [NewEvent("UserLoggedIn", {})])
    with Projector(store, [LoginsProjection()], retention_interval=3600, clock=clock) as projector:
        projector.run_until_caught_up()  # the first pass sweeps: nothing is old yet
        clock.now += timedelta(days=31)
        projector.run_once()
        assert logins(projector) == [("ana", 1)]  # the next sweep is an hour away


def test_a_retention_must_name_a_table_and_keep_rows_a_positive_time() -> None:
    for retention in (
        {"nowhere": Retention("at", timedelta(days=1))},
        {"things": Retention("at; DROP TABLE x", timedelta(days=1))},
        {"things": Retention("at", timedelta(0))},
    ):
        with pytest.raises(InvalidInputError):
            type(
                "Broken",
                (Projection,),
                {"name": "broken", "tables": {"things": "CREATE TABLE {things} (at TEXT)"},
                 "retention": retention},
            )  # fmt: skip
