"""``cronica archive`` and ``cronica restore``: move whole streams to Parquet files and back.

Registered on the ``cronica`` app by :mod:`cronica.cli`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

import cronica
from cronica.archive import ARCHIVE_DIR_VARIABLE, ArchivePolicy, Archiver
from cronica.cli import JsonFlag, StoreURL, _reports_errors, app
from cronica.errors import InvalidInputError
from cronica.events import parse_timestamp

MAX_IDLE_DAYS = 999_999_999
"""The most days a timedelta holds."""

ArchiveDir = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        envvar=ARCHIVE_DIR_VARIABLE,
        help="Where the archive files are (default: beside a SQLite file, <file>.archive;"
        " else ./cronica-archive).",
    ),
]


@app.command(short_help="Move streams idle for long into Parquet files (read on as before).")
@_reports_errors
def archive(
    idle_days: Annotated[
        float | None,
        typer.Option(
            min=0, max=MAX_IDLE_DAYS, help="Archive streams with no event for this many days."
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(metavar="RFC3339", help="Archive streams with no event since this moment."),
    ] = None,
    aggregate_types: Annotated[
        list[str] | None,
        typer.Option(
            "--aggregate-type", metavar="TYPE", help="Only streams of this type (repeat)."
        ),
    ] = None,
    max_streams: Annotated[
        int,
        typer.Option(
            min=1,
            help="At most this many streams in one batch file (one transaction, during which"
            " the log's readers (PostgreSQL) or writers (SQLite) wait).",
        ),
    ] = 1_000,
    reason: Annotated[str, typer.Option(help="Why (recorded with the batch).")] = "archive policy",
    actor: Annotated[str, typer.Option(help="Who archives (recorded with the batch).")] = "cli",
    list_batches: Annotated[
        bool, typer.Option("--list", help="List the archive batches instead (and check them).")
    ] = False,
    directory: ArchiveDir = None,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    as_json: JsonFlag = False,
) -> None:
    """Move the streams a policy picks (--idle-days D, or --before MOMENT) out of the hot events
    table into Parquet files (one batch per --max-streams streams, until none is left), each
    with a JSON manifest and a SHA-256 checksum. The file is read
    back and checked before any event is removed, and the removal is one transaction: a crash
    loses nothing. Events keep their positions; reading an archived stream works as before
    (from the file); `cronica restore` brings streams back. The global log's readers
    (projections, the relay) no longer see archived events, so no event a registered follower
    has not read yet is archived. --list shows the batches and checks every file against its
    checksum."""
    policy = None
    if not list_batches:  # checked before the store is opened (or made)
        if (idle_days is None) == (before is None):
            raise InvalidInputError("give --idle-days or --before (one of them)")
        policy = ArchivePolicy(
            idle_for=None if idle_days is None else timedelta(days=idle_days),
            before=None if before is None else parse_timestamp(before),
            aggregate_types=tuple(aggregate_types) if aggregate_types else None,
            max_streams=max_streams,
        )
    if directory is not None and directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"--dir {directory} is not a directory")
    with cronica.connect(store_url) as store:
        archiver = Archiver(store, directory)
        if policy is None:
            _list(archiver, as_json)
            return
        batches = 0
        while (report := archiver.archive(policy, actor=actor, reason=reason)).batch:
            batches += 1
            if as_json:
                typer.echo(
                    json.dumps(
                        {"batch": report.batch, "file": report.file, "sha256": report.sha256,
                         "streams": report.streams, "events": report.events}
                    )
                )  # fmt: skip
            else:
                typer.echo(
                    f"archived {report.events} events of {report.streams} streams into"
                    f" {report.file} (batch {report.batch}, sha256 {report.sha256})"
                )
    if not batches and not as_json:
        typer.echo("no stream to archive")


def _list(archiver: Archiver, as_json: bool) -> None:
    batches = archiver.batches()
    problems = archiver.verify()
    if as_json:
        for b in batches:
            typer.echo(
                json.dumps(
                    {"batch": b.batch, "file": b.file, "sha256": b.sha256, "events": b.events,
                     "streams": b.streams, "archivedAt": b.archived_at.isoformat(),
                     "actor": b.actor, "reason": b.reason}
                )
            )  # fmt: skip
    else:
        for b in batches:
            typer.echo(f"{b.batch}: {b.events} events, {b.streams} streams, {b.file}")
        typer.echo(f"{len(batches)} batch{'es' if len(batches) != 1 else ''}")
        for orphan in archiver.orphans():
            typer.echo(f"in no batch of this store (check before deleting): {orphan}")
    if problems:
        for problem in problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1)


@app.command(short_help="Bring archived streams back into the hot events table.")
@_reports_errors
def restore(
    aggregate_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="[ID]...", help="Streams whose archived events to restore."),
    ] = None,
    batch: Annotated[
        str | None, typer.Option(help="Restore every stream of this archive batch.")
    ] = None,
    directory: ArchiveDir = None,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    as_json: JsonFlag = False,
) -> None:
    """Put the archived events of the streams ID... (or of --batch) back into the hot table,
    with their original positions, after checking the file's checksum. A batch with nothing
    left archived loses its index row, its file and its manifest."""
    if (batch is None) == (not aggregate_ids):
        raise InvalidInputError("name the streams to restore, or give --batch (one of the two)")
    with cronica.connect(store_url) as store:
        report = Archiver(store, directory).restore(batch=batch, aggregate_ids=aggregate_ids)
    if as_json:
        typer.echo(
            json.dumps(
                {"streams": report.streams, "events": report.events,
                 "batchesEmptied": list(report.batches_emptied)}
            )
        )  # fmt: skip
        return
    typer.echo(f"restored {report.events} events of {report.streams} streams")
    for name in report.batches_emptied:
        typer.echo(f"batch {name} is empty now: its file was removed")
