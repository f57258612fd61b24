"""The ``cronica`` command line: the library's verbs as commands.

Every command that opens a store takes ``--store URL`` (or ``CRONICA_STORE``; default
``sqlite:///cronica.db``). Read commands print a table, or JSON with ``--json`` (one object per
line). Every :class:`cronica.CronicaError` ends the command with one ``error: ...`` line on stderr
and exit code 1; usage errors (an unknown option, a missing argument) exit with 2.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

import cronica
from cronica import _demo
from cronica._cli_objects import load_object
from cronica.errors import CronicaError, InvalidEventDataError, InvalidInputError
from cronica.events import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamInfo,
    check_expected_version,
    format_timestamp,
    parse_timestamp,
)
from cronica.privacy.cipher import readable
from cronica.store.base import EventStore, StoreStatus
from cronica.upcasting import Upcasters

P = ParamSpec("P")
R = TypeVar("R")

PAGE_SIZE = 1000
"""Events fetched per read of the global log (``cronica read`` pages through it)."""

DEFAULT_INTERVAL = 1.0
"""Seconds between polls of ``cronica read --follow``."""

_FILE_EVENT_KEYS = ("eventType", "data", "metadata", "eventId")

app = typer.Typer(
    name="cronica",
    help=(
        "Event sourcing from the command line: append events to streams, read streams and the "
        "global log, list streams and check the store's health. Every command that opens a "
        "store takes --store URL (or CRONICA_STORE), by default sqlite:///cronica.db in the "
        "current folder."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# -- shared options ----------------------------------------------------------------------------

StoreURL = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="CRONICA_STORE",
        metavar="URL",
        help="The store's URL: sqlite:///path.db, postgresql://user@host/db or memory://",
    ),
]
ReadModelsURL = Annotated[
    str | None,
    typer.Option(
        "--read-models",
        envvar="CRONICA_READ_MODELS",
        metavar="URL",
        help="Where the read models live (default: the store's own database).",
    ),
]
UpcastersOption = Annotated[
    str | None,
    typer.Option(
        envvar="CRONICA_UPCASTERS",
        metavar="MODULE:NAME",
        help="An Upcasters object: events stored at older schema versions are read at their"
        " newest.",
    ),
]

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON, one object per line, instead of a table.")
]


# -- errors --------------------------------------------------------------------------------------


def _fail(message: str) -> typer.Exit:
    """Print ``error: message`` as one line on stderr; return the exit to raise."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(1)


def _reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every ``CronicaError`` the command raises into one ``error:`` line and exit 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CronicaError as exc:
            raise _fail(str(exc)) from None

    return run


def _usage(message: str, option: str) -> typer.BadParameter:
    """A usage error (exit 2) about ``option``."""
    return typer.BadParameter(message, param_hint=option)


# -- input ---------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise InvalidEventDataError(f"{what} is not valid JSON: {exc}") from exc


def _parse_object(text: str, what: str) -> dict[str, Any]:
    value = _parse_json(text, what)
    if not isinstance(value, dict):
        raise InvalidEventDataError(f"{what} must be a JSON object, not {_json_kind(value)}")
    return value


