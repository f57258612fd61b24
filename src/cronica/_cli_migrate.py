"""``cronica migrate``: copy a store into a new one, upcasting and compacting on the way.

Registered on the ``cronica`` app by :mod:`cronica.cli` (kept apart to keep that module small).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

import cronica
from cronica._cli_objects import load_object
from cronica.cli import JsonFlag, _echo_json_lines, _redacted, _reports_errors, app
from cronica.connect import sqlite_url_parts
from cronica.errors import InvalidInputError
from cronica.migration import (
    DEFAULT_BATCH_SIZE,
    CompactionRules,
    MigrationReport,
    check_source,
    migrate_store,
)
from cronica.store.base import EventStore
from cronica.upcasting import Upcasters


@app.command(short_help="Copy a store into a new one, upcasting and compacting; resumable.")
@_reports_errors
def migrate(
    source_url: Annotated[str, typer.Argument(metavar="SOURCE", help="URL of the store to copy.")],
    destination_url: Annotated[
        str, typer.Argument(metavar="DESTINATION", help="URL of the new store (empty).")
    ],
    upcasters: Annotated[
        str | None,
        typer.Option(
            metavar="MODULE:NAME", help="An Upcasters object applied to every event read."
        ),
    ] = None,
    compaction: Annotated[
        str | None,
        typer.Option(metavar="MODULE:NAME", help="A CompactionRules object: merges and drops."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Events per transaction in the destination.")
    ] = DEFAULT_BATCH_SIZE,
    as_json: JsonFlag = False,
) -> None:
    """Copy every event of SOURCE into the empty store DESTINATION (any backend to any
    backend), never changing SOURCE: event ids, types, timestamps, data and metadata are kept,
    versions stay dense per stream, positions are the destination's. --upcasters brings every
    event to its newest schema version; --compaction merges consecutive events or drops types.
    The copy is written in batches, each with its progress: run the same command again to
    resume an interrupted copy. At the end the destination is read back and its event count and
    SHA-256 checksum chain must match what was written."""
    chains = load_object(upcasters, Upcasters, "--upcasters") if upcasters else None
    rules = load_object(compaction, CompactionRules, "--compaction") if compaction else None
    if source_url == destination_url:
        raise InvalidInputError("SOURCE and DESTINATION are the same: copy into a new store")
    name = _redacted(source_url)
    _check_source_exists(source_url)
    with cronica.connect(source_url, upcasters=chains) as source:
        check_source(source)  # before the destination is made
        report = _copy(source, destination_url, name, rules, batch_size, as_json)
    _print_report(report, _redacted(destination_url), as_json)


def _check_source_exists(source_url: str) -> None:
    """A SQLite SOURCE must be a file already: opening a mistyped path would make an empty store
    (and an empty, "verified" copy of it)."""
    if source_url.split("://", 1)[0].lower() == "sqlite":
        path, _ = sqlite_url_parts(source_url)
        if not Path(path).is_file():
            raise InvalidInputError(f"SOURCE {source_url}: there is no such file")


def _copy(
    source: EventStore,
    destination_url: str,
    name: str,
    rules: CompactionRules | None,
    batch_size: int,
    as_json: bool,
) -> MigrationReport:
    with (
        cronica.connect(destination_url) as destination,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=as_json,
        ) as bar,
    ):
        task = bar.add_task("copying", total=None)

        def advance(read: int, total: int) -> None:
            bar.update(task, completed=read, total=total)

        return migrate_store(
            source,
            destination,
            source_name=name,
            compaction=rules,
            batch_size=batch_size,
            progress=advance,
        )


def _print_report(report: MigrationReport, destination: str, as_json: bool) -> None:
    if as_json:
        _echo_json_lines(
            [
                {
                    "source": report.source,
                    "destination": destination,
                    "eventsRead": report.events_read,
                    "eventsWritten": report.events_written,
                    "eventsMerged": report.events_merged,
                    "eventsDropped": report.events_dropped,
                    "checksum": report.checksum,
                    "verified": report.verified,
                    "resumedAfter": report.resumed_after,
                }
            ]
        )
        return
    resumed = f", resumed after position {report.resumed_after}" if report.resumed_after else ""
    typer.echo(
        f"copied {report.source} into {destination}: {report.events_read} events read,"
        f" {report.events_written} written ({report.events_merged} merged,"
        f" {report.events_dropped} dropped){resumed}; verified, checksum {report.checksum[:16]}"
    )
