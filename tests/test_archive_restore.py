"""Restoring archived streams, and what archives and restores racing each other or a damaged
file must not do: a stream archived in several batches comes back whole in one transaction,
every file is checked before anything is written, a restore and an archive of the same stream
never interleave, and a transparent read serves nothing a file does not hold exactly."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronica import EventStore, InvalidInputError, NewEvent, RecordedEvent, StoreError
from cronica.archive import ArchiveFileError, ArchivePolicy, Archiver
from cronica.archive.files import write_events
from cronica.archive.restore import RestorePlan
from tests.processes import CLI, environment
from tests.test_archive import EVERYTHING, cli, url_of


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, make_store: Callable[..., EventStore]) -> EventStore:
    """A fresh store of each backend that archives."""
    return make_store(request.param)


def grow(store: EventStore, streams: int, versions: range) -> None:
    """Append versions ``versions`` to streams s-0 ... s-<streams - 1>."""
    for n in range(streams):
        store.append(f"s-{n}", [NewEvent("ThingHappened", {"n": n, "k": k}) for k in versions])


def in_two_batches(
    store: EventStore, archiver: Archiver, streams: int = 3
) -> tuple[str, str, dict[str, list[RecordedEvent]]]:
    """Streams whose versions 1-4 are in one batch, 5-8 in another and 9-10 hot; the two
    batches in that order, and every stream's events."""
    grow(store, streams, range(4))
    first = archiver.archive(EVERYTHING, actor="ops", reason="first").batch
    grow(store, streams, range(4, 8))
    second = archiver.archive(EVERYTHING, actor="ops", reason="second").batch
    grow(store, streams, range(8, 10))
    assert first is not None and second is not None
    whole = {f"s-{n}": store.read_stream(f"s-{n}") for n in range(streams)}
    assert all([e.version for e in events] == list(range(1, 11)) for events in whole.values())
    return first, second, whole


def file_of(archiver: Archiver, batch: str) -> Path:
    return Path(next(b.file for b in archiver.batches() if b.batch == batch))


def archived_parts(archiver: Archiver) -> int:
    return int(archiver.db.query("SELECT count(*) FROM cronica_archived_streams")[0][0])


def each_event_once(store: EventStore, archiver: Archiver, total: int) -> None:
    archived = sum(
        int(n) for (n,) in archiver.db.query("SELECT events FROM cronica_archived_streams")
    )
    assert archived + store.status().events == total


# -- one transaction -----------------------------------------------------------------------------


