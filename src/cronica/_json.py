"""JSON encoding shared by every backend (orjson), with cronica's rules for event payloads."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from cronica.errors import InvalidEventDataError

loads = orjson.loads

# A NUL character cannot be stored in PostgreSQL's JSONB or text; refuse it everywhere so the
# three backends accept exactly the same events. An escaped backslash before "u0000" is not NUL.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def dumps(value: Any) -> bytes:
    """Serialise for transport (HTTP, bus, files); raises ``TypeError`` on unsupported values."""
    return orjson.dumps(value)


def dump_object(value: Any, what: str) -> bytes:
    """Serialise an event's ``data`` or ``metadata``, which must be a JSON object."""
    if not isinstance(value, dict):
        raise InvalidEventDataError(
            f"event {what} must be a JSON object (a dict), not {type(value).__name__}"
        )
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:
        raise InvalidEventDataError(f"event {what} does not serialise to JSON: {exc}") from exc
    if b"\\u0000" in encoded and _NUL_ESCAPE.search(encoded):
        raise InvalidEventDataError(f"event {what} must not contain NUL characters (\\u0000)")
    # orjson writes NaN and infinities as null: the value would come back as None. Only a
    # document with a null in it can hold one, so most never need the walk.
    if b"null" in encoded and _holds_non_finite(value):
        raise InvalidEventDataError(
            f"event {what} holds NaN or an infinity, which JSON cannot carry"
        )
    return encoded


def _holds_non_finite(value: Any) -> bool:
    """Whether ``value`` (dicts, lists, tuples, scalars) holds a float NaN or infinity."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False
