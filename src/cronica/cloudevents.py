"""CloudEvents 1.0 (JSON format), both ways.

=====================  ================================================================
CloudEvents attribute  cronica
=====================  ================================================================
``id``                 ``event_id`` (a non-UUID id becomes ``uuid5(source + id)``, stable,
                       so a producer's retries stay idempotent)
``source``             ``metadata["source"]`` when set, else ``DEFAULT_SOURCE``
``type``               ``event_type``
``subject``            ``aggregate_id``
``time``               ``timestamp``
``data``               ``data`` (``datacontenttype`` ``application/json``; must be an object)
``aggregatetype``      ``aggregate_type`` (extension)
``aggregateversion``   ``version`` (extension)
``position``           ``position`` (extension)
``metadata``           ``metadata`` as a JSON string (extension; CloudEvents extension values
                       are scalars)
=====================  ================================================================

Other extension attributes of an incoming event are kept in its metadata under their names.
"""

from __future__ import annotations

import uuid
from typing import Any

from cronica import _json
from cronica.errors import InvalidEventDataError, InvalidInputError
from cronica.events import NewEvent, RecordedEvent, format_timestamp, parse_timestamp

DEFAULT_SOURCE = "/cronica"
SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_CORE = {
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
}
_OURS = {"aggregatetype", "aggregateversion", "position", "metadata"}
_ID_NAMESPACE = uuid.UUID("6f0a3c59-3d5e-4d2b-9a57-8c1c2f7e6b10")


def to_cloudevent(event: RecordedEvent, source: str | None = None) -> dict[str, Any]:
    """A stored event as a CloudEvents 1.0 JSON object."""
    meta_source = event.metadata.get("source")
    return {
        "specversion": SPEC_VERSION,
        "id": str(event.event_id),
        "source": source or (meta_source if isinstance(meta_source, str) else DEFAULT_SOURCE),
        "type": event.event_type,
        "subject": event.aggregate_id,
        "time": format_timestamp(event.timestamp),
        "datacontenttype": "application/json",
        "data": event.data,
        "aggregatetype": event.aggregate_type,
        "aggregateversion": event.version,
        "position": event.position,
        "metadata": _json.dumps(event.metadata).decode(),
    }


def from_cloudevent(cloudevent: Any) -> NewEvent:
    """A CloudEvents 1.0 JSON object as an event to append; ``InvalidInputError`` if malformed."""
    ce = _check(cloudevent)
    metadata = _metadata(ce)
    for name, value in ce.items():
        if name not in _CORE and name not in _OURS:
            metadata.setdefault(name, value)
    metadata.setdefault("source", ce["source"])
    return NewEvent(ce["type"], _data(ce), metadata, event_id=_event_id(ce))


def recorded_from_cloudevent(cloudevent: Any) -> RecordedEvent:
    """Read back :func:`to_cloudevent` output (needs the ``subject`` and cronica extensions)."""
    ce = _check(cloudevent)
    try:
        return RecordedEvent(
            event_id=_event_id(ce),
            event_type=ce["type"],
            aggregate_id=str(ce["subject"]),
            aggregate_type=str(ce.get("aggregatetype", "")),
            version=int(ce["aggregateversion"]),
            position=int(ce["position"]),
            timestamp=parse_timestamp(str(ce["time"])),
            data=_data(ce),
            metadata=_metadata(ce),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidEventDataError(f"not a cronica CloudEvent: missing or bad {exc}") from exc


def _check(cloudevent: Any) -> dict[str, Any]:
    if not isinstance(cloudevent, dict):
        raise InvalidEventDataError("a CloudEvent must be a JSON object")
    if cloudevent.get("specversion") != SPEC_VERSION:
        raise InvalidEventDataError(
            f"unsupported CloudEvents specversion {cloudevent.get('specversion')!r} (need '1.0')"
        )
    for name in ("id", "source", "type"):
        value = cloudevent.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidEventDataError(f"a CloudEvent needs a non-empty string {name!r}")
    return cloudevent


def _event_id(ce: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(ce["id"])
    except ValueError:
        return uuid.uuid5(_ID_NAMESPACE, f"{ce['source']}\x00{ce['id']}")


def _data(ce: dict[str, Any]) -> dict[str, Any]:
    if "data_base64" in ce:
        raise InvalidEventDataError("binary CloudEvent data (data_base64) is not supported")
    content_type = ce.get("datacontenttype", "application/json")
    if not isinstance(content_type, str) or not (
        content_type.startswith("application/json") or content_type.endswith("+json")
    ):
        raise InvalidEventDataError(f"CloudEvent data must be JSON, not {content_type!r}")
    data = ce.get("data", {})
    if not isinstance(data, dict):
        raise InvalidEventDataError("CloudEvent data must be a JSON object")
    return data


def _metadata(ce: dict[str, Any]) -> dict[str, Any]:
    raw = ce.get("metadata")
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = _json.loads(raw)
        except ValueError as exc:
            raise InvalidEventDataError("the 'metadata' extension must hold a JSON object") from exc
    if not isinstance(raw, dict):
        raise InvalidEventDataError("the 'metadata' extension must hold a JSON object")
    return dict(raw)
