"""The store API: append to a stream, read a stream, read and follow the global log.

Bodies and answers are JSON with the seed's envelope, or CloudEvents 1.0 when asked for:
``Content-Type: application/cloudevents+json`` (one event, structured mode),
``application/cloudevents-batch+json`` (several), or ``ce-*`` headers with the data as the body
(binary mode) on ``POST /streams/{id}``; ``Accept: application/cloudevents-batch+json`` on the
reads.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cronica import cloudevents
from cronica.errors import EventTooLargeError, InvalidInputError, StreamNotFoundError
from cronica.events import MAX_POSITION, AppendResult, NewEvent, RecordedEvent
from cronica.privacy.cipher import any_sealed
from cronica.server.auth import READ, WRITE, require
from cronica.server.errors import HTTPError
from cronica.server.models import ERROR_RESPONSES, AppendIn, AppendOut, LogOut, StreamOut
from cronica.server.services import Services

router = APIRouter(tags=["store"], responses=ERROR_RESPONSES)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
LIVE_PAGE = 500
KEEP_ALIVE_SECONDS = 15.0

AggregateId = Annotated[str, Path(min_length=1, max_length=255, alias="aggregateId")]


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def clamp(limit: int | None) -> int:
    """A ``limit`` within bounds: the default when absent, the maximum when larger."""
    return DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidInputError("asOf must carry a timezone (RFC 3339: ...Z or ...+01:00)")
    return moment


def wants_cloudevents(accept: str | None) -> bool:
    return accept is not None and cloudevents.BATCH_CONTENT_TYPE in accept


def cloudevents_response(events: list[RecordedEvent]) -> Response:
    body = orjson.dumps([cloudevents.to_cloudevent(e) for e in events])
    return Response(body, media_type=cloudevents.BATCH_CONTENT_TYPE)


_APPEND_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AppendIn"}},
            cloudevents.CONTENT_TYPE: {"schema": {"type": "object"}},
            cloudevents.BATCH_CONTENT_TYPE: {
                "schema": {"type": "array", "items": {"type": "object"}}
            },
        },
    }
}


def _parse_append(
    raw: bytes, content_type: str, expected: str | None, headers: Mapping[str, str]
) -> tuple[list[NewEvent], Any, str | None]:
    """The events, expected version and aggregate type of an append body."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the body is not JSON: {exc}") from None
    if "ce-specversion" in headers:
        binary = binary_cloudevent(headers, body, content_type)
        return (
            [cloudevents.from_cloudevent(binary)],
            _expected_from_query(expected),
            (_aggregate_type_of([binary])),
        )
    if content_type.startswith(cloudevents.BATCH_CONTENT_TYPE):
        if not isinstance(body, list) or not body:
            raise InvalidInputError("a CloudEvents batch is a non-empty JSON array")
        new = [cloudevents.from_cloudevent(ce) for ce in body]
        return new, _expected_from_query(expected), _aggregate_type_of(body)
    if content_type.startswith(cloudevents.CONTENT_TYPE):
        return (
            [cloudevents.from_cloudevent(body)],
            _expected_from_query(expected),
            _aggregate_type_of([body]),
        )
    try:
        request = AppendIn.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    new = [NewEvent(e.event_type, e.data, e.metadata, e.event_id) for e in request.events]
    expected_version: Any = request.expected_version
    if expected is not None:
        from_query = _expected_from_query(expected)
        if "expected_version" in request.model_fields_set and from_query != expected_version:
            raise InvalidInputError(
                f"expectedVersion is {expected_version!r} in the body and {from_query!r} in the"
                " query string"
            )
        expected_version = from_query
    return new, expected_version, request.aggregate_type


def binary_cloudevent(headers: Mapping[str, str], data: Any, content_type: str) -> dict[str, Any]:
    """A CloudEvent sent in HTTP binary mode (attributes in ``ce-*`` headers, the data as the
    body) in its structured form."""
    event: dict[str, Any] = {
        name[3:]: value for name, value in headers.items() if name.startswith("ce-")
    }
    event["datacontenttype"] = content_type or "application/json"
    event["data"] = data
    return event


def _expected_from_query(expected: str | None) -> Any:
    if expected is None:
        return "any"
    return int(expected) if _is_number(expected) else expected


