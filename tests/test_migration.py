"""Copying a store into a new one: faithful, upcast, compacted, resumable, verified."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cronica import (
    ANY,
    EventStore,
    InvalidInputError,
    NewEvent,
    RecordedEvent,
    SQLiteEventStore,
    StoreError,
    Upcasters,
    connect,
)
from cronica.migration import CompactionRules, chain, migrate_store
from cronica.store.base import CopyProgress
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres

PAIRS = [
    ("memory", "sqlite"),
    ("sqlite", "memory"),
    ("sqlite", "postgresql"),
    ("postgresql", "sqlite"),
    ("sqlite", "sqlite"),
]


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[..., EventStore]]:
    """``open_store(backend, name, **options)``: the store ``name`` on ``backend``; the same
    name opens the same database again."""
    opened: list[EventStore] = []
    schemas: set[str] = set()
    memories: dict[str, EventStore] = {}
    run = os.urandom(4).hex()

    def make(backend: str, name: str, **options: Any) -> EventStore:
        store: EventStore
        if backend == "memory":
            store = memories.setdefault(name, connect("memory://", **options))
        elif backend == "sqlite":
            store = SQLiteEventStore(tmp_path / f"{name}.db", **options)
        else:
            require_postgres()
            schemas.add(f"m_{run}_{name}")
            store = connect(f"{POSTGRES_URL}?schema=m_{run}_{name}", **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    for schema in schemas:
        drop_schema(schema)


def fill(store: EventStore, streams: int = 7, per_stream: int = 9) -> None:
    """Interleaved streams, batches and single appends, nested data and metadata."""
    for round_ in range(per_stream):
        for s in range(streams):
            events = [
                NewEvent(
                    "ProductAdded" if (round_ + k) % 3 else "NoteTaken",
                    {"productId": f"p{s % 2}", "quantity": 1, "nested": {"r": [round_, k]}},
                    {"actor": f"user-{s}", "n": round_},
                )
                for k in range(1 + (round_ + s) % 2)
            ]
            store.append(f"cart-{s}", events, ANY, aggregate_type="Cart")


def comparable(event: RecordedEvent) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.event_type,
        event.aggregate_id,
        event.aggregate_type,
        event.version,
        event.timestamp,
        event.data,
        event.metadata,
    )


@pytest.mark.parametrize(("source_backend", "destination_backend"), PAIRS)
def test_a_copy_keeps_every_event_in_log_order_across_backends(
    open_store: Callable[..., EventStore], source_backend: str, destination_backend: str
) -> None:
    source = open_store(source_backend, "source")
    fill(source)
    destination = open_store(destination_backend, "copy")
    report = migrate_store(source, destination, source_name="src", batch_size=10)
    original = source.read_all()
    copied = destination.read_all()
    assert [comparable(e) for e in copied] == [comparable(e) for e in original]
    assert all(a.position < b.position for a, b in itertools.pairwise(copied))
    assert (report.events_read, report.events_written, report.verified) == (
        len(original),
        len(original),
        True,
    )
    for s in range(7):
        info = destination.stream_info(f"cart-{s}")
        first, last = destination.read_stream(f"cart-{s}")[0], source.read_stream(f"cart-{s}")[-1]
        assert (info.version, info.aggregate_type) == (len(source.read_stream(f"cart-{s}")), "Cart")
        assert (info.created, info.updated) == (first.timestamp, last.timestamp)
    # The copy is a working store: appends continue the streams.
    result = destination.append(
        "cart-0", [NewEvent("NoteTaken", {})], expected_version=info_of(source, "cart-0")
    )
    assert result.to_version == info_of(source, "cart-0") + 1


def info_of(store: EventStore, stream: str) -> int:
    return store.stream_info(stream).version


def split(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "quantity": {"amount": data["quantity"], "unit": "piece"}}


def test_upcasters_are_applied_and_the_copy_holds_the_newest_version(
    open_store: Callable[..., EventStore],
) -> None:
    upcasters = Upcasters()
    upcasters.add("ProductAdded", 1, split)
    source = open_store("sqlite", "source")
    fill(source, streams=2, per_stream=3)
    source.upcasters = upcasters
    destination = open_store("sqlite", "copy")
    migrate_store(source, destination, source_name="src")
    added = destination.read_all(event_types=["ProductAdded"])
    assert added and all(e.data["quantity"] == {"amount": 1, "unit": "piece"} for e in added)
    assert all(e.metadata["schemaVersion"] == 2 for e in added)
    # Reading the copy through the same upcasters changes nothing more.
    destination.upcasters = upcasters
    assert destination.read_all(event_types=["ProductAdded"]) == added


def cart_rules() -> CompactionRules:
    rules = CompactionRules()

    @rules.merge("ProductAdded")
    def add_up(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any] | None:
        if first["productId"] != second["productId"]:
            return None
        return {**first, "quantity": first["quantity"] + second["quantity"]}

    rules.drop("Heartbeat")
    return rules


def test_compaction_merges_consecutive_events_drops_types_and_renumbers(
    open_store: Callable[..., EventStore],
) -> None:
    source = open_store("sqlite", "source")
    added = [NewEvent("ProductAdded", {"productId": "p1", "quantity": 1}) for _ in range(3)]
    source.append("cart-1", [NewEvent("CartCreated", {}), *added[:2]], aggregate_type="Cart")
    source.append("cart-2", [NewEvent("ProductAdded", {"productId": "p1", "quantity": 5})])
    source.append("cart-1", [NewEvent("Heartbeat", {}), added[2]])
    source.append(
        "cart-1",
        [
            NewEvent("ProductAdded", {"productId": "p2", "quantity": 1}),
            NewEvent("CartConfirmed", {}),
            NewEvent("ProductAdded", {"productId": "p2", "quantity": 1}),
        ],
    )
    destination = open_store("sqlite", "copy")
    report = migrate_store(source, destination, source_name="src", compaction=cart_rules())
    cart = destination.read_stream("cart-1")
    assert [(e.version, e.event_type, e.data) for e in cart] == [
        (1, "CartCreated", {}),
        (2, "ProductAdded", {"productId": "p1", "quantity": 3}),
        (3, "ProductAdded", {"productId": "p2", "quantity": 1}),
        (4, "CartConfirmed", {}),
        (5, "ProductAdded", {"productId": "p2", "quantity": 1}),
    ]
    # The merged event stands where the last one it absorbed stood: id and timestamp.
    assert cart[1].event_id == added[2].event_id
    assert cart[1].timestamp == source.read_stream("cart-1", from_version=5)[0].timestamp
    # Its place in the log too: after cart-2's event, which came between the merged ones.
    log = [(e.aggregate_id, e.event_type) for e in destination.read_all()]
    assert log.index(("cart-2", "ProductAdded")) < log.index(("cart-1", "ProductAdded"))
    assert (report.events_read, report.events_written) == (9, 6)
    assert (report.events_merged, report.events_dropped) == (2, 1)
    assert destination.stream_info("cart-1").version == 5


def test_a_compaction_rule_per_type_only_once() -> None:
    rules = cart_rules()
    with pytest.raises(InvalidInputError, match="already has a compaction rule"):
        rules.drop("ProductAdded")
    with pytest.raises(InvalidInputError, match="already has a compaction rule"):
        rules.merge("Heartbeat")(lambda a, b: a)


class CopyInterruptedError(Exception):
    pass


@pytest.mark.parametrize("destination_backend", ["sqlite", "postgresql"])
def test_an_interrupted_copy_resumes_and_ends_identical_to_an_uninterrupted_one(
    open_store: Callable[..., EventStore], destination_backend: str
) -> None:
    source = open_store("sqlite", "source")
    fill(source)
    whole = open_store(destination_backend, "whole")
    expected = migrate_store(
        source, whole, source_name="src", batch_size=8, compaction=cart_rules()
    )
    destination = open_store(destination_backend, "copy")
    batches = 0

    def stop_after_three(read: int, total: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise CopyInterruptedError

    with pytest.raises(CopyInterruptedError):
        migrate_store(
            source, destination, source_name="src", batch_size=8, compaction=cart_rules(),
            progress=stop_after_three,
        )  # fmt: skip
    progress = destination.copy_progress("src")
    assert progress is not None and progress.events_read == 24
    report = migrate_store(
        source, destination, source_name="src", batch_size=8, compaction=cart_rules()
    )
    assert report.resumed_after == progress.last_position > 0
    assert report.checksum == expected.checksum
    assert report.events_written == expected.events_written
    assert [comparable(e) for e in destination.read_all()] == [
        comparable(e) for e in whole.read_all()
    ]


def test_a_resumed_compacting_copy_of_a_grown_source_counts_nothing_twice(
    open_store: Callable[..., EventStore],
) -> None:
    """The copy wrote ``ProductAdded qty=1`` and stopped; the source got ``qty=2`` for the same
    cart. The resumed copy planned again and merged the written event into the new one: the
    destination held 1 and 3 (4 in all, the source 3), and verified."""
    source = open_store("sqlite", "source")
    source.append("cart", [NewEvent("ProductAdded", {"productId": "p", "quantity": 1})])
    source.append("other", [NewEvent("NoteTaken", {})])
    destination = open_store("sqlite", "copy")

    def stop_after_one(read: int, total: int) -> None:
        raise CopyInterruptedError

    with pytest.raises(CopyInterruptedError):
        migrate_store(source, destination, source_name="src", batch_size=1,
                      compaction=cart_rules(), progress=stop_after_one)  # fmt: skip
    source.append("cart", [NewEvent("ProductAdded", {"productId": "p", "quantity": 2})])
    report = migrate_store(
        source, destination, source_name="src", batch_size=1, compaction=cart_rules()
    )
    assert report.verified
    copied = [e.data["quantity"] for e in destination.read_stream("cart")]
    assert sum(copied) == 3 == sum(e.data["quantity"] for e in source.read_stream("cart"))


def test_only_an_empty_store_or_an_interrupted_copy_of_the_same_source_is_a_destination(
    open_store: Callable[..., EventStore],
) -> None:
    source = open_store("sqlite", "source")
    fill(source, streams=1, per_stream=2)
    taken = open_store("sqlite", "taken")
    taken.append("x", [NewEvent("Existed", {})])
    with pytest.raises(InvalidInputError, match="destination holds events"):
        migrate_store(source, taken, source_name="src")
    assert len(taken.read_all()) == 1
    with pytest.raises(InvalidInputError, match="into itself"):
        migrate_store(source, source, source_name="src")
    with pytest.raises(InvalidInputError, match="batch_size"):
        migrate_store(source, open_store("sqlite", "empty"), source_name="src", batch_size=0)


def test_a_destination_changed_behind_the_copy_fails_verification(
    open_store: Callable[..., EventStore],
) -> None:
    source = open_store("sqlite", "source")
    fill(source, streams=2, per_stream=3)
    destination = open_store("sqlite", "copy")

    def interrupt(read: int, total: int) -> None:
        raise CopyInterruptedError

    with pytest.raises(CopyInterruptedError):
        migrate_store(source, destination, source_name="src", batch_size=4, progress=interrupt)
    destination.append("intruder", [NewEvent("Sneaked", {})])
    with pytest.raises(StoreError, match="does not check out"):
        migrate_store(source, destination, source_name="src", batch_size=4)


def test_imported_events_must_continue_their_streams(open_store: Callable[..., EventStore]) -> None:
    source = open_store("sqlite", "source")
    fill(source, streams=1, per_stream=3)
    events = source.read_all()
    for backend in ("memory", "sqlite"):
        destination = open_store(backend, f"strict-{backend}")
        progress = CopyProgress("src", 1, 1, 1, chain("", events[0]))
        with pytest.raises(InvalidInputError, match="version 2 of 'cart-0', which is at version 0"):
            destination.import_events(events[1:2], progress)
        destination.import_events(events[:1], progress)
        with pytest.raises(InvalidInputError, match="already stored"):
            destination.import_events([events[0]._replace(aggregate_id="other")], progress)
        assert len(destination.read_all()) == 1


def test_migrate_survives_being_killed_and_resumes(tmp_path: Path) -> None:
    source_path = tmp_path / "big.db"
    source = SQLiteEventStore(source_path)
    for chunk in range(40):
        source.append(
            f"s-{chunk % 5}", [NewEvent("Ticked", {"n": chunk * 500 + i}) for i in range(500)]
        )
    expected = [comparable(e) for e in source.read_all()]
    source.close()
    copy = tmp_path / "copy.db"
    command = [
        sys.executable, "-m", "cronica", "migrate", f"sqlite:///{source_path}",
        f"sqlite:///{copy}", "--batch-size", "200", "--json",
    ]  # fmt: skip
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if copy.exists():
            with SQLiteEventStore(copy) as peek:
                progress = peek.copy_progress(f"sqlite:///{source_path}")
            if progress is not None and progress.events_read >= 2000:
                break
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    with SQLiteEventStore(copy) as peek:
        interrupted = peek.copy_progress(f"sqlite:///{source_path}")
        assert interrupted is not None and interrupted.events_read < 20_000
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert '"verified":true' in resumed.stdout.replace(" ", "")
    with SQLiteEventStore(copy) as done:
        assert [comparable(e) for e in done.read_all()] == expected


def test_the_command_loads_rules_from_the_current_folder_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cronica.cli import app

    module = f"rules_{os.urandom(4).hex()}"
    (tmp_path / f"{module}.py").write_text(
        "from cronica import Upcasters\n"
        "from cronica.migration import CompactionRules\n"
        "upcasters = Upcasters()\n"
        "upcasters.add_defaults('ProductAdded', 1, unit='piece')\n"
        "rules = CompactionRules()\n"
        "rules.drop('NoteTaken')\n"
        "not_rules = 42\n"
    )
    monkeypatch.chdir(tmp_path)
    with SQLiteEventStore(tmp_path / "src.db") as source:
        fill(source, streams=2, per_stream=3)
        kept = len(source.read_all(event_types=["ProductAdded"]))
        len_src = len(source.read_all())
    runner = CliRunner()
    src, dst = f"sqlite:///{tmp_path}/src.db", f"sqlite:///{tmp_path}/dst.db"
    done = runner.invoke(
        app,
        ["migrate", src, dst, "--upcasters", f"{module}:upcasters",
         "--compaction", f"{module}:rules", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert f'"eventsWritten":{kept}' in done.stdout.replace(" ", "")
    with SQLiteEventStore(tmp_path / "dst.db") as copy:
        assert {e.data["unit"] for e in copy.read_all()} == {"piece"}
    for args, message in [
        (["--upcasters", f"{module}:not_rules"], "is int, not a Upcasters"),
        (["--upcasters", "no_such_module_x:u"], "cannot import"),
        (["--compaction", "missing-colon"], "module:attribute"),
    ]:
        failed = runner.invoke(app, ["migrate", src, f"sqlite:///{tmp_path}/x.db", *args])
        assert failed.exit_code == 1 and message in failed.stderr, failed.output
    same = runner.invoke(app, ["migrate", src, src])
    assert same.exit_code == 1 and "same" in same.stderr
    taken = runner.invoke(app, ["migrate", src, dst.replace("dst", "src2")])
    assert taken.exit_code == 0, taken.output
    # Without --json: a progress bar on stderr, a one-line report on stdout.
    assert f"copying {'━' * 10}" in taken.stderr and f"{len_src}/{len_src}" in taken.stderr
    assert "verified, checksum" in taken.stdout
    again = runner.invoke(app, ["migrate", dst, dst.replace("dst", "src2")])
    assert again.exit_code == 1 and "holds events" in again.stderr


def test_the_command_refuses_a_missing_source_file_and_makes_no_destination(
    tmp_path: Path,
) -> None:
    """A mistyped SOURCE path used to make an empty store and an empty, "verified" copy."""
    from typer.testing import CliRunner

    from cronica.cli import app

    typo, copy = tmp_path / "typo.db", tmp_path / "copy.db"
    failed = CliRunner().invoke(app, ["migrate", f"sqlite:///{typo}", f"sqlite:///{copy}"])
    assert failed.exit_code == 1 and "no such file" in failed.stderr, failed.output
    assert not typo.exists() and not copy.exists()


def test_the_command_refuses_archived_streams_before_making_the_destination(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from typer.testing import CliRunner

    from cronica.archive import ArchivePolicy, Archiver
    from cronica.cli import app

    with SQLiteEventStore(tmp_path / "src.db") as source:
        fill(source, streams=1, per_stream=1)
        Archiver(source, tmp_path / "archive").archive(
            ArchivePolicy(idle_for=timedelta(0)), actor="o", reason="r"
        )
    copy = tmp_path / "copy.db"
    failed = CliRunner().invoke(
        app, ["migrate", f"sqlite:///{tmp_path}/src.db", f"sqlite:///{copy}"]
    )
    assert failed.exit_code == 1 and "restore them first" in failed.stderr, failed.output
    assert not copy.exists()
