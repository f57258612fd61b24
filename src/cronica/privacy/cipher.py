"""Field-level encryption of personal data in events (crypto-shredding, seed 1.7.4).

Only the fields an event type declares personal are encrypted; its type, ids and other fields
stay readable, so projections and routing keep working after the subject is forgotten. Each
personal value becomes the string ``cronica:pii:v1:<key id>:<base64url(nonce + ciphertext)>``:
AES-256-GCM with the subject's data key (:class:`~cronica.privacy.keys.SubjectKeys`), a fresh
nonce per field, and the event id and field name as associated data, so a ciphertext cannot be
moved to another event or field. The subject's id travels in the event's metadata
(``subjectId``); it names the key, it is not personal data itself (an account id).

Reading decrypts what it can: a value whose key was destroyed reads as :data:`ERASED`.

>>> import cronica
>>> from cronica.readmodels import connect_read_models
>>> from cronica.privacy.keys import SubjectKeys
>>> keys = SubjectKeys(connect_read_models("memory://"))
>>> personal = PersonalData(keys, {"AccountCreated": ("owner",)})
>>> event = personal.encrypt(cronica.NewEvent("AccountCreated", {"owner": "Ana"}), "acc-1")
>>> event.data["owner"].startswith(PREFIX), event.metadata["subjectId"]
(True, 'acc-1')
>>> store = cronica.connect("memory://")
>>> _ = store.append("acc-1", [event])
>>> personal.decrypt(store.read_stream("acc-1")[0]).data
{'owner': 'Ana'}
>>> _ = keys.forget("acc-1", reason="GDPR request")
>>> personal.decrypt(store.read_stream("acc-1")[0]).data
{'owner': '[erased]'}
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidTag

from cronica.errors import InvalidEventDataError, InvalidInputError
from cronica.event_types import ERASED_PLACEHOLDER
from cronica.events import NewEvent, RecordedEvent
from cronica.privacy.keys import SubjectKeys

__all__ = [
    "ERASED",
    "ERASURE_EVENT",
    "PREFIX",
    "SUBJECT_KEY",
    "PersonalData",
    "any_sealed",
    "is_sealed",
    "readable",
]

log = logging.getLogger("cronica.privacy")

PREFIX = "cronica:pii:v1:"
"""How an encrypted value begins."""

ERASED = ERASED_PLACEHOLDER
"""What an erased personal value reads as: ``"[erased]"``."""

SUBJECT_KEY = "subjectId"
"""The metadata entry naming the data subject of an event's personal fields."""

ERASURE_EVENT: Final = "PersonalDataErased"
"""The event that records a forgotten subject (see :mod:`cronica.privacy.erasure`)."""


