"""Checks on identifiers and arguments, shared by every entry point (library, HTTP, CLI)."""

from __future__ import annotations

import math
import re
from typing import Any

from cronica.errors import (
    InvalidAggregateIdError,
    InvalidAggregateTypeError,
    InvalidEventTypeError,
    InvalidInputError,
)

MAX_AGGREGATE_ID_LENGTH = 255
MAX_TYPE_LENGTH = 100
MAX_REASON_LENGTH = 500
"""The longest reason an operator may give (forgetting a subject, skipping an event)."""
# C0 and C1 control characters and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_aggregate_id(aggregate_id: Any) -> str:
    """Return ``aggregate_id`` if it is 1 to 255 characters without control characters."""
    return _check_identifier(aggregate_id, "aggregate id", InvalidAggregateIdError)


def check_subject_id(subject_id: Any) -> str:
    """Return ``subject_id`` (whose personal data is kept or forgotten) if it follows the
    aggregate id rules: 1 to 255 characters, no control characters."""
    return _check_identifier(subject_id, "subject id", InvalidInputError)


def check_text(value: Any, what: str, max_length: int) -> str:
    """Return ``value`` if it is a string of storable text (no NUL, no lone surrogates) with
    something besides spaces, at most ``max_length`` characters (a reason, say)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string")
    if len(value) > max_length:
        raise InvalidInputError(f"{what} is at most {max_length} characters")
    if "\x00" in value or not encodes(value):
        raise InvalidInputError(f"{what} is not storable text (NUL or a lone surrogate)")
    return value


def _check_identifier(value: Any, what: str, error: type[InvalidInputError]) -> str:
    if not isinstance(value, str):
        raise error(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise error(f"{what} must not be empty")
    if len(value) > MAX_AGGREGATE_ID_LENGTH:
        raise error(
            f"{what} is {len(value)} characters, over the limit of {MAX_AGGREGATE_ID_LENGTH}"
        )
    if _CONTROL.search(value):
        raise error(f"{what} must not contain control characters: {value!r}")
    if not encodes(value):
        raise error(f"{what} is not valid Unicode text: {value!r}")
    return value


def encodes(text: str) -> bool:
    """Whether ``text`` is storable: lone surrogates (``"\\ud800"``) have no UTF-8 form."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_type_name(
    value: Any, what: str, error: type[InvalidInputError], *, allow_empty: bool
) -> str:
    if not isinstance(value, str):
        raise error(f"{what} must be a string, not {type(value).__name__}")
    if not value and not allow_empty:
        raise error(f"{what} must not be empty")
    if len(value) > MAX_TYPE_LENGTH:
        raise error(f"{what} is {len(value)} characters, over the limit of {MAX_TYPE_LENGTH}")
    if _CONTROL.search(value):
        raise error(f"{what} must not contain control characters: {value!r}")
    if not encodes(value):
        raise error(f"{what} is not valid Unicode text: {value!r}")
    return value


def check_event_type(event_type: Any) -> str:
    """Return ``event_type`` if it is 1 to 100 characters without control characters."""
    return _check_type_name(event_type, "event type", InvalidEventTypeError, allow_empty=False)


def check_aggregate_type(aggregate_type: Any) -> str:
    """Return ``aggregate_type`` if it is at most 100 characters without control characters."""
    return _check_type_name(
        aggregate_type, "aggregate type", InvalidAggregateTypeError, allow_empty=True
    )


def check_count(value: Any, what: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{what} must be an integer of at least {minimum}, not {value!r}")
    return value


def check_seconds(value: Any, what: str) -> float:
    """Return ``value`` if it is a finite number of seconds above zero (not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInputError(f"{what} must be a number of seconds above 0, not {value!r}")
    return float(value)


def check_several(values: Any, what: str) -> list[Any]:
    """``values`` as a list, if it is a collection of several (a list, tuple or set): a bare
    string is refused (it would be taken letter by letter), and so is a single value."""
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple | set | frozenset):
        raise InvalidInputError(f"{what} must be a list of names, not {type(values).__name__}")
    return list(values)
