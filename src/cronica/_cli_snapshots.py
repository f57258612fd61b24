"""``cronica snapshot``: store snapshots of aggregates now.

Registered on the ``cronica`` app by :mod:`cronica.cli`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import cronica
from cronica._cli_objects import load_object
from cronica._validation import check_aggregate_id
from cronica.aggregates import Aggregate
from cronica.cli import JsonFlag, StoreURL, UpcastersOption, _reports_errors, app
from cronica.errors import InvalidInputError
from cronica.event_types import EventRegistry
from cronica.repository import Repository
from cronica.upcasting import Upcasters

DEFAULT_AGGREGATE = "cronica.examples.bank:BankAccount"
DEFAULT_EVENTS = "cronica.examples.bank:bank_events"


@app.command(short_help="Store snapshots of aggregates now (some, or all of a type).")
@_reports_errors
def snapshot(
    aggregate_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="The aggregates to snapshot.")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every stream of the aggregate's type.")
    ] = False,
    aggregate: Annotated[
        str,
        typer.Option(
            metavar="MODULE:CLASS", help=f"The aggregate class (default {DEFAULT_AGGREGATE})."
        ),
    ] = DEFAULT_AGGREGATE,
    events: Annotated[
        str,
        typer.Option(metavar="MODULE:NAME", help=f"Its event registry (default {DEFAULT_EVENTS})."),
    ] = DEFAULT_EVENTS,
    upcasters: UpcastersOption = None,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    as_json: JsonFlag = False,
) -> None:
    """Load each aggregate from its events and store a snapshot of its latest version, so the
    next load reads only the events after it. Name the aggregates, or pass --all for every
    stream of the class's aggregate type (with a progress bar). Snapshots are a cache: taking
    one changes no event."""
    aggregate_class = load_object(aggregate, type, "--aggregate")
    if not issubclass(aggregate_class, Aggregate):
        raise InvalidInputError(f"--aggregate: {aggregate} is not an Aggregate class")
    registry = load_object(events, EventRegistry, "--events")
    if not aggregate_ids and not every:
        raise InvalidInputError("name the aggregates to snapshot, or pass --all")
    chains = load_object(upcasters, Upcasters, "--upcasters") if upcasters else None
    named = [check_aggregate_id(aggregate_id) for aggregate_id in aggregate_ids or []]
    with cronica.connect(store_url, upcasters=chains) as store:
        repository = Repository(store, aggregate_class, registry, snapshot_every=1)
        for aggregate_id in named:  # all of them before any snapshot is stored
            store.stream_info(aggregate_id)
        ids = list(named)
        if every:
            ids += [
                s.aggregate_id
                for s in store.list_streams(aggregate_class.aggregate_type, limit=None)
            ]
        taken = []
        with Progress(
            TextColumn("snapshots"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            transient=True, disable=as_json or len(ids) < 50,
        ) as progress:  # fmt: skip
            task = progress.add_task("snapshots", total=len(ids))
            for aggregate_id in ids:
                taken.append(repository.snapshot(aggregate_id))
                progress.advance(task)
    if as_json:
        for snap in taken:
            typer.echo(json.dumps({"aggregateId": snap.aggregate_id, "version": snap.version}))
        return
    for snap in taken[:20]:
        typer.echo(f"{snap.aggregate_id}: snapshot at version {snap.version}")
    if len(taken) > 20:
        typer.echo(f"... and {len(taken) - 20} more")
    typer.echo(f"{len(taken)} snapshot{'s' if len(taken) != 1 else ''} stored")