class PersonalData:
    """Encrypts and decrypts the personal fields of events with the subjects' keys.

    ``fields`` maps an event type to the names (as stored: ``owner``, ``emailAddress``) of its
    personal fields (what :meth:`EventRegistry.personal_fields` gives); decrypting needs none,
    since an encrypted value says so itself."""

    def __init__(
        self, keys: SubjectKeys, fields: Mapping[str, tuple[str, ...]] | None = None
    ) -> None:
        self.keys = keys
        self.fields = {event_type: tuple(names) for event_type, names in (fields or {}).items()}

    def personal_fields(self, event_type: str) -> tuple[str, ...]:
        return self.fields.get(event_type, ())

    def encrypt(self, event: NewEvent, subject_id: str, *, complete: bool = False) -> NewEvent:
        """The event with its personal fields encrypted under ``subject_id``'s key in use
        (``SubjectForgottenError`` for a forgotten subject); an event without any is returned
        as it is. ``complete``: every declared field must be in the data (an event class's
        payload always has them all; one missing means its stored name is not the declared
        one, and it must not reach the store in clear)."""
        declared = self.personal_fields(event.event_type)
        missing = [n for n in declared if n not in event.data] if complete else []
        if missing:
            raise InvalidEventDataError(
                f"{event.event_type}: personal field {missing[0]!r} is not in its data"
                f" ({sorted(event.data)})"
            )
        names = [n for n in declared if event.data.get(n) is not None]
        if not names:
            return event
        data = dict(event.data)
        for name in names:
            data[name] = self.seal(subject_id, data[name], _bound(event.event_id, name))
        metadata = {**event.metadata, SUBJECT_KEY: subject_id}
        return NewEvent(event.event_type, data, metadata, event.event_id)

    def decrypt(
        self, event: RecordedEvent, *, strict: bool = True, fetch: bool = True
    ) -> RecordedEvent:
        """The event with its encrypted values decrypted, or :data:`ERASED` where the key is
        gone. A value that claims to be encrypted but does not open (tampered with, moved from
        another event, or plain text that only looks encrypted) is an ``InvalidEventDataError``;
        with ``strict=False`` it is left as stored and logged instead. ``fetch=False``: the keys
        were just read (:meth:`SubjectKeys.prefetch`), one missing is gone."""
        data = event.data
        sealed = [n for n, v in data.items() if is_sealed(v)]
        if not sealed:
            return event
        subject_id = event.metadata.get(SUBJECT_KEY)
        opened = dict(data)
        for name in sealed:
            try:
                if not isinstance(subject_id, str):
                    raise InvalidEventDataError(
                        f"event {event.event_id} has personal data but no subject"
                    )
                value = self._open(subject_id, data[name], _bound(event.event_id, name), fetch)
            except InvalidEventDataError as exc:
                if strict:
                    raise
                log.warning("event %s: field %r left as stored: %s", event.event_id, name, exc)
                continue
            opened[name] = ERASED if value is _GONE else value
        return event._replace(data=opened)

    def decrypt_all(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """The page of events with their personal values decrypted, their subjects' keys read
        in one query; the page itself when none holds personal data (the common case costs a
        look at each event's values). Not strict (see :meth:`decrypt`): a reader of the log
        (a projector, the API) does not stop at a value that does not open."""
        sealed = [i for i, event in enumerate(events) if any(map(is_sealed, event.data.values()))]
        if not sealed:
            return events
        for event in events:
            if event.event_type == ERASURE_EVENT and isinstance(
                subject := event.data.get("subjectId"), str
            ):
                # A key this process still holds may have been destroyed by another one: what
                # was written with it after the erasure must not open here.
                self.keys.drop_cached(subject)
        self.keys.prefetch(
            (subject, _key_id(value))
            for i in sealed
            if isinstance(subject := events[i].metadata.get(SUBJECT_KEY), str)
            for value in events[i].data.values()
            if is_sealed(value)
        )
        out = list(events)
        for i in sealed:
            out[i] = self.decrypt(events[i], strict=False, fetch=False)
        return out

    # -- single values ---------------------------------------------------------------------------

    def seal(self, subject_id: str, value: Any, bound: str) -> str:
        """``value`` (anything JSON) encrypted under the subject's key in use, bound to
        ``bound`` (associated data: it opens only with the same ``bound``)."""
        if not subject_id:
            raise InvalidInputError("personal data needs a subject id")
        key_id, _, sealer = self.keys.active_sealer(subject_id)
        nonce = secrets.token_bytes(12)
        sealed = sealer.encrypt(nonce, orjson.dumps(value), bound.encode())
        return f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def unseal(self, subject_id: str, text: str, bound: str) -> tuple[bool, Any]:
        """(True, value) from :meth:`seal`'s text, or (False, None) when the key is gone."""
        value = self._open(subject_id, text, bound)
        return (False, None) if value is _GONE else (True, value)

    def _open(self, subject_id: str, text: str, bound: str, fetch: bool = True) -> Any:
        try:
            key_id, payload = text[len(PREFIX) :].split(":", 1)
            raw = base64.urlsafe_b64decode(payload)
        except (ValueError, binascii.Error) as exc:
            raise InvalidEventDataError(f"{bound}: not a valid ciphertext") from exc
        found = self.keys.sealer(subject_id, key_id, fetch=fetch)
        if found is None:
            return _GONE
        try:
            plain = found[1].decrypt(raw[:12], raw[12:], bound.encode())
        except InvalidTag as exc:
            raise InvalidEventDataError(f"{bound}: does not open with its subject's key") from exc
        return orjson.loads(plain)


_GONE: Final = object()
"""What opening a value whose key was destroyed gives."""


def _key_id(value: str) -> str:
    return value[len(PREFIX) :].split(":", 1)[0]


def readable(events: list[RecordedEvent], keys: Callable[[], SubjectKeys]) -> list[RecordedEvent]:
    """``events`` with their personal data decrypted (not strictly: see
    :meth:`PersonalData.decrypt`), the keys from ``keys()``, asked for only when something is
    encrypted (so a store that never held personal data gets no key table)."""
    return PersonalData(keys()).decrypt_all(events) if any_sealed(events) else events


def any_sealed(events: list[RecordedEvent]) -> bool:
    """Whether any of ``events`` holds an encrypted personal value."""
    return any(is_sealed(v) for event in events for v in event.data.values())


def is_sealed(value: object) -> bool:
    """Whether ``value`` is an encrypted personal value."""
    return type(value) is str and value.startswith(PREFIX)


def _bound(event_id: uuid.UUID, field: str) -> str:
    """The associated data binding a ciphertext to its event and field."""
    return f"{event_id}:{field}"