def _json_kind(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _parse_expected_version(text: str) -> ExpectedVersion:
    value: object
    try:
        value = int(text)
    except ValueError:
        value = text.strip().lower().replace("-", "_")
    return check_expected_version(value)


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {source}: {exc}") from exc


def _events_from_file(text: str, metadata: dict[str, Any]) -> list[NewEvent]:
    items = _parse_json(text, "--file")
    if not isinstance(items, list):
        raise InvalidEventDataError(
            f"--file must hold a JSON array of events, not {_json_kind(items)}"
        )
    return [_event_from_item(index, item, metadata) for index, item in enumerate(items)]


def _event_from_item(index: int, item: object, metadata: dict[str, Any]) -> NewEvent:
    where = f"event {index} of --file"
    if not isinstance(item, dict):
        raise InvalidEventDataError(f"{where} must be a JSON object, not {_json_kind(item)}")
    unknown = sorted(set(item) - set(_FILE_EVENT_KEYS))
    if unknown:
        raise InvalidEventDataError(
            f"{where} has unknown keys {', '.join(unknown)} (known: {', '.join(_FILE_EVENT_KEYS)})"
        )
    if "eventType" not in item:
        raise InvalidEventDataError(f"{where} has no eventType")
    own_metadata = item.get("metadata", {})
    if not isinstance(own_metadata, dict):
        raise InvalidEventDataError(f"{where}: metadata must be a JSON object")
    try:
        return NewEvent(
            item["eventType"],
            item.get("data", {}),
            {**metadata, **own_metadata},
            item.get("eventId"),
        )
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from exc


# -- output --------------------------------------------------------------------------------------


def _console() -> Console:
    return Console(highlight=False)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _echo_json_lines(objects: Iterable[dict[str, Any]]) -> None:
    lines = [_dumps(obj) for obj in objects]
    if lines:
        typer.echo("\n".join(lines))


def _append_dict(aggregate_id: str, result: AppendResult) -> dict[str, Any]:
    return {
        "aggregateId": aggregate_id,
        "fromVersion": result.from_version,
        "toVersion": result.to_version,
        "position": result.position,
    }


def _stream_dict(info: StreamInfo) -> dict[str, Any]:
    return {
        "aggregateId": info.aggregate_id,
        "aggregateType": info.aggregate_type,
        "version": info.version,
        "created": format_timestamp(info.created),
        "updated": format_timestamp(info.updated),
    }


def _status_dict(status: StoreStatus) -> dict[str, Any]:
    return {
        "backend": status.backend,
        "schemaVersion": status.schema_version,
        "streams": status.streams,
        "events": status.events,
        "headPosition": status.head_position,
        "readablePosition": status.readable_position,
        "waitingOn": [
            {
                "pid": holder.pid,
                "transactionStarted": (
                    None
                    if holder.transaction_started is None
                    else format_timestamp(holder.transaction_started)
                ),
                "state": holder.state,
                "query": holder.query,
            }
            for holder in status.waiting_on
        ],
    }


def _payload(event: RecordedEvent) -> Text:
    """The event's data, and its metadata dimmed on the next line."""
    text = Text(_dumps(event.data))
    if event.metadata:
        text.append("\n" + _dumps(event.metadata), style="dim")
    return text


def _events_table(
    events: list[RecordedEvent], title: str | None = None, *, with_stream: bool = True
) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("pos", justify="right", no_wrap=True)
    if with_stream:
        table.add_column("stream", overflow="fold")
    table.add_column("ver", justify="right", no_wrap=True)
    table.add_column("type", overflow="fold")
    table.add_column("timestamp", no_wrap=True)
    table.add_column("data (metadata)", overflow="fold", min_width=16)
    for event in events:
        stream = [Text(event.aggregate_id)] if with_stream else []
        table.add_row(
            str(event.position),
            *stream,
            str(event.version),
            Text(event.event_type),
            format_timestamp(event.timestamp),
            _payload(event),
        )
    return table


def _event_line(event: RecordedEvent) -> Text:
    line = Text(f"#{event.position} {format_timestamp(event.timestamp)} ")
    line.append(event.aggregate_id, style="bold")
    line.append(f" v{event.version} ")
    line.append(event.event_type, style="cyan")
    line.append(f" {_dumps(event.data)}")
    return line


def _print_events(
    events: list[RecordedEvent], as_json: bool, title: str | None = None, with_stream: bool = True
) -> None:
    if as_json:
        _echo_json_lines(event.to_dict() for event in events)
    elif events:
        _console().print(_events_table(events, title, with_stream=with_stream))
    else:
        _console().print("no events", style="dim")


def _redacted(url: str) -> str:
    """``url`` without its password, for printing."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# -- commands ------------------------------------------------------------------------------------


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cronica {cronica.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Event sourcing from the command line."""


@app.command(short_help="Create or migrate the store's schema.")
@_reports_errors
def init(store_url: StoreURL = cronica.DEFAULT_STORE_URL, as_json: JsonFlag = False) -> None:
    """Create the store's schema, or migrate it to this version of cronica, and print the backend
    and schema version. Safe to run again and from several processes at once: opening a store
    does the same, so this is only needed to prepare a database ahead of time."""
    with cronica.connect(store_url) as store:
        status = store.status()
    if as_json:
        _echo_json_lines(
            [
                {
                    "store": _redacted(store_url),
                    "backend": status.backend,
                    "schemaVersion": status.schema_version,
                }
            ]
        )
    else:
        typer.echo(
            f"{_redacted(store_url)}: {status.backend} store ready, "
            f"schema version {status.schema_version}"
        )


@app.command(short_help="Append events to a stream, all or none.")
@_reports_errors
def append(
    aggregate_id: Annotated[
        str,
        typer.Argument(metavar="AGGREGATE_ID", help="The stream (aggregate id) to append to."),
    ],
    event_type: Annotated[
        str | None,
        typer.Argument(
            metavar="EVENT_TYPE",
            help="The event's type, in the past tense (DepositMade); not with --file.",
        ),
    ] = None,
    data: Annotated[
        str | None, typer.Argument(metavar="DATA_JSON", help="The event's data, a JSON object.")
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="Metadata, a JSON object (who, why, correlation id); with --file, added to "
            "every event's own metadata.",
        ),
    ] = None,
    expected_version: Annotated[
        str,
        typer.Option(
            metavar="any|no_stream|exists|N",
            help="Append only if the stream is at this version (0 or no_stream: it must not "
            "exist; exists: at any version); any skips the check.",
        ),
    ] = "any",
    aggregate_type: Annotated[
        str | None, typer.Option(metavar="TYPE", help="The stream's aggregate type (Account).")
    ] = None,
    event_id: Annotated[
        str | None,
        typer.Option(metavar="UUID", help="The event's id, to retry an append idempotently."),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            help='Append the events of a JSON array [{"eventType", "data", "metadata", '
            '"eventId"}] read from PATH (- for stdin), all or none.',
        ),
    ] = None,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    as_json: JsonFlag = False,
) -> None:
    """Append one event (EVENT_TYPE with DATA_JSON) or a file of events to the stream
    AGGREGATE_ID, all or none, and print the versions written and the last event's global
    position. With --expected-version the append is refused, and nothing written, when the stream
    is not at that version; retrying with the same event ids writes nothing and prints the first
    result again."""
    events = _events_to_append(event_type, data, metadata, event_id, file)
    expected = _parse_expected_version(expected_version)
    with cronica.connect(store_url) as store:
        result = store.append(aggregate_id, events, expected, aggregate_type)
    if as_json:
        _echo_json_lines([_append_dict(aggregate_id, result)])
    else:
        typer.echo(
            f"appended to {aggregate_id}: versions {result.from_version} to {result.to_version}, "
            f"position {result.position}"
        )


