"""Archiving whole streams to Parquet and back (seed 1.7.5): positions kept, archived streams read
transparently, checksums checked before anything is removed or restored, and a process killed in
the middle of an archive loses nothing."""

from __future__ import annotations

import functools
import json
import random
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cronica import EventStore, InvalidInputError, NewEvent, RecordedEvent, StoreError
from cronica.archive import ArchiveFileError, ArchivePolicy, Archiver
from cronica.examples.bank import BankAccount, bank_events
from cronica.repository import Repository
from tests.conftest import POSTGRES_URL
from tests.processes import CLI, environment

EVERYTHING = ArchivePolicy(idle_for=timedelta(0))


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, make_store: Callable[..., EventStore]) -> EventStore:
    """A fresh store of each backend that archives."""
    return make_store(request.param)


def test_the_memory_store_says_it_does_not_archive() -> None:
    from cronica import connect

    with connect("memory://") as store, pytest.raises(InvalidInputError, match="cannot archive"):
        Archiver(store)


def url_of(store: EventStore) -> str:
    """The URL another process opens the test's store with."""
    if store.backend_name == "sqlite":
        return f"sqlite:///{getattr(store, 'path')}"  # noqa: B009
    return f"{POSTGRES_URL}?schema={getattr(store, 'schema')}"  # noqa: B009


def bank(store: EventStore, accounts: int = 6, deposits: int = 3) -> dict[str, list[RecordedEvent]]:
    repository = Repository(store, BankAccount, bank_events)
    for n in range(accounts):
        repository.create(f"acc-{n}", functools.partial(BankAccount.open, owner=f"Owner {n}"))
        for _ in range(deposits):
            repository.execute(f"acc-{n}", lambda a: a.deposit("10.00"))
    return {f"acc-{n}": store.read_stream(f"acc-{n}") for n in range(accounts)}


