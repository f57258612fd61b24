"""``cronica projections ...``: run projectors and operate projections.

Registered on the ``cronica`` app by :mod:`cronica.cli` (kept apart to keep that module small).
"""

from __future__ import annotations

import getpass
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

import cronica
from cronica._cli_objects import load_attribute
from cronica.cli import (
    JsonFlag,
    ReadModelsURL,
    StoreURL,
    _console,
    _echo_json_lines,
    _reports_errors,
    app,
)
from cronica.errors import InvalidInputError, ProjectionStateError
from cronica.projections import (
    Catalog,
    Projection,
    ProjectionStatus,
    Projector,
    projection_status,
)
from cronica.readmodels import connect_read_models, read_models_for
from cronica.readmodels.base import ReadModelDatabase
from cronica.store.base import EventStore

DEFAULT_PROJECTIONS = "cronica.examples.bank_read_models:bank_projections"

projections_app = typer.Typer(
    help=(
        "Run projectors and operate projections: status, rebuild, skip or retry a failed "
        "event, and the history of those actions. Read models live in the store's own "
        "database unless --read-models (or CRONICA_READ_MODELS) names another."
    ),
    no_args_is_help=True,
)
app.add_typer(projections_app, name="projections", short_help="Run and operate projections.")

Actor = Annotated[
    str | None,
    typer.Option(metavar="NAME", help="Who does this (recorded; default: the user's login)."),
]
Reason = Annotated[str, typer.Option(metavar="TEXT", help="Why (recorded).")]
Name = Annotated[str, typer.Argument(help="The projection.")]


def load_projections(spec: str) -> list[Projection]:
    """Projections named ``module:attribute``: a projection, a projection class, a list of
    them, or a function returning one of those."""
    found = load_attribute(spec, "--projections")
    if callable(found) and not isinstance(found, Projection | type):
        try:
            found = found()
        except Exception as exc:  # the factory's own failure, said in one line
            raise InvalidInputError(
                f"--projections: {spec}() failed: {type(exc).__name__}: {exc}"
            ) from exc
    items = found if isinstance(found, list | tuple) else [found]
    chosen: list[Projection] = []
    for item in items:
        if isinstance(item, type) and issubclass(item, Projection):
            try:
                item = item()
            except Exception as exc:
                raise InvalidInputError(
                    f"--projections: {item.__name__}() failed: {type(exc).__name__}: {exc}"
                ) from exc
        if not isinstance(item, Projection):
            raise InvalidInputError(
                f"--projections: {spec} holds {type(item).__name__}, not a Projection"
            )
        chosen.append(item)
    return chosen


@contextmanager
def _opened(store_url: str, read_models_url: str | None) -> Iterator[tuple[EventStore, Any]]:
    with cronica.connect(store_url) as store:
        db: ReadModelDatabase = (
            connect_read_models(read_models_url) if read_models_url else read_models_for(store)
        )
        with db:
            yield store, db


@projections_app.command(short_help="Run a projector: follow the log, update read models.")
@_reports_errors
def run(
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
    projections: Annotated[
        list[str] | None,
        typer.Option(
            metavar="MODULE:NAME",
            help=f"Projections to run (repeatable; default {DEFAULT_PROJECTIONS}).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Events per batch.")] = 1000,
    lease_ttl: Annotated[
        float, typer.Option(min=1.0, help="Seconds a lease lasts unless renewed.")
    ] = 10.0,
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Stop once every projection is caught up.")
    ] = False,
) -> None:
    """Run the projections until stopped (Ctrl-C or SIGTERM finish the batch in hand, then
    release the leases). Each projection has one active runner at a time: start this command
    in several processes and they share the projections, taking over within seconds from one
    that dies. A new projection backfills from the start of the log; a projection whose
    version changed is rebuilt into new tables and switched to when caught up."""
    chosen = [p for spec in projections or [DEFAULT_PROJECTIONS] for p in load_projections(spec)]
    with _opened(store_url, read_models_url) as (store, db):
        projector = Projector(store, chosen, db, batch_size=batch_size, lease_ttl=lease_ttl)
        names = ", ".join(projector.projections)
        typer.echo(f"projector {projector.owner}: running {names}", err=True)
        if until_caught_up:
            projector.run_until_caught_up()
            projector.stop()
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            projector.request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        projector.run_forever()


@projections_app.command(short_help="Position, lag, state and rebuild progress of each.")
@_reports_errors
def status(
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
    as_json: JsonFlag = False,
) -> None:
    """Print each projection's state (catching_up, live, stopped or failed), its position,
    its lag in events and seconds behind the log, its version and generation, the failed
    event and error if it failed, and the progress of a rebuild with its ETA."""
    with _opened(store_url, read_models_url) as (store, db):
        statuses = projection_status(store, db)
    if as_json:
        _echo_json_lines(s.to_dict() for s in statuses)
        return
    _console().print(projections_table(statuses))