def _events_to_append(
    event_type: str | None,
    data: str | None,
    metadata: str | None,
    event_id: str | None,
    file: str | None,
) -> list[NewEvent]:
    if file is not None:
        if event_type is not None or data is not None:
            raise _usage(
                "not with EVENT_TYPE or DATA_JSON: the events come from the file", "--file"
            )
        if event_id is not None:
            raise _usage("not with --file: give each event's eventId in the file", "--event-id")
        return _events_from_file(_read_text(file), _metadata(metadata))
    if event_type is None:
        raise _usage("missing; give EVENT_TYPE and DATA_JSON, or --file", "EVENT_TYPE")
    payload = {} if data is None else _parse_object(data, "DATA_JSON")
    return [NewEvent(event_type, payload, _metadata(metadata), event_id)]


def _metadata(text: str | None) -> dict[str, Any]:
    return {} if text is None else _parse_object(text, "--metadata")


@app.command(short_help="Read a stream, or the global log (--follow to keep reading).")
@_reports_errors
def read(
    aggregate_id: Annotated[
        str | None,
        typer.Argument(
            metavar="AGGREGATE_ID", help="A stream to read; without it, the global log."
        ),
    ] = None,
    from_version: Annotated[
        int | None, typer.Option(min=1, help="Stream: the first version to read (default 1).")
    ] = None,
    to_version: Annotated[
        int | None, typer.Option(min=0, help="Stream: the last version to read.")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            metavar="RFC3339",
            help="Stream: only events recorded at or before this moment (the stream as it was).",
        ),
    ] = None,
    backward: Annotated[bool, typer.Option("--backward", help="Stream: newest first.")] = False,
    after: Annotated[
        int | None, typer.Option(min=0, help="Global log: events after this position.")
    ] = None,
    event_types: Annotated[
        list[str] | None,
        typer.Option("--event-type", metavar="TYPE", help="Global log: only this type (repeat)."),
    ] = None,
    aggregate_types: Annotated[
        list[str] | None,
        typer.Option(
            "--aggregate-type",
            metavar="TYPE",
            help="Global log: only streams of this type (repeat).",
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Global log: keep printing new events until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0.01, help=f"With --follow: seconds between polls (default {DEFAULT_INTERVAL})."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="At most this many events.")] = None,
    upcasters: UpcastersOption = None,
    sealed: Annotated[
        bool,
        typer.Option("--sealed", help="Show personal data as stored (encrypted), not decrypted."),
    ] = False,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    as_json: JsonFlag = False,
) -> None:
    r"""Print the events of the stream AGGREGATE_ID by version, or without it the global log of all
    streams in position order (the order every projection follows). --follow keeps reading the
    global log and prints new events as they are committed, until Ctrl-C; with --json each event is
    one line holding the event's JSON envelope. Personal data is shown decrypted with the store's
    subject keys (\[erased] once its subject is forgotten), as stored with --sealed."""
    stream_only = {
        "--from-version": from_version,
        "--to-version": to_version,
        "--as-of": as_of,
        "--backward": backward or None,
    }
    log_only = {
        "--after": after,
        "--event-type": event_types,
        "--aggregate-type": aggregate_types,
        "--follow": follow or None,
        "--interval": interval,
    }
    chains = load_object(upcasters, Upcasters, "--upcasters") if upcasters else None
    if aggregate_id is None:
        _refuse_given(stream_only, "only for a stream: give AGGREGATE_ID")
        if interval is not None and not follow:
            raise _usage("only with --follow", "--interval")
        query = _LogQuery(after or 0, limit, event_types, aggregate_types)
        poll = (interval or DEFAULT_INTERVAL) if follow else None
        with cronica.connect(store_url, upcasters=chains) as store:
            _print_log(store, query, as_json, poll, sealed)
        return
    _refuse_given(log_only, "only for the global log: drop AGGREGATE_ID")
    moment = None if as_of is None else parse_timestamp(as_of)
    with cronica.connect(store_url, upcasters=chains) as store:
        events = store.read_stream(
            aggregate_id, from_version or 1, to_version, moment, backward, limit
        )
        if not sealed:
            events = readable(events, store.subject_keys)
    _print_events(events, as_json, title=f"stream {aggregate_id}", with_stream=False)


