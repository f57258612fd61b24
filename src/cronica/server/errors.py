"""Errors as HTTP answers: JSON ``{"error": code, "message": ..., ...}`` with the right status.

=====================================  ======  ==================================================
cronica error                          status  code
=====================================  ======  ==================================================
``ConcurrencyError``                   409     ``wrong_expected_version`` (+ ``expected``,
                                               ``actual``)
``DuplicateEventError``                409     ``duplicate_event`` (+ ``eventId``)
``AggregateTypeMismatchError``         409     ``aggregate_type_mismatch``
``ProjectionStateError``               409     ``projection_state``
``EventTooLargeError``                 413     ``event_too_large`` (+ ``size``, ``limit``)
``InvalidInputError``                  422     ``invalid_input``
``InvariantError``                     422     the rule's name: ``insufficient_funds``, ...
``StreamNotFoundError``                404     ``not_found``
``ProjectionNotFoundError``            404     ``not_found``
``StoreError``                         503     ``unavailable``
=====================================  ======  ==================================================

Request bodies and parameters that do not fit the schema get 422 ``invalid_input`` with the
validator's ``details``; nothing is written on any error.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cronica.errors import (
    AggregateTypeMismatchError,
    ConcurrencyError,
    CronicaError,
    DuplicateEventError,
    EventTooLargeError,
    InvalidInputError,
    InvariantError,
    ProjectionNotFoundError,
    ProjectionStateError,
    StoreError,
    StreamNotFoundError,
)
from cronica.privacy.keys import SubjectForgottenError

log = logging.getLogger("cronica.server")


class HTTPError(Exception):
    """An answer other than success, raised by a route: ``status``, ``code``, ``message`` and
    extra fields for the JSON body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.fields = fields


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **fields}, status, headers=headers)


def rule_code(error: InvariantError) -> str:
    """``InsufficientFundsError`` -> ``insufficient_funds``; a plain ``InvariantError`` ->
    ``rule_broken``."""
    name = type(error).__name__.removesuffix("Error")
    if name == "Invariant":
        return "rule_broken"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def http_error_for(error: CronicaError) -> HTTPError:
    """The HTTP answer for a cronica error."""
    message = str(error)
    match error:
        case ConcurrencyError():
            expected = error.expected
            shown = (
                expected if isinstance(expected, int) else str(getattr(expected, "value", expected))
            )
            return HTTPError(
                409, "wrong_expected_version", message, expected=shown, actual=error.actual
            )
        case DuplicateEventError():
            return HTTPError(409, "duplicate_event", message, eventId=error.event_id)
        case AggregateTypeMismatchError():
            return HTTPError(409, "aggregate_type_mismatch", message)
        case ProjectionStateError():
            return HTTPError(409, "projection_state", message)
        case SubjectForgottenError():
            return HTTPError(409, "subject_forgotten", message, subjectId=error.subject_id)
        case EventTooLargeError():
            return HTTPError(413, "event_too_large", message, size=error.size, limit=error.limit)
        case InvalidInputError():
            return HTTPError(422, "invalid_input", message)
        case InvariantError():
            return HTTPError(422, rule_code(error), message)
        case StreamNotFoundError() | ProjectionNotFoundError():
            return HTTPError(404, "not_found", message)
        case StoreError():
            log.warning("backend failure: %s", error)
            return HTTPError(503, "unavailable", message, headers={"Retry-After": "1"})
    log.error("unexpected cronica error: %r", error)
    return HTTPError(500, "internal", message)


_STATUS_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON ``{"error", "message"}``."""

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPError)
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.fields)

    async def on_cronica_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CronicaError)
        answer = http_error_for(exc)
        return error_response(
            answer.status, answer.code, answer.message, answer.headers, **answer.fields
        )

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"location": list(e.get("loc", ())), "problem": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = details[0] if details else {"location": [], "problem": "invalid request"}
        where = ".".join(str(part) for part in first["location"])
        return error_response(422, "invalid_input", f"{where}: {first['problem']}", details=details)

    async def on_starlette_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # FastAPI could not parse the body: invalid input like any
            return error_response(422, "invalid_input", f"the body is not JSON: {exc.detail}")
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, str(exc.detail), headers)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error answering a request", exc_info=exc)
        return error_response(500, "internal", "an unexpected error; the server's log has it")

    app.add_exception_handler(HTTPError, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(CronicaError, on_cronica_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_starlette_error)