def resume_after(after: int, last_event_id: str | None) -> int:
    """Where a Server-Sent Events stream of the log starts: after ``after``, or after the
    position in a reconnecting browser's ``Last-Event-ID``, if that is later (a header that is
    not a position is ignored)."""
    if last_event_id is not None and _is_number(last_event_id):
        return max(after, min(int(last_event_id), MAX_POSITION))
    return after


def _is_number(text: str) -> bool:
    """Plain ASCII digits, at most 19 of them (``"²".isdigit()`` is true, ``int("²")`` fails)."""
    return text.isascii() and text.isdigit() and len(text) <= 19


def _aggregate_type_of(batch: list[Any]) -> str | None:
    types = {ce.get("aggregatetype") for ce in batch if isinstance(ce, dict)}
    types.discard(None)
    if len(types) > 1:
        raise InvalidInputError("the CloudEvents of one append name different aggregate types")
    found = types.pop() if types else None
    if found is not None and not isinstance(found, str):
        raise InvalidInputError("aggregatetype must be a string")
    return found


@router.post(
    "/streams/{aggregateId}",
    status_code=201,
    response_model=AppendOut,
    openapi_extra=_APPEND_BODY,
    dependencies=[Depends(require(WRITE))],
    summary="Append events to a stream",
)
async def append(
    request: Request,
    aggregate_id: AggregateId,
    expected_version: Annotated[
        str | None,
        Query(alias="expectedVersion", description="for CloudEvents bodies: a version or any"),
    ] = None,
) -> AppendOut:
    """Append all the events or none. Retrying the same eventIds answers as the first time."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "application/json").lower()
    events, expected, aggregate_type = _parse_append(
        raw, content_type, expected_version, request.headers
    )
    svc = services(request)
    limit = svc.settings.max_event_bytes
    if limit is not None:
        for new in events:
            if new.size > limit:
                raise EventTooLargeError(new.size, limit)
    events = [_with_actor(new, request) for new in events]
    result = await run_in_threadpool(
        _append_unowned, svc, aggregate_id, events, expected, aggregate_type
    )
    return AppendOut(
        aggregateId=aggregate_id,
        fromVersion=result.from_version,
        toVersion=result.to_version,
        position=result.position,
    )


def _with_actor(event: NewEvent, request: Request) -> NewEvent:
    """The event with the sender as its ``actor``: the API key's name when keys are in use
    (whatever the metadata claims), else the metadata's own, the ``X-Actor`` header, or
    ``anonymous``."""
    keyed = getattr(request.state, "actor", None)
    claimed = event.metadata.get("actor")
    actor = keyed or claimed or request.headers.get("x-actor") or "anonymous"
    if actor == claimed:
        return event
    metadata = {**event.metadata, "actor": actor}
    return NewEvent(event.event_type, event.data, metadata, event.event_id)


def _append_unowned(
    svc: Services,
    aggregate_id: str,
    events: list[NewEvent],
    expected: Any,
    aggregate_type: str | None,
) -> AppendResult:
    """Append through the store API, but not to the streams a service of this server owns
    (the bank's accounts): those change only through their commands, which keep their rules."""
    owned = svc.owned_aggregate_types
    kind = aggregate_type
    if kind is None:
        try:
            kind = svc.store.stream_info(aggregate_id).aggregate_type
        except StreamNotFoundError:
            kind = None
    if kind in owned:
        raise HTTPError(
            409,
            "owned_by_service",
            f"stream {aggregate_id!r} is a {kind}: change it through the service's commands",
        )
    return svc.store.append(aggregate_id, events, expected, aggregate_type)


@router.get(
    "/streams/{aggregateId}",
    response_model=StreamOut,
    dependencies=[Depends(require(READ))],
    summary="Read a stream",
)
def read_stream(
    request: Request,
    aggregate_id: AggregateId,
    from_version: Annotated[int, Query(alias="fromVersion", ge=1, le=2**31 - 1)] = 1,
    to_version: Annotated[int | None, Query(alias="toVersion", ge=0, le=2**31 - 1)] = None,
    as_of: Annotated[datetime | None, Query(alias="asOf")] = None,
    limit: Annotated[int | None, Query(ge=0)] = None,
    direction: Literal["forward", "backward"] = "forward",
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """The stream's events by version (newest first with ``direction=backward``); with
    ``asOf``, the stream as it was at that moment. 404 for a stream that does not exist (or
    did not yet exist at ``asOf``)."""
    svc = services(request)
    store = svc.store
    moment = _aware(as_of)
    if moment is None:
        version = store.stream_info(aggregate_id).version
    else:  # the version it had then (none: it did not exist yet)
        last = store.read_stream(aggregate_id, as_of=moment, backward=True, limit=1)
        if not last:
            raise StreamNotFoundError(aggregate_id)
        version = last[0].version
    events = svc.readable(
        store.read_stream(
            aggregate_id,
            from_version=from_version,
            to_version=to_version,
            as_of=moment,
            backward=direction == "backward",
            limit=clamp(limit),
        )
    )
    if wants_cloudevents(accept):
        return cloudevents_response(events)
    body = {
        "aggregateId": aggregate_id,
        "version": version,
        "events": [e.to_dict() for e in events],
    }
    return JSONResponse(body)


@router.get(
    "/events",
    response_model=LogOut,
    dependencies=[Depends(require(READ))],
    summary="Read the global log",
)
def read_log(
    request: Request,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int | None, Query(ge=0)] = None,
    event_type: Annotated[list[str] | None, Query(alias="eventType")] = None,
    aggregate_type: Annotated[list[str] | None, Query(alias="aggregateType")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Events after position ``after``, in position order; ``last`` is the position to ask
    after next time (``after`` itself when nothing new was there)."""
    svc = services(request)
    events = svc.readable(
        svc.store.read_all(
            after=after, limit=clamp(limit), event_types=event_type, aggregate_types=aggregate_type
        )
    )
    if wants_cloudevents(accept):
        return cloudevents_response(events)
    last = events[-1].position if events else after
    return JSONResponse({"events": [e.to_dict() for e in events], "last": last})


@router.get(
    "/events/live",
    dependencies=[Depends(require(READ))],
    summary="Follow the global log (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def follow_log(
    request: Request,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    event_type: Annotated[list[str] | None, Query(alias="eventType")] = None,
    aggregate_type: Annotated[list[str] | None, Query(alias="aggregateType")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The log from ``after`` on, then each new event as it commits: one SSE message per event
    (``id`` is its position, ``event`` its type, ``data`` its envelope). A reconnecting client
    sends ``Last-Event-ID`` and resumes after it."""
    after = resume_after(after, last_event_id)
    # Check the filters now, so bad ones get a 422 rather than a broken stream.
    store = services(request).store
    store.read_all(after=after, limit=0, event_types=event_type, aggregate_types=aggregate_type)
    return StreamingResponse(
        _live(request, services(request), after, event_type, aggregate_type),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _live(
    request: Request,
    svc: Services,
    after: int,
    event_types: list[str] | None,
    aggregate_types: list[str] | None,
) -> AsyncIterator[bytes]:
    # Pages are read unfiltered and filtered here, so that ``after`` moves past events the
    # filters leave out (waiting "for events after ``after``" would otherwise never sleep).
    types = set(event_types) if event_types else None
    aggregates = set(aggregate_types) if aggregate_types else None
    yield b": following the log\n\n"
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    aio = svc.aio
    go_on = svc.following(request.is_disconnected)
    while await go_on():
        events = await aio.read_all(after=after, limit=LIVE_PAGE)
        if any_sealed(events):
            events = await svc.call(functools.partial(svc.readable, events))
        for event in events:
            if (types is None or event.event_type in types) and (
                aggregates is None or event.aggregate_type in aggregates
            ):
                yield sse_message(event)
                last_sent = loop.time()
        if loop.time() - last_sent >= KEEP_ALIVE_SECONDS:
            # Nothing sent for a while (only events the filters leave out, or none at all):
            # a comment keeps proxies from closing the connection as idle.
            yield b": keep-alive\n\n"
            last_sent = loop.time()
        if events:
            after = events[-1].position
            continue
        await svc.wait_for_events(after, KEEP_ALIVE_SECONDS)


def sse_message(event: RecordedEvent) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.position,
        event.event_type.encode(),
        event.to_json(),
    )