def _refuse_given(options: Mapping[str, object], why: str) -> None:
    for name, value in options.items():
        if value is not None:
            raise _usage(why, name)


@dataclass(frozen=True, slots=True)
class _LogQuery:
    """What ``cronica read`` asks of the global log."""

    after: int
    limit: int | None
    event_types: list[str] | None
    aggregate_types: list[str] | None


def _log_pages(
    store: EventStore, query: _LogQuery, interval: float | None
) -> Iterator[list[RecordedEvent]]:
    """Pages of the global log; with an ``interval``, polls for new events forever."""
    after, remaining = query.after, query.limit
    while remaining is None or remaining > 0:
        size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
        page = store.read_all(after, size, query.event_types, query.aggregate_types)
        if page:
            yield page
            after = page[-1].position
            remaining = None if remaining is None else remaining - len(page)
        if len(page) < size:
            if interval is None:
                return
            _sleep(interval)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _print_log(
    store: EventStore, query: _LogQuery, as_json: bool, interval: float | None, sealed: bool
) -> None:
    following = interval is not None
    printed = False
    try:
        for page in _log_pages(store, query, interval):
            printed = True
            if not sealed:
                page = readable(page, store.subject_keys)
            if as_json:
                _print_events(page, as_json=True)
            elif following:
                console = _console()
                for event in page:
                    console.print(_event_line(event))
            else:
                _print_events(page, as_json=False, title="global log")
    except KeyboardInterrupt:
        return
    if not printed and not as_json and not following:
        _console().print("no events", style="dim")