def test_archived_streams_read_as_before_and_leave_the_hot_table(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    before = bank(store)
    log_before = store.read_all()
    archiver = Archiver(store, tmp_path / "archive")
    report = archiver.archive(EVERYTHING, actor="ops", reason="yearly archive")
    assert (report.streams, report.events) == (6, 24)
    assert store.status().events == 0  # the hot table is empty
    assert store.read_all() == []  # the global log's readers no longer see them
    for aggregate_id, events in before.items():
        assert store.read_stream(aggregate_id) == events
        assert store.read_stream(aggregate_id, from_version=2, to_version=3) == events[1:3]
        assert store.read_stream(aggregate_id, backward=True, limit=2) == events[::-1][:2]
        assert store.read_stream(aggregate_id, as_of=events[1].timestamp) == events[:2]
        assert store.stream_info(aggregate_id).version == 4
    assert Repository(store, BankAccount, bank_events).load("acc-3").balance == 30
    # The manifest names the file's checksum, and the file matches it.
    file = Path(str(report.file))
    manifest = json.loads((file.parent / f"{report.batch}.json").read_text())
    assert (manifest["sha256"], manifest["events"], manifest["reason"]) == (
        report.sha256,
        24,
        "yearly archive",
    )
    assert archiver.verify() == []
    [batch] = archiver.batches()
    assert (batch.actor, batch.events, batch.streams) == ("ops", 24, 6)

    restored = archiver.restore(batch=report.batch)
    assert (restored.streams, restored.events) == (6, 24)
    assert store.read_all() == log_before  # back, with their positions
    assert archiver.batches() == [] and not file.exists()
    for aggregate_id, events in before.items():
        assert store.read_stream(aggregate_id) == events


def test_a_stream_written_after_it_was_archived_reads_whole_and_archives_again(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    bank(store, accounts=2)
    archiver = Archiver(store, tmp_path / "archive")
    first = archiver.archive(EVERYTHING, actor="ops", reason="first")
    accounts = Repository(store, BankAccount, bank_events)
    accounts.execute("acc-1", lambda a: a.withdraw("5.00"))  # version 5, in the hot table
    assert [e.version for e in store.read_stream("acc-1")] == [1, 2, 3, 4, 5]
    assert [e.version for e in store.read_stream("acc-1", backward=True, limit=3)] == [5, 4, 3]
    assert accounts.load("acc-1").balance == 25
    second = archiver.archive(EVERYTHING, actor="ops", reason="second")
    assert (second.streams, second.events) == (1, 1)  # only what was hot
    whole = store.read_stream("acc-1")
    assert [e.version for e in whole] == [1, 2, 3, 4, 5]
    archiver.restore(aggregate_ids=["acc-1"])  # both of its parts
    assert store.read_stream("acc-1") == whole
    assert {b.batch for b in archiver.batches()} == {first.batch}  # acc-0 is still archived
    assert len(store.read_stream("acc-0")) == 4


def test_restoring_an_older_batch_brings_the_streams_back_whole(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    accounts = Repository(store, BankAccount, bank_events)
    whole = bank(store, accounts=1)["acc-0"]
    archiver = Archiver(store, tmp_path / "archive")
    first = archiver.archive(EVERYTHING, actor="ops", reason="first")
    accounts.execute("acc-0", lambda a: a.deposit("1.00"))
    archiver.archive(EVERYTHING, actor="ops", reason="second")
    accounts.execute("acc-0", lambda a: a.deposit("2.00"))
    whole = store.read_stream("acc-0")
    assert [e.version for e in whole] == [1, 2, 3, 4, 5, 6]
    report = archiver.restore(batch=first.batch)  # the later part of acc-0 comes back too
    assert (report.events, archiver.batches()) == (5, [])
    assert store.read_stream("acc-0") == whole
    assert [e.version for e in store.read_stream("acc-0", backward=True, limit=3)] == [6, 5, 4]


def test_a_store_with_archived_streams_is_not_migrated_until_they_are_restored(
    sql_store: EventStore, tmp_path: Path
) -> None:
    from cronica import connect
    from cronica.migration import migrate_store

    bank(sql_store, accounts=2)
    archiver = Archiver(sql_store, tmp_path / "archive")
    report = archiver.archive(EVERYTHING, actor="ops", reason="r")
    with connect("memory://") as copy:
        with pytest.raises(InvalidInputError, match="restore them first"):
            migrate_store(sql_store, copy, source_name="source")
        assert copy.status().events == 0
        archiver.restore(batch=str(report.batch))
        assert migrate_store(sql_store, copy, source_name="source").events_written == 8


def test_events_a_follower_has_not_read_are_not_archived(
    sql_store: EventStore, tmp_path: Path
) -> None:
    from cronica.examples.bank_read_models import bank_projections
    from cronica.projections import Projector

    store = sql_store
    bank(store, accounts=2)
    with Projector(store, bank_projections(), store.side_database()) as projector:
        projector.run_until_caught_up()
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-9", lambda a: a.open("Late"))  # the projections have not read it
    archiver = Archiver(store, tmp_path / "archive")
    with pytest.raises(InvalidInputError, match="followers have read up to"):
        archiver.archive(EVERYTHING, actor="ops", reason="r")
    assert archiver.batches() == [] and store.status().events == 9  # nothing moved
    assert archiver.archive_streams(["acc-0"], actor="ops", reason="read").events == 4


def test_a_read_racing_a_restore_finds_the_events(sql_store: EventStore, tmp_path: Path) -> None:
    store = sql_store
    before = bank(store, accounts=1)["acc-0"]
    archiver = Archiver(store, tmp_path / "archive")
    report = archiver.archive(EVERYTHING, actor="ops", reason="r")
    real = store._archived_parts

    def restore_first(aggregate_id: str):  # type: ignore[no-untyped-def]
        # The hot table was read (empty); the restore commits before the index is read.
        archiver.restore(batch=str(report.batch))
        return real(aggregate_id)

    store._archived_parts = restore_first  # type: ignore[method-assign]
    try:
        assert store.read_stream("acc-0") == before
    finally:
        del store._archived_parts


def test_positions_stay_above_archived_ones_after_a_dump_and_restore(
    make_store: Callable[..., EventStore], tmp_path: Path
) -> None:
    """A logical dump restored into a new cluster starts transaction ids low: new positions
    must stay above archived ones too, not only above those in the hot table."""
    import psycopg

    store = make_store("postgresql")
    store.append("s", [NewEvent("Before", {})])
    top = store.read_stream("s")[0].position
    Archiver(store, tmp_path / "archive").archive(EVERYTHING, actor="ops", reason="r")
    schema = getattr(store, "schema")  # noqa: B009
    with psycopg.connect(POSTGRES_URL) as conn:  # as if transaction ids had restarted low
        conn.execute(f"UPDATE {schema}.cronica_settings SET value = value - 1000000")
    again = make_store("postgresql")
    assert again.append("t", [NewEvent("After", {})]).position > top


def test_the_policy_picks_streams_idle_for_long_enough(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    bank(store, accounts=3)
    later = datetime.now(UTC) + timedelta(days=10)
    archiver = Archiver(store, tmp_path / "archive", clock=lambda: later)
    assert archiver.candidates(ArchivePolicy(idle_for=timedelta(days=20))) == []
    assert len(archiver.candidates(ArchivePolicy(idle_for=timedelta(days=5)))) == 3
    assert archiver.candidates(ArchivePolicy(before=datetime.now(UTC) - timedelta(days=1))) == []
    by_type = ArchivePolicy(idle_for=timedelta(days=5), aggregate_types=("Transfer",))
    assert archiver.candidates(by_type) == []
    two = ArchivePolicy(idle_for=timedelta(days=5), max_streams=2)
    assert archiver.archive(two, actor="ops", reason="r").streams == 2
    for bad in ({}, {"idle_for": timedelta(1), "before": later}):
        with pytest.raises(InvalidInputError, match="one of them"):
            ArchivePolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        archiver.archive(EVERYTHING, actor="ops", reason="")


def test_a_damaged_archive_file_is_reported_and_restores_nothing(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    bank(store, accounts=2)
    archiver = Archiver(store, tmp_path / "archive")
    report = archiver.archive(EVERYTHING, actor="ops", reason="r")
    file = Path(str(report.file))
    damaged = bytearray(file.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    file.write_bytes(bytes(damaged))
    assert len(archiver.verify()) == 1
    with pytest.raises(ArchiveFileError):
        archiver.restore(batch=report.batch)
    assert store.status().events == 0 and len(archiver.batches()) == 1


def test_events_can_be_deleted_only_by_an_archive(sql_store: EventStore) -> None:
    store = sql_store
    store.append("s-1", [NewEvent("ThingHappened", {})])
    with (
        pytest.raises(Exception, match="append-only"),
        store.side_database().transaction() as tx,
    ):
        tx.execute("DELETE FROM events")
    assert len(store.read_stream("s-1")) == 1


def test_an_event_appended_while_its_stream_is_archived_stays(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    bank(store, accounts=1)

    class RacedArchiver(Archiver):
        def _commit_archive(self, batch, parts, last_position):  # type: ignore[no-untyped-def]
            # A command lands between reading the stream and removing what was archived.
            store.append("acc-0", [NewEvent("DepositMade", {"amount": "1.00"})])
            super()._commit_archive(batch, parts, last_position)

    RacedArchiver(store, tmp_path / "archive").archive(EVERYTHING, actor="ops", reason="r")
    assert [e.version for e in store.read_stream("acc-0")] == [1, 2, 3, 4, 5]
    assert store.status().events == 1  # the new one, still hot


def test_a_stream_removed_twice_is_refused_and_nothing_is_removed(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    bank(store, accounts=2)
    archiver = Archiver(store, tmp_path / "archive")

    class LateArchiver(Archiver):
        def _commit_archive(self, batch, parts, last_position):  # type: ignore[no-untyped-def]
            archiver.archive_streams(["acc-1"], actor="other", reason="racing")
            super()._commit_archive(batch, parts, last_position)

    late = LateArchiver(store, tmp_path / "archive")
    with pytest.raises(StoreError, match="changed while it was archived"):
        late.archive_streams(["acc-0", "acc-1"], actor="ops", reason="r")
    assert len(store.read_stream("acc-0")) == 4 and len(store.read_stream("acc-1")) == 4
    assert store.status().events == 4  # acc-0 still hot; acc-1 archived once, by the other
    assert archiver.orphans() == []  # the refused batch's file and manifest went with it
    assert archiver.verify() == []


def test_an_archive_run_that_collides_with_another_picks_again(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    before = bank(store, accounts=3)
    archiver = Archiver(store, tmp_path / "archive")
    collisions: list[object] = []

    class LateArchiver(Archiver):
        def _commit_archive(self, batch, parts, last_position):  # type: ignore[no-untyped-def]
            if not collisions:  # the first try loses acc-1 to another archiver
                collisions.append(archiver.archive_streams(["acc-1"], actor="o", reason="r"))
            super()._commit_archive(batch, parts, last_position)

    report = LateArchiver(store, tmp_path / "archive").archive(EVERYTHING, actor="ops", reason="r")
    assert (report.streams, report.events) == (2, 8)  # acc-0 and acc-2, on the second try
    assert store.status().events == 0 and len(archiver.batches()) == 2
    assert archiver.orphans() == [] and archiver.verify() == []
    for aggregate_id, events in before.items():
        assert store.read_stream(aggregate_id) == events


# -- the command line, and a process killed mid-archive -------------------------------------------


def cli(*args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=environment(env), check=False
    )


def test_cronica_archive_and_restore(sql_store: EventStore, tmp_path: Path) -> None:
    url = url_of(sql_store)
    before = bank(sql_store, accounts=3)
    where = ["--dir", str(tmp_path / "archive"), "--store", url]
    done = cli("archive", "--idle-days", "0", "--reason", "test", *where, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["streams"], report["events"]) == (3, 12)
    listed = cli("archive", "--list", *where, "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["batch"] == report["batch"]
    assert cli("archive", *where).returncode != 0  # no policy given
    assert sql_store.read_stream("acc-2") == before["acc-2"]
    back = cli("restore", "--batch", report["batch"], *where)
    assert back.returncode == 0, back.stderr
    assert "restored 12 events of 3 streams" in back.stdout
    assert sql_store.status().events == 12


def test_an_archive_killed_at_any_moment_loses_nothing(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    streams = 4000
    for n in range(streams):
        store.append(f"s-{n}", [NewEvent("ThingHappened", {"n": n, "k": k}) for k in range(4)])
    expected = {f"s-{n}": store.read_stream(f"s-{n}") for n in range(streams)}
    url = url_of(store)
    where = ["--dir", str(tmp_path / "archive"), "--store", url]
    rng = random.Random(7)
    archiver = Archiver(store, tmp_path / "archive")
    kills = 0
    for _ in range(6):
        process = subprocess.Popen(
            [*CLI, "archive", "--idle-days", "0", "--max-streams", "250", *where],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment(None),
        )
        time.sleep(rng.uniform(0.3, 1.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        for aggregate_id, events in expected.items():
            assert store.read_stream(aggregate_id) == events, aggregate_id
        assert archiver.verify() == []
        archived = sum(b.events for b in archiver.batches())
        assert archived + store.status().events == streams * 4  # each event in one place
        for batch in archiver.batches():  # back to the start for the next round
            archiver.restore(batch=batch.batch)
        assert store.status().events == streams * 4
    assert kills >= 3, "the archive finished before it could be killed: make it bigger"
    assert {e.aggregate_id: None for e in store.read_all()}.keys() == expected.keys()


def test_archive_files_carry_personal_data_encrypted_and_forgetting_reaches_them(
    sql_store: EventStore, tmp_path: Path
) -> None:
    from cronica.archive.files import read_events
    from cronica.privacy import ERASED, PREFIX, forget

    store = sql_store
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-1", lambda a: a.open("Zoë Archive-Marker-51c"))
    report = Archiver(store, tmp_path / "archive").archive(EVERYTHING, actor="ops", reason="r")
    [archived] = read_events(Path(str(report.file)))
    assert archived.data["owner"].startswith(PREFIX)
    assert "Archive-Marker" not in str(archived)
    assert accounts.load("acc-1").owner == "Zoë Archive-Marker-51c"  # read from the file
    forget(store, "acc-1", reason="GDPR request")
    assert accounts.load("acc-1").owner == ERASED
    assert accounts.personal_data.decrypt(archived).data["owner"] == ERASED


def test_a_file_that_does_not_read_back_as_written_removes_nothing(
    sql_store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cronica.archive import archiver as archiver_module
    from cronica.archive.files import write_events

    store = sql_store
    before = bank(store, accounts=2)

    def short_write(path: Path, events: list[RecordedEvent]) -> str:
        return write_events(path, events[:-1])  # a file missing the last event

    monkeypatch.setattr(archiver_module, "write_events", short_write)
    archiver = Archiver(store, tmp_path / "archive")
    with pytest.raises(ArchiveFileError, match="does not read back"):
        archiver.archive(EVERYTHING, actor="ops", reason="r")
    assert store.status().events == 8 and archiver.batches() == []
    for aggregate_id, events in before.items():
        assert store.read_stream(aggregate_id) == events