def test_a_stream_archived_in_two_batches_comes_back_whole_and_counted_once(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, second, whole = in_two_batches(store, archiver)
    report = archiver.restore(batch=second)
    assert (report.streams, report.events) == (3, 24)  # streams, not parts (there are 6)
    assert sorted(report.batches_emptied) == sorted([first, second])
    assert archiver.batches() == [] and archiver.orphans() == []
    assert store.status().events == 30
    for aggregate_id, events in whole.items():
        assert store.read_stream(aggregate_id) == events


def test_a_damaged_second_file_restores_nothing(sql_store: EventStore, tmp_path: Path) -> None:
    """A restore that went batch by batch committed the first batch, then found the second
    file damaged: the stream read 1-4 and 9-10, with versions 5-8 still archived."""
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, second, whole = in_two_batches(store, archiver)
    good, bad = sorted([first, second])  # the order the old restore took them in
    damaged = bytearray(file_of(archiver, bad).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    file_of(archiver, bad).write_bytes(bytes(damaged))
    with pytest.raises(ArchiveFileError, match="checksum"):
        archiver.restore(batch=good)
    assert store.status().events == 6  # versions 9-10 of each: nothing came back
    assert {b.batch for b in archiver.batches()} == {first, second}
    readable = (1, 4) if good == first else (5, 10)  # the good file's versions, and 9-10
    assert (
        store.read_stream("s-0", from_version=readable[0], to_version=readable[1])
        == (whole["s-0"][readable[0] - 1 : readable[1]])
    )
    with pytest.raises(ArchiveFileError):
        store.read_stream("s-0")  # the damaged file is refused, not served
    [problem] = archiver.verify()
    assert problem.startswith(f"{bad}: ") and "checksum" in problem


def test_readers_never_see_a_stream_half_restored(sql_store: EventStore, tmp_path: Path) -> None:
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, _, whole = in_two_batches(store, archiver, streams=200)
    gaps: list[list[int]] = []
    reads = 0
    done = threading.Event()

    def read_on() -> None:
        nonlocal reads
        rng = random.Random(3)
        while not done.is_set():
            versions = [e.version for e in store.read_stream(f"s-{rng.randrange(200)}")]
            reads += 1
            if versions != list(range(1, 11)):
                gaps.append(versions)

    readers = [threading.Thread(target=read_on) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        time.sleep(0.2)
        archiver.restore(batch=first)
        time.sleep(0.2)
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert gaps == [] and reads > 20
    assert store.read_stream("s-7") == whole["s-7"]


def test_a_restore_killed_at_any_moment_leaves_each_stream_whole(
    sql_store: EventStore, tmp_path: Path
) -> None:
    """Each round archives every stream in two batches and runs ``cronica restore`` on the
    second; the first round runs to the end and times it, the others are killed at a random
    moment of that time. After each, every stream reads whole and each event is in one place;
    running the same command again finishes the job."""
    store = sql_store
    streams, per_append, rounds = 300, 20, 5
    archiver = Archiver(store, tmp_path / "archive")
    where = ["--dir", str(tmp_path / "archive"), "--store", url_of(store)]
    rng = random.Random(11)
    kills, whole_run = 0, 0.0
    for round_ in range(rounds):
        base = round_ * per_append * 2
        grow(store, streams, range(base, base + per_append))
        archiver.archive(EVERYTHING, actor="ops", reason="a")
        grow(store, streams, range(base + per_append, base + 2 * per_append))
        second = archiver.archive(EVERYTHING, actor="ops", reason="b").batch
        total = streams * (base + 2 * per_append)
        sample = [f"s-{n}" for n in rng.sample(range(streams), 25)]  # verify checks them all
        expected = {aggregate_id: store.read_stream(aggregate_id) for aggregate_id in sample}
        started = time.monotonic()
        process = subprocess.Popen(
            [*CLI, "restore", "--batch", str(second), *where],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment(None),
        )
        if round_ == 0:
            process.wait()
            whole_run = time.monotonic() - started
        elif round_ % 2:  # the moment the index first changes: right after a commit
            parts = archived_parts(archiver)
            while process.poll() is None and archived_parts(archiver) == parts:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.05))
        else:
            time.sleep(rng.uniform(0.2, 0.8) * whole_run)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        _, errors = process.communicate()
        assert process.returncode in (0, -signal.SIGKILL), errors
        for aggregate_id, events in expected.items():
            assert store.read_stream(aggregate_id) == events, aggregate_id
        assert archiver.verify() == []
        each_event_once(store, archiver, total)
        if archiver.batches():  # the same command finishes what the kill stopped
            again = cli("restore", "--batch", str(second), *where)
            assert again.returncode == 0, again.stderr
        assert archiver.batches() == [] and store.status().events == total
    assert kills >= 2, "the restores finished before they could be killed: make them bigger"


# -- racing archives -----------------------------------------------------------------------------


def test_a_restore_racing_an_archive_of_newer_events_brings_those_back_too(
    sql_store: EventStore, tmp_path: Path
) -> None:
    """The restore read the index, then another archive took the hot versions 9-10 into a
    third batch: restoring only what was read would leave 9-10 archived above hot versions
    1-8, and reads of the stream would miss them."""
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, _, whole = in_two_batches(store, archiver)
    other = Archiver(store, tmp_path / "archive")
    plans = []

    class RacedArchiver(Archiver):
        def _commit_restore(self, plan: RestorePlan) -> list[str]:
            plans.append(plan)
            if len(plans) == 1:
                assert other.archive_streams(["s-1"], actor="o", reason="r").events == 2
            return super()._commit_restore(plan)

    report = RacedArchiver(store, tmp_path / "archive").restore(batch=first)
    assert len(plans) == 2 and report.events == 26  # planned again, with s-1's new part
    assert archiver.batches() == [] and archiver.orphans() == []
    for aggregate_id, events in whole.items():
        assert store.read_stream(aggregate_id) == events
    assert archiver.verify() == []


def test_an_archive_waits_for_a_restore_of_its_streams_and_then_refuses(
    sql_store: EventStore, tmp_path: Path
) -> None:
    """The archive of versions 9-10 reaches its commit while a restore of 1-8 is inside its
    transaction: on PostgreSQL, whose statements each see what committed before them, the
    archive's check ("no older version came back") and its delete could fall on either side
    of the restore's commit; the archive lock makes it wait and then see them."""
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, _, whole = in_two_batches(store, archiver, streams=1)
    inside, archived = threading.Event(), threading.Event()

    class SlowRestorer(Archiver):
        def _check_parts_unchanged(self, tx: Any, plan: RestorePlan, ids: list[str]) -> None:
            super()._check_parts_unchanged(tx, plan, ids)
            inside.set()
            archived.wait(3)  # the archive must not get through meanwhile

    outcome: list[object] = []

    def archive_newer() -> None:
        inside.wait(30)
        try:
            outcome.append(Archiver(store, tmp_path / "archive").archive_streams(
                ["s-0"], actor="o", reason="r"))  # fmt: skip
        except StoreError as exc:
            outcome.append(exc)
        archived.set()

    racer = threading.Thread(target=archive_newer)
    racer.start()
    SlowRestorer(store, tmp_path / "archive").restore(batch=first)
    racer.join()
    [result] = outcome
    assert isinstance(result, StoreError) and "older versions came back" in str(result)
    assert store.read_stream("s-0") == whole["s-0"] and store.status().events == 10
    assert archiver.batches() == [] and archiver.orphans() == [] and archiver.verify() == []


# -- what a read or a restore takes from a file --------------------------------------------------


def rewrite(archiver: Archiver, batch: str, change: Callable[[list[RecordedEvent]], Any]) -> None:
    """Write the batch's file again with ``change`` applied to its events, and record the new
    file's checksum in the index, as if the file had been wrong from the start."""
    from cronica.archive.files import read_events

    file = file_of(archiver, batch)
    events = read_events(file)
    set_checksum(archiver, batch, write_events(file, change(events)))


def set_checksum(archiver: Archiver, batch: str, digest: str) -> None:
    with archiver.db.transaction() as tx:
        tx.execute("UPDATE cronica_archive_batches SET sha256 = ? WHERE batch = ?", [digest, batch])


def test_a_file_missing_an_event_is_refused_by_reads_restores_and_verify(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, second, whole = in_two_batches(store, archiver)
    rewrite(archiver, first, lambda events: [e for e in events if (e.aggregate_id, e.version)
                                           != ("s-1", 3)])  # fmt: skip
    with pytest.raises(ArchiveFileError, match="versions 1 to 4 of 's-1'"):
        store.read_stream("s-1")
    assert store.read_stream("s-2") == whole["s-2"]
    with pytest.raises(ArchiveFileError, match="versions 1 to 4 of 's-1'"):
        archiver.restore(batch=second)
    assert store.status().events == 6
    assert any("versions 1 to 4 of 's-1'" in p for p in archiver.verify())


def test_another_batch_s_file_in_its_place_is_refused(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    grow(store, 2, range(3))
    first = archiver.archive_streams(["s-0"], actor="o", reason="r")
    second = archiver.archive_streams(["s-1"], actor="o", reason="r")
    Path(str(second.file)).write_bytes(Path(str(first.file)).read_bytes())
    set_checksum(archiver, str(second.batch), str(first.sha256))
    with pytest.raises(ArchiveFileError, match="versions 1 to 3 of 's-1'"):
        store.read_stream("s-1")  # not an empty stream


def test_a_file_changed_after_it_was_read_is_refused(sql_store: EventStore, tmp_path: Path) -> None:
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    grow(store, 1, range(3))
    report = archiver.archive(EVERYTHING, actor="o", reason="r")
    before = store.read_stream("s-0")  # checks the file, once
    altered = [e._replace(data={"n": 0, "k": 99}) if e.version == 2 else e for e in before]
    write_events(Path(str(report.file)), altered)  # the index keeps the old checksum
    with pytest.raises(ArchiveFileError, match="checksum"):
        store.read_stream("s-0")


@pytest.mark.parametrize(
    ("column", "value"),
    [("data", "not json"), ("metadata", "[1, 2]"), ("event_id", "not-a-uuid"),
     ("timestamp", None)],
)  # fmt: skip
def test_an_unreadable_event_in_a_file_is_a_file_error(
    sql_store: EventStore, tmp_path: Path, column: str, value: object
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    grow(store, 1, range(2))
    report = archiver.archive(EVERYTHING, actor="o", reason="r")
    file = Path(str(report.file))
    table = pq.read_table(file)
    values = table.column(column).to_pylist()
    values[0] = value
    table = table.set_column(
        table.schema.get_field_index(column), table.schema.field(column),
        pa.array(values, table.schema.field(column).type),
    )  # fmt: skip
    pq.write_table(table, file)
    from cronica.archive.files import sha256_of

    set_checksum(archiver, str(report.batch), sha256_of(file))
    with pytest.raises(ArchiveFileError, match=r"unreadable|malformed"):
        store.read_stream("s-0")
    with pytest.raises(ArchiveFileError):
        archiver.restore(batch=str(report.batch))
    assert archiver.verify() != []


# -- verify --------------------------------------------------------------------------------------


def test_verify_finds_archived_versions_that_are_not_the_lowest(
    sql_store: EventStore, tmp_path: Path
) -> None:
    """What an interrupted batch-by-batch restore left: versions 1-4 hot again, 5-8 still
    archived, 9-10 hot. Reads trust that the archived versions are the lowest."""
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, _, _ = in_two_batches(store, archiver, streams=1)
    plan = archiver._plan_restore(archiver._archived_parts_of(archiver.db.query, ["s-0"]))
    half = RestorePlan(
        {p for p in plan.parts if p[1] == first},
        {first: plan.files[first]},
        [e for e in plan.events if e.version <= 4],
    )
    archiver._check_parts_unchanged = lambda *args: None  # type: ignore[method-assign]
    archiver._commit_restore(half)
    assert [e.version for e in store.read_stream("s-0")] == [1, 2, 3, 4, 9, 10]  # the harm
    parts, hot = archiver.verify()
    assert "archived parts are not versions 1 to 8 once each: [(5, 8)]" in parts
    assert "version 1 is in the hot table, but versions up to 8 are archived" in hot


def test_verify_finds_a_manifest_missing_or_at_odds_with_the_index(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    grow(store, 2, range(2))
    one = archiver.archive_streams(["s-0"], actor="o", reason="r")
    two = archiver.archive_streams(["s-1"], actor="o", reason="r")
    assert archiver.verify() == []
    Path(str(one.file)).with_suffix(".json").unlink()
    manifest = Path(str(two.file)).with_suffix(".json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "events": 7}))
    missing, at_odds = sorted(archiver.verify(), key=lambda p: not p.startswith(str(one.batch)))
    assert missing.startswith(f"{one.batch}: manifest") and "cannot be read" in missing
    assert at_odds.startswith(f"{two.batch}: manifest")
    assert "says events 7, the index says 2" in at_odds


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{"before": "2020-01-01"}, {"before": date(2020, 1, 1)}, {"idle_for": 5},
     {"before": datetime(2020, 1, 1)}, {"idle_for": timedelta(-1)},
     {"idle_for": timedelta(0), "max_streams": "5"}, {"idle_for": timedelta(0), "max_streams": 0},
     {"idle_for": timedelta(0), "max_streams": True},
     {"idle_for": timedelta(0), "aggregate_types": "Account"},
     {"idle_for": timedelta(0), "aggregate_types": ()},
     {"idle_for": timedelta(0), "aggregate_types": ("a\x00",)}],
)  # fmt: skip
def test_a_bad_policy_is_refused_when_made(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        ArchivePolicy(**fields)


def test_policies_reaching_past_the_calendar_pick_nothing_or_everything(
    sql_store: EventStore, tmp_path: Path
) -> None:
    grow(sql_store, 2, range(1))
    archiver = Archiver(sql_store, tmp_path / "archive")
    assert archiver.candidates(ArchivePolicy(idle_for=timedelta.max)) == []
    assert archiver.candidates(ArchivePolicy(idle_for=timedelta(days=1), max_streams=10)) == []
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=-5)))  # fmt: skip
    assert archiver.candidates(ArchivePolicy(before=far)) == ["s-0", "s-1"]
    lists = ArchivePolicy(idle_for=timedelta(0), aggregate_types=["ThingHappened"])  # type: ignore[arg-type]
    assert lists.aggregate_types == ("ThingHappened",)


def test_bad_stream_lists_and_directories_are_refused(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    grow(store, 1, range(2))
    archiver = Archiver(store, tmp_path / "archive")
    for bad in ("s-0", b"s-0", 5, [""], ["s\x00"]):
        with pytest.raises(InvalidInputError):
            archiver.archive_streams(bad, actor="o", reason="r")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            archiver.restore(aggregate_ids=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no stream 'nope'"):
        archiver.restore(aggregate_ids=["s-0", "nope"])
    assert archiver.restore(aggregate_ids=["s-0"]).streams == 0  # known, nothing archived
    (tmp_path / "a-file").write_text("")
    with pytest.raises(InvalidInputError, match="not a directory"):
        Archiver(store, tmp_path / "a-file")
    below = Archiver(store, tmp_path / "a-file" / "below")
    with pytest.raises(ArchiveFileError, match="cannot use"):
        below.archive(EVERYTHING, actor="o", reason="r")
    assert store.status().events == 2 and archiver.batches() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [(["archive", "--idle-days", "inf"], "--idle-days"),
     (["archive", "--idle-days", "1e10"], "--idle-days"),
     (["archive", "--idle-days", "nan"], "--idle-days"),
     (["archive", "--before", "0001-01-01T00:00:00+01:00"], "outside the years 1 to 9999"),
     (["restore", "no-such-stream"], "no stream 'no-such-stream'"),
     (["archive", "--idle-days", "0", "--dir", "{file}"], "not a directory")],
)  # fmt: skip
def test_the_command_line_refuses_bad_values_in_a_line(
    sql_store: EventStore, tmp_path: Path, args: list[str], message: str
) -> None:
    grow(sql_store, 1, range(1))
    (tmp_path / "file").write_text("")
    args = [a.replace("{file}", str(tmp_path / "file")) for a in args]
    where = [] if "--dir" in args else ["--dir", str(tmp_path / "archive")]
    done = cli(*args, *where, "--store", url_of(sql_store))
    assert done.returncode in (1, 2), done.stdout
    assert message in done.stderr and "Traceback" not in done.stderr
    assert sql_store.status().events == 1


@pytest.mark.parametrize("microseconds", [2**62, -(2**62)])
def test_a_time_past_the_calendar_in_a_file_is_a_file_error(
    sql_store: EventStore, tmp_path: Path, microseconds: int
) -> None:
    """It used to raise OverflowError out of reads, restores and verify (and so out of
    ``cronica archive --list``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cronica.archive.files import sha256_of

    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    grow(store, 1, range(2))
    report = archiver.archive(EVERYTHING, actor="o", reason="r")
    file = Path(str(report.file))
    table = pq.read_table(file)
    index = table.schema.get_field_index("timestamp")
    values = [v.value for v in table.column("timestamp")]
    values[0] = microseconds
    pq.write_table(
        table.set_column(
            index, table.schema.field(index), pa.array(values, pa.timestamp("us", tz="UTC"))
        ),
        file,
    )
    set_checksum(archiver, str(report.batch), sha256_of(file))
    with pytest.raises(ArchiveFileError):
        store.read_stream("s-0")
    with pytest.raises(ArchiveFileError):
        archiver.restore(batch=str(report.batch))
    assert any("cannot be read" in problem for problem in archiver.verify())


def test_a_file_changed_in_place_with_its_old_times_is_checked_again(tmp_path: Path) -> None:
    """Same inode, same size, the modification time put back (touch -r, rsync --inplace -t):
    the once-per-process check used to trust it, and reads served the changed data."""
    import os

    from cronica.archive.files import check_file_once, sha256_of

    file = tmp_path / "batch.parquet"
    file.write_bytes(b"archived events" * 100)
    digest = sha256_of(file)
    check_file_once(file, digest)  # checked, and remembered
    before = file.stat()
    time.sleep(0.05)  # file times move with the kernel's clock tick (a few ms)
    with file.open("r+b") as handle:
        handle.seek(700)
        handle.write(b"X")
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = file.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns,
    )  # fmt: skip
    with pytest.raises(ArchiveFileError, match="checksum"):
        check_file_once(file, digest)


def test_two_restores_of_one_batch_at_once_both_end_well(
    sql_store: EventStore, tmp_path: Path
) -> None:
    """The second read the index before the first committed and removed the files: it used
    to fail on the missing file (or a batch row gone), though everything was restored."""
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, _, whole = in_two_batches(store, archiver)
    plans: list[object] = []

    class Overtaken(Archiver):
        def _plan_restore(self, parts: Any) -> RestorePlan:
            if not plans:
                plans.append(archiver.restore(batch=first))  # the other restore, all done
            return super()._plan_restore(parts)

    report = Overtaken(store, tmp_path / "archive").restore(batch=first)
    assert report.events == 0 and len(plans) == 1  # the other one restored it all
    assert archiver.batches() == [] and archiver.verify() == []
    for aggregate_id, events in whole.items():
        assert store.read_stream(aggregate_id) == events


def test_verify_reports_nothing_a_restore_changed_while_it_looked(
    sql_store: EventStore, tmp_path: Path
) -> None:
    store = sql_store
    archiver = Archiver(store, tmp_path / "archive")
    first, _, _ = in_two_batches(store, archiver)
    other = Archiver(store, tmp_path / "archive")

    class Overtaken(Archiver):
        looked = False

        def batches(self) -> list[Any]:
            found = super().batches()
            if not self.looked:  # the index was read, then a restore committed and cleaned up
                self.looked = True
                other.restore(batch=first)
            return found

    assert Overtaken(store, tmp_path / "archive").verify() == []


def test_unusable_archive_directories_are_typed_errors(
    sql_store: EventStore, tmp_path: Path
) -> None:
    grow(sql_store, 1, range(1))
    for bad in (tmp_path / ("x" * 300), "nul\x00here"):
        with pytest.raises(InvalidInputError, match="not a usable archive directory"):
            Archiver(sql_store, bad)
    unwritable = Archiver(sql_store, "/proc/self")
    with pytest.raises(ArchiveFileError, match="cannot be written"):
        unwritable.archive(EVERYTHING, actor="o", reason="r")
    assert sql_store.status().events == 1 and unwritable.batches() == []