def projections_table(statuses: list[ProjectionStatus]) -> Table:
    """Projections as ``cronica projections status`` and ``cronica status`` show them."""
    table = Table(box=box.SIMPLE_HEAD)
    for header in ("projection", "state", "position", "lag", "lag (s)", "version", "notes"):
        table.add_column(header, overflow="fold")
    for s in statuses:
        notes = ""
        if s.error:
            notes = f"failed at {s.failed_position} ({s.failed_event_type}): {s.error}"
        elif s.rebuild is not None:
            eta = "?" if s.rebuild.eta_seconds is None else f"{s.rebuild.eta_seconds:.0f} s"
            notes = f"rebuilding: {s.rebuild.percent:.0f}%, ETA {eta}"
        table.add_row(
            s.name,
            Text(s.state, style="red" if s.state == "failed" else ""),
            str(s.position),
            str(s.lag_events),
            f"{s.lag_seconds:.1f}",
            f"v{s.version} g{s.generation}",
            Text(notes),
        )
    return table


def _who(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@app.command(
    name="rebuild", short_help="Rebuild a projection into new tables, then switch (as below)."
)
@projections_app.command(short_help="Rebuild a projection into new tables, then switch.")
@_reports_errors
def rebuild(
    name: Name,
    reason: Reason = "",
    actor: Actor = None,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Follow the rebuild to its end with a progress bar (needs a runner)."
        ),
    ] = False,
) -> None:
    """Ask the projection's runner to rebuild it from the start of the log into a new
    generation of its tables; queries keep reading the current one until the new one has
    caught up, then switch in one transaction. Recorded with --actor and --reason."""
    with _opened(store_url, read_models_url) as (store, db):
        before = projection_status(store, db, [name])[0].generation
        Catalog(db).request_rebuild(name, actor=_who(actor), reason=reason)
        typer.echo(f"rebuild of {name} requested", err=wait)
        if wait:
            generation = _follow_rebuild(store, db, name, before)
            typer.echo(f"{name}: generation {generation} is live")


def _follow_rebuild(store: EventStore, db: ReadModelDatabase, name: str, before: int) -> int:
    """Show the rebuild's progress until its generation goes live; return that generation."""
    columns = (
        TextColumn(f"rebuilding {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(name, total=None)
        while True:
            status = projection_status(store, db, [name])[0]
            if status.state == "failed":
                raise ProjectionStateError(f"projection {name} failed: {status.error}")
            if status.rebuild is None and status.generation != before:
                return status.generation
            if status.rebuild is not None:
                progress.update(
                    task,
                    total=max(status.rebuild.events_total, status.rebuild.events_done),
                    completed=status.rebuild.events_done,
                )
            time.sleep(0.2)


@projections_app.command(short_help="Pass over the event a failed projection stopped at.")
@_reports_errors
def skip(
    name: Name,
    reason: Reason = "",
    actor: Actor = None,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
) -> None:
    """Skip the event a failed projection stopped at: it is never applied to that
    projection, and the action is recorded with the event, --actor and --reason (see
    `cronica projections history`). The projection then goes on with the next event."""
    with _opened(store_url, read_models_url) as (_store, db):
        record = Catalog(db).skip(name, actor=_who(actor), reason=reason)
    typer.echo(f"{name}: skipped event {record.failed_event_id} at {record.failed_position}")


@projections_app.command(short_help="Try a failed projection's event again.")
@_reports_errors
def retry(
    name: Name,
    reason: Reason = "",
    actor: Actor = None,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
) -> None:
    """Clear a projection's failure so its runner applies the failed event again (after a
    fix of the data it depends on; a restarted projector retries by itself)."""
    with _opened(store_url, read_models_url) as (_store, db):
        Catalog(db).retry(name, actor=_who(actor), reason=reason)
    typer.echo(f"{name}: will retry")


@projections_app.command(short_help="Operator actions on projections, oldest first.")
@_reports_errors
def history(
    name: Annotated[str | None, typer.Argument(help="Only this projection.")] = None,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the recorded operator actions (rebuild, skip, retry): who, when, why, and the
    event concerned."""
    with _opened(store_url, read_models_url) as (_store, db):
        catalog = Catalog(db)
        actions = catalog.actions(name) if catalog.exists() else []
    if as_json:
        _echo_json_lines(
            {
                "name": a.name,
                "action": a.action,
                "position": a.position,
                "eventId": a.event_id,
                "eventType": a.event_type,
                "actor": a.actor,
                "reason": a.reason,
                "at": a.at,
            }
            for a in actions
        )
        return
    table = Table(box=box.SIMPLE_HEAD)
    for header in ("projection", "action", "event", "actor", "reason"):
        table.add_column(header, overflow="fold")
    for a in actions:
        event = "" if a.position is None else f"{a.event_type} at {a.position}"
        table.add_row(a.name, a.action, event, a.actor, Text(a.reason))
    _console().print(table)
