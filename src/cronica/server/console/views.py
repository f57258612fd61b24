"""What the console's pages show, apart from HTTP: events as people read them, an aggregate's
state at a version and the difference each event made.

Personal data is shown decrypted, or as ``[erased]``; a value still encrypted (one that does
not open) is shown as ``[encrypted]``: the console never shows a key or a ciphertext.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cronica.events import RecordedEvent, format_timestamp
from cronica.privacy.cipher import is_sealed

HIDDEN = "[encrypted]"
"""What a value that is still encrypted shows as."""

AUDIT_KEYS = ("actor", "reason", "correlationId", "causationId", "commandId")


def shown(value: Any) -> Any:
    """``value`` with anything still encrypted replaced by :data:`HIDDEN` (nested too)."""
    if is_sealed(value):
        return HIDDEN
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


def as_json(value: Any) -> str:
    """Compact JSON for a page, with encrypted values hidden."""
    return orjson.dumps(shown(value), option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class EventView:
    """One event as a row of a page."""

    position: int
    version: int
    event_id: str
    event_type: str
    aggregate_id: str
    aggregate_type: str
    timestamp: str
    data: str
    audit: dict[str, str]
    other_metadata: str

    @classmethod
    def of(cls, event: RecordedEvent) -> EventView:
        meta = event.metadata
        return cls(
            event.position,
            event.version,
            str(event.event_id),
            event.event_type,
            event.aggregate_id,
            event.aggregate_type,
            format_timestamp(event.timestamp),
            as_json(event.data),
            {k: str(shown(meta[k])) for k in AUDIT_KEYS if meta.get(k) is not None},
            as_json({k: v for k, v in meta.items() if k not in AUDIT_KEYS}),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A field an event changed: its value before and after."""

    field: str
    before: str
    after: str


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[Change]:
    """The fields whose values differ between two states (a missing field reads as empty)."""
    old = before or {}
    return [
        Change(name, as_json(old.get(name)) if name in old else "", as_json(after.get(name)))
        for name in sorted(set(old) | set(after))
        if old.get(name) != after.get(name)
    ]