@app.command(short_help="List streams by aggregate id, a page at a time.")
@_reports_errors
def streams(
    aggregate_type: Annotated[
        str | None, typer.Option(metavar="TYPE", help="Only streams of this aggregate type.")
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(metavar="ID", help="Streams after this aggregate id (the next page)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many streams.")] = 100,
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    as_json: JsonFlag = False,
) -> None:
    """List the streams ordered by aggregate id, with their aggregate type, version and first and
    last write, a page at a time: pass the last id printed as --after to get the next page."""
    with cronica.connect(store_url) as store:
        infos = store.list_streams(aggregate_type, after, limit)
    if as_json:
        _echo_json_lines(_stream_dict(info) for info in infos)
        return
    console = _console()
    if not infos:
        console.print("no streams", style="dim")
        return
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("aggregate id", overflow="fold", min_width=12)
    table.add_column("type", overflow="fold", min_width=8)
    table.add_column("version", justify="right", no_wrap=True)
    for header in ("created", "updated"):
        table.add_column(header, overflow="fold")
    for info in infos:
        table.add_row(
            Text(info.aggregate_id),
            Text(info.aggregate_type),
            str(info.version),
            format_timestamp(info.created),
            format_timestamp(info.updated),
        )
    console.print(table)
    if len(infos) == limit:
        console.print(Text(f"next page: --after {infos[-1].aggregate_id}", style="dim"))


