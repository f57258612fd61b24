"""The console's pages (see :mod:`cronica.server.console`)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from cronica.aggregates import Aggregate
from cronica.errors import AggregateTypeMismatchError, CronicaError, StreamNotFoundError
from cronica.events import RecordedEvent, parse_timestamp
from cronica.projections import projection_status
from cronica.relay import relay_status
from cronica.repository import Repository
from cronica.server.auth import ADMIN, KEY_COOKIE, KeyRing, require
from cronica.server.console.views import EventView, as_json, diff
from cronica.server.errors import HTTPError
from cronica.server.routes_store import resume_after, services
from cronica.server.services import Services

router = APIRouter(prefix="/ui", include_in_schema=False)

templates = Jinja2Templates(
    env=Environment(
        loader=PackageLoader("cronica.server.console", "templates"),
        autoescape=select_autoescape(),
    )
)
templates.env.filters["segment"] = lambda value: quote(str(value), safe="")
"""An id as one path segment of a link (a ``/`` in it encoded too)."""

STATIC = StaticFiles(directory=Path(__file__).parent / "static")
PAGE = 100
"""Events or streams on one page."""
EVENTS_PAGE = 500
"""A stream's events on one page."""


def _page(request: Request, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("title", "cronica")
    context["keys_on"] = bool(request.app.state.keys)
    key = getattr(request.state, "key", None)
    context["signed_in"] = key is not None
    context["can_rebuild"] = not context["keys_on"] or (key is not None and key.allows(ADMIN))
    return templates.TemplateResponse(request, name, context, status_code=status)


def _same_origin(request: Request) -> None:
    """A form posted to the console must come from the console's own pages: browsers send
    ``Origin`` with every POST, and a page of another site (even one on the same domain,
    which a same-site cookie does not stop) names itself there."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPError(403, "forbidden", "a console form must be posted from the console")


SameOrigin = Depends(_same_origin)


def _rows(svc: Services, events: list[RecordedEvent]) -> list[EventView]:
    return [EventView.of(e) for e in svc.readable(events)]


# -- signing in (only when API keys are configured) ---------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/ui/log") -> HTMLResponse:
    return _page(request, "login.html", next=_local(next), failed=False, title="Sign in")


@router.post("/login", response_model=None, dependencies=[SameOrigin])
def login(
    request: Request,
    key: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = "/ui/log",
) -> Response:
    ring: KeyRing = request.app.state.keys
    if ring and ring.find(key.strip()) is None:
        return _page(request, "login.html", next=_local(next), failed=True, title="Sign in")
    answer = RedirectResponse(_local(next), status_code=303)
    answer.set_cookie(KEY_COOKIE, key.strip(), httponly=True, samesite="strict", path="/ui")
    return answer


@router.post("/logout", dependencies=[SameOrigin])
def logout() -> RedirectResponse:
    answer = RedirectResponse("/ui/login", status_code=303)
    answer.delete_cookie(KEY_COOKIE, path="/ui")
    return answer


def _local(target: str) -> str:
    """Only a path of the console: never send people elsewhere after signing in."""
    return target if target.startswith("/ui/") and "//" not in target else "/ui/log"


# -- the log ------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/ui/log", status_code=307)


@router.get("/log", response_class=HTMLResponse)
def log_page(
    request: Request, event_type: Annotated[str | None, Query(alias="eventType")] = None
) -> HTMLResponse:
    svc = services(request)
    types = [event_type] if event_type else None
    newest = svc.store.read_recent(PAGE, types)
    # The live rows follow on from the newest readable event of the whole log.
    latest = newest if types is None else svc.store.read_recent(1)
    head = latest[0].position if latest else 0
    return _page(
        request, "log.html", events=_rows(svc, newest), head=head, event_type=event_type or "",
        title="Log",
    )  # fmt: skip


@router.get("/log/live")
async def log_live(
    request: Request,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    event_type: Annotated[str | None, Query(alias="eventType")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-sent events, each a rendered row of the log page, newest as they commit. A
    browser that reconnects sends the last row's position as ``Last-Event-ID`` and gets the
    rows after it, none twice."""
    svc = services(request)
    row = templates.env.get_template("_event_row.html")

    async def rows() -> AsyncIterator[bytes]:
        position = resume_after(after, last_event_id)
        yield b": following the log\n\n"
        go_on = svc.following(request.is_disconnected)
        while await go_on():
            events = await svc.aio.read_all(after=position, limit=PAGE)
            if events:
                position = events[-1].position
                shown = [e for e in events if not event_type or e.event_type == event_type]
                for view in await svc.call(functools.partial(_rows, svc, shown)):
                    html = " ".join(row.render(e=view, with_stream=True).splitlines())
                    yield f"id: {view.position}\ndata: {html}\n\n".encode()
                continue
            await svc.wait_for_events(position, 15.0)
            yield b": keep-alive\n\n"

    return StreamingResponse(
        rows(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- streams ------------------------------------------------------------------------------------


@router.get("/streams", response_class=HTMLResponse)
def streams_page(
    request: Request,
    q: str = "",
    aggregate_type: Annotated[str, Query(alias="type", max_length=100)] = "",
    event_type: Annotated[str, Query(alias="eventType", max_length=100)] = "",
    after: str | None = None,
) -> HTMLResponse:
    """Streams whose id starts with ``q``, of a type; or, by event type, the streams whose
    latest events include that type."""
    svc = services(request)
    if event_type:
        seen: dict[str, str] = {}
        for event in svc.store.read_recent(PAGE * 10, [event_type]):
            if event.aggregate_id.startswith(q):
                seen.setdefault(event.aggregate_id, event.aggregate_type)
        chosen = [i for i, kind in seen.items() if not aggregate_type or kind == aggregate_type]
        found = [svc.store.stream_info(aggregate_id) for aggregate_id in chosen[:PAGE]]
        more = None
    else:
        start = after if after is not None else (_before(q) if q else None)
        page = svc.store.list_streams(aggregate_type or None, start, PAGE + 1)
        found = [s for s in page if s.aggregate_id.startswith(q)]
        more = found[PAGE - 1].aggregate_id if len(found) > PAGE else None
        found = found[:PAGE]
    return _page(
        request, "streams.html", streams=found, q=q, aggregate_type=aggregate_type,
        event_type=event_type, more=more, title="Streams",
    )  # fmt: skip


def _before(prefix: str) -> str | None:
    """A cursor just before the ids that start with ``prefix`` (list_streams reads after it)."""
    last = ord(prefix[-1])
    if last == 0:
        return prefix[:-1] or None
    below = last - 1 if not 0xDC00 <= last - 1 <= 0xDFFF else 0xD7FF  # no lone surrogates
    return prefix[:-1] + chr(below) + "\U0010ffff"


def _repository(svc: Services, aggregate_type: str) -> Repository[Any] | None:
    """The repository that can rebuild this kind of aggregate's state, if the service has it."""
    known: dict[str, Repository[Any]] = {
        svc.accounts.aggregate_class.aggregate_type: svc.accounts,
        svc.transfers.repository.aggregate_class.aggregate_type: svc.transfers.repository,
    }
    return known.get(aggregate_type)


@router.get("/streams/{aggregate_id:path}", response_class=HTMLResponse)
def stream_page(
    request: Request,
    aggregate_id: str,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    at: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[int, Query(alias="from", ge=1, le=2**31 - 1)] = 1,
) -> HTMLResponse:
    """A stream's events (``EVENTS_PAGE`` at a time from version ``from``), and its aggregate's
    state at a version (``version``) or a moment (``at``), with the change each event made."""
    svc = services(request)
    try:
        info = svc.store.stream_info(aggregate_id)
    except StreamNotFoundError:
        return _page(request, "missing.html", what=f"stream {aggregate_id}", status=404)
    notice = None
    if at:
        try:
            moment = parse_timestamp(at)
        except CronicaError:
            notice = f"{at!r} is not an RFC 3339 time: showing the latest version."
        else:
            then = svc.store.read_stream(aggregate_id, as_of=moment, backward=True, limit=1)
            if then:
                version = then[0].version
            else:
                notice = f"{aggregate_id} did not exist yet at {at}: its first version follows."
                version = 1
    chosen = min(version or info.version, info.version)
    repository = _repository(svc, info.aggregate_type)
    state = before = None
    if repository is not None:
        state = _state(repository, aggregate_id, chosen)
        before = _state(repository, aggregate_id, chosen - 1) if chosen > 1 else {}
    current = svc.store.read_stream(aggregate_id, from_version=chosen, to_version=chosen)
    views = _rows(svc, svc.store.read_stream(aggregate_id, from_version=start, limit=EVENTS_PAGE))
    later = start + EVENTS_PAGE if start + EVENTS_PAGE <= info.version else None
    return _page(
        request, "stream.html", info=info, events=views, version=chosen, notice=notice,
        state=None if state is None else {k: as_json(v) for k, v in sorted(state.items())},
        changes=[] if state is None else diff(before, state),
        current=_rows(svc, current)[0] if current else None, later=later,
        earlier=max(1, start - EVENTS_PAGE) if start > 1 else None, title=aggregate_id,
    )  # fmt: skip


def _state(repository: Repository[Any], aggregate_id: str, version: int) -> dict[str, Any]:
    aggregate: Aggregate = repository.load(aggregate_id, version=version)
    return aggregate.snapshot_state()


# -- projections, bus and relay -----------------------------------------------------------------


@router.get("/projections", response_class=HTMLResponse)
def projections_page(request: Request) -> HTMLResponse:
    svc = services(request)
    return _page(
        request, "projections.html", projections=projection_status(svc.store, svc.read_models),
        relays=relay_status(svc.store, svc.read_models), consumers=_consumers(svc),
        groups=_bus_groups(svc),
        head=svc.store.head_position(), title="Projections",
    )  # fmt: skip


def _consumers(svc: Services) -> list[tuple[str, int, int]]:
    """The in-process bus's consumer groups: name, position, events behind."""
    if not svc.read_models.table_exists("cronica_consumers"):
        return []
    rows = svc.read_models.query("SELECT group_name, position FROM cronica_consumers ORDER BY 1")
    return [(str(n), int(p), svc.store.count_events(after=int(p))) for n, p in rows]


def _bus_groups(svc: Services) -> list[tuple[str, int, int, str]]:
    """The Redis bus's consumer groups (``XINFO GROUPS``): name, entries not yet delivered to
    the group (its lag), delivered but not acknowledged (pending), consumers."""
    bus = None if svc.relay is None else svc.relay.bus
    from cronica.bus.redis_streams import RedisStreamsBus

    if not isinstance(bus, RedisStreamsBus):
        return []
    import redis

    try:
        with redis.Redis.from_url(bus.url, socket_timeout=2) as client:
            found: Any = client.xinfo_groups(bus.stream)
    except redis.RedisError:  # the page still answers when Redis does not
        return [("(Redis does not answer)", 0, 0, "")]
    return [
        (
            _text(g["name"]),
            int(g.get("lag") or 0),
            int(g.get("pending") or 0),
            str(g.get("consumers", "")),
        )
        for g in found
    ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@router.post("/projections/{name}/rebuild", dependencies=[SameOrigin, Depends(require(ADMIN))])
def rebuild(request: Request, name: str) -> RedirectResponse:
    actor = getattr(request.state, "actor", None) or "console"
    services(request).catalog.request_rebuild(name, actor=actor, reason="console")
    return RedirectResponse("/ui/projections", status_code=303)


# -- transfers (sagas) --------------------------------------------------------------------------


@router.get("/transfers", response_class=HTMLResponse)
async def transfers_page(request: Request, after: str | None = None) -> HTMLResponse:
    svc = services(request)
    kind = svc.transfers.repository.aggregate_class.aggregate_type
    streams = await run_in_threadpool(svc.store.list_streams, kind, after, PAGE + 1)
    sagas = await asyncio.gather(
        *(run_in_threadpool(svc.transfers.get, s.aggregate_id) for s in streams[:PAGE])
    )
    more = streams[PAGE - 1].aggregate_id if len(streams) > PAGE else None
    return _page(request, "transfers.html", sagas=sagas, more=more, title="Transfers")


@router.get("/transfers/{transfer_id:path}", response_class=HTMLResponse)
def transfer_page(request: Request, transfer_id: str) -> HTMLResponse:
    svc = services(request)
    try:
        saga = svc.transfers.get(transfer_id)
    except (StreamNotFoundError, AggregateTypeMismatchError):
        return _page(request, "missing.html", what=f"transfer {transfer_id}", status=404)
    events = _rows(svc, svc.store.read_stream(transfer_id, limit=1000))
    return _page(request, "transfer.html", saga=saga, events=events, title=transfer_id)