@app.command(short_help="Counts, head and readable positions, what readers wait on.")
@_reports_errors
def status(
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the store's backend and schema version, its stream and event counts, the head
    position (the highest written) and the readable position (the highest a reader of the global
    log may see now), on PostgreSQL the open transactions that readers wait on when the two
    differ, and the projections with their lag behind the log."""
    from cronica._cli_projections import projections_table
    from cronica.projections import projection_status
    from cronica.readmodels import connect_read_models, read_models_for
    from cronica.relay import relay_status

    with contextlib.ExitStack() as opened:
        # A read-model URL that cannot be one is refused before the store is opened (or made).
        given = (
            opened.enter_context(connect_read_models(read_models_url)) if read_models_url else None
        )
        store = opened.enter_context(cronica.connect(store_url))
        report = store.status()
        db = given if given is not None else opened.enter_context(read_models_for(store))
        projections = projection_status(store, db)
        relays = relay_status(store, db)
    if as_json:
        _echo_json_lines(
            [
                {
                    **_status_dict(report),
                    "projections": [p.to_dict() for p in projections],
                    "relays": [r.to_dict() for r in relays],
                }
            ]
        )
        return
    console = _console()
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "store": _redacted(store_url),
        "backend": report.backend,
        "schema version": report.schema_version,
        "streams": report.streams,
        "events": report.events,
        "head position": report.head_position,
        "readable position": report.readable_position,
    }
    for label, value in rows.items():
        table.add_row(label, Text(str(value)))
    console.print(table)
    if report.waiting_on:
        console.print(_waiting_table(report))
    if projections:
        console.print(projections_table(projections))
    if relays:
        relay_table = Table(box=box.SIMPLE_HEAD)
        for header in ("relay", "position", "published", "lag"):
            relay_table.add_column(header)
        for relay in relays:
            relay_table.add_row(
                relay.name, str(relay.position), str(relay.published), str(relay.lag_events)
            )
        console.print(relay_table)


def _waiting_table(report: StoreStatus) -> Table:
    table = Table(title="readers wait on", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("pid", "transaction started", "state", "query"):
        table.add_column(header, overflow="fold")
    for holder in report.waiting_on:
        started = holder.transaction_started
        table.add_row(
            str(holder.pid),
            "" if started is None else format_timestamp(started),
            Text(holder.state),
            Text(holder.query),
        )
    return table


@app.command(short_help="The seed's bank story, then months of history for thousands of accounts.")
@_reports_errors
def demo(
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    accounts: Annotated[
        int, typer.Option(min=0, max=1_000_000, help="Accounts in the generated history (0: none).")
    ] = 2000,
    months: Annotated[int, typer.Option(min=1, max=120, help="How far back it goes.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the generator (same seed, same history).")] = 1,
) -> None:
    """Run the seed's bank story: open account acc_12345 for Juan Pérez, deposit 1000.00 and
    withdraw 500.00 (each event with who, why and a correlation id), then read the events back,
    rebuild the balance from them and show the account as it was just after the deposit. Each run
    opens a new account (acc_12345, acc_12345_2, ...), so it can run again on the same store.

    Then, once per store, fill it with a bank's history: --accounts accounts (acc-00001, ...)
    opened over the first weeks of the last --months months, with deposits, withdrawals,
    transfers and a few closures at back-dated moments, so that asOf queries, the read models
    and the console have something to show."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from cronica._demo_history import account_ids, fill_history, history_state

    with cronica.connect(store_url) as store:
        story = _demo.run_story(store)
        _print_story(story, _redacted(store_url))
        if accounts == 0:
            return
        state = history_state(store)
        if state == "complete":
            typer.echo("The history is already there: not generated again.")
            return
        if state is not None or store.read_stream(account_ids("acc-", 1)[0], limit=1):
            raise InvalidInputError(
                "an earlier demo history was interrupted (or acc-00001 exists): run the demo on"
                " a new store"
            )
        with Progress(
            TextColumn("history"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
            console=Console(stderr=True), transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("history", total=None)
            history = fill_history(
                store,
                accounts=accounts,
                months=months,
                now=datetime.now(UTC),
                seed=seed,
                progress=lambda n: progress.advance(task, n),
            )
    typer.echo(
        f"History: {history.accounts:,} accounts, {history.events:,} events"
        f" ({history.transfers:,} transfers, {history.closed:,} closed accounts)"
        f" from {format_timestamp(history.first)[:10]} to {format_timestamp(history.last)[:10]}."
    )
    typer.echo("Serve it with `cronica serve`; then try GET /accounts?active=true.")


def _print_story(story: _demo.Story, where: str) -> None:
    console = _console()
    console.print(Text(f"The seed's bank story, in {where}", style="bold"))
    console.print(Text(f"Account {story.account_id} of {story.account.owner}"))
    console.print(Text(f"Correlation id {story.correlation_id}", style="dim"))
    console.print()
    _print_history(console, f"Stream {story.account_id}:", story.events)
    console.print(
        Text(f"Balance rebuilt from {len(story.events)} events: ")
        + Text(_demo.balance_formula(story.events), style="bold")
    )
    console.print()
    moment = format_timestamp(story.as_of)
    _print_history(console, f"The stream as of {moment} (after the deposit):", story.past_events)
    console.print(
        Text("Balance then: ") + Text(_demo.balance_formula(story.past_events), style="bold")
    )
    console.print()
    console.print(Text("The deposit as stored, the seed's self-contained envelope:"))
    console.print_json(_dumps(story.deposit.to_dict()))


def _print_history(console: Console, title: str, events: list[RecordedEvent]) -> None:
    """Each event as what (type and data), then when, who and why (the audit trail)."""
    console.print(Text(title, style="bold"))
    for event in events:
        what = Text(f"{event.version:>3}  ")
        what.append(event.event_type, style="cyan")
        what.append(f"  {_demo.describe(event)}")
        console.print(what)
        audit = (
            f"     at {format_timestamp(event.timestamp)}"
            f" by {event.metadata.get('actor', '?')}: {event.metadata.get('reason', '')}"
        )
        console.print(Text(audit, style="dim"))


# Commands kept in modules of their own register themselves on ``app`` when imported.
from cronica import (  # noqa: E402, F401
    _cli_archive,
    _cli_migrate,
    _cli_privacy,
    _cli_projections,
    _cli_serve,
    _cli_snapshots,
)


def main() -> None:
    """The ``cronica`` console script."""
    app(prog_name="cronica")
