"""Forgetting a data subject (seed 1.7.4): destroy their keys, record the erasure, drop copies.

:func:`forget` is the one operation behind the library, ``cronica forget`` and
``POST /subjects/{subjectId}/forget``:

1. it destroys every key of the subject (:meth:`SubjectKeys.forget`): from then on their
   personal values read as ``[erased]`` in every copy of the events, the store's, its backups'
   and the bus's alike;
2. it appends a ``PersonalDataErased {subjectId, fields, reason}`` event to the subject's stream
   (by default the stream whose id is the subject's: an account's subject is its account id),
   naming the erased fields and holding no personal data itself; projections handle it by
   dropping those fields, and a repository that meets it drops what it kept in memory;
3. it deletes the stream's snapshots (they were encrypted with the destroyed key: unreadable
   already, now gone too).

It can be run again: a crash between the steps is repaired by running it once more (the
erasure event's id derives from the subject and the moment they were forgotten, so it is
stored once).

>>> import cronica
>>> from cronica.examples.bank import BankAccount, bank_events
>>> from cronica.repository import Repository
>>> store = cronica.connect("memory://")
>>> accounts = Repository(store, BankAccount, bank_events)
>>> _ = accounts.create("acc-1", lambda account: account.open("Ana"))
>>> forget(store, "acc-1", reason="GDPR request").fields
('owner',)
>>> accounts.load("acc-1").owner
'[erased]'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from cronica._json import dump_object
from cronica._validation import (
    MAX_REASON_LENGTH,
    check_aggregate_id,
    check_subject_id,
    check_text,
)
from cronica.audit import Audit, current_audit
from cronica.errors import DuplicateEventError, InvalidInputError
from cronica.event_types import DomainEvent
from cronica.events import NewEvent, RecordedEvent
from cronica.privacy.cipher import ERASURE_EVENT, SUBJECT_KEY, is_sealed
from cronica.privacy.keys import SubjectKeys
from cronica.store.base import EventStore

__all__ = ["ERASURE_EVENT", "Erasure", "PersonalDataErased", "forget"]

_ERASURE_NAMESPACE: Final = uuid.UUID("0b6f3c1e-2f7a-4d59-8c1e-7d3a9e4b5f60")


class PersonalDataErased(DomainEvent):
    """A data subject's personal data was erased (their keys destroyed): ``fields`` names the
    erased fields of the stream's events, ``reason`` says why (it must hold no personal data).
    Register it with the events of aggregates whose subjects can be forgotten."""

    subject_id: str
    fields: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Erasure:
    """What :func:`forget` did: the keys it destroyed now (0 when they were gone already), the
    fields erased in ``stream``, and the erasure event's position (None when the subject has
    no stream to record it in)."""

    subject_id: str
    keys_destroyed: int
    stream: str
    fields: tuple[str, ...]
    position: int | None


def _check_stream_is_theirs(events: list[RecordedEvent], subject_id: str, stream: str) -> None:
    """Refuse to mark another person's stream as erased: a stream whose personal data all
    belongs to other subjects is not this subject's."""
    subjects = {e.metadata.get(SUBJECT_KEY) for e in events} - {None}
    if subjects and subject_id not in subjects:
        raise InvalidInputError(
            f"stream {stream!r} holds personal data of other subjects only, not of {subject_id!r}"
        )


def check_forget_arguments(subject_id: str, reason: str, stream: str | None) -> str:
    """``InvalidInputError`` unless the subject id, the reason and the stream (default: the
    subject's own) are fit for :func:`forget`; the stream."""
    check_subject_id(subject_id)
    check_text(reason, "the reason for forgetting", MAX_REASON_LENGTH)
    return subject_id if stream is None else check_aggregate_id(stream)


def forget(
    store: EventStore,
    subject_id: str,
    *,
    reason: str,
    stream: str | None = None,
    keys: SubjectKeys | None = None,
    audit: Audit | None = None,
) -> Erasure:
    """Forget ``subject_id``: destroy their keys, append ``PersonalDataErased`` to ``stream``
    (default: the stream named like the subject) when it exists, delete its snapshots.

    ``InvalidInputError`` (and nothing destroyed) for a subject id or stream that is not a valid
    id, a stream whose personal data belongs to other subjects only, an empty reason, a reason
    over 500 characters or one that cannot be stored.
    """
    # Every argument is checked before anything is destroyed: a forget cannot be undone.
    stream = check_forget_arguments(subject_id, reason, stream)
    metadata = (audit or Audit()).merged_over(current_audit()).metadata()
    dump_object(metadata, "metadata")
    keys = store.subject_keys() if keys is None else keys
    _check_stream_is_theirs(store.read_stream(stream), subject_id, stream)
    destroyed = keys.forget(subject_id, reason=reason)
    # Read after the keys are gone: an append that raced this call (an account opened just
    # now) is in the stream by then, or it is refused or sealed with a key that no longer
    # exists; either way its stream gets the erasure.
    events = store.read_stream(stream)
    fields = sorted(
        {
            name
            for event in events
            if event.metadata.get(SUBJECT_KEY) == subject_id
            for name, value in event.data.items()
            if is_sealed(value)
        }
    )
    if not events:
        return Erasure(subject_id, destroyed, stream, tuple(fields), None)
    forgotten_at = keys.forgotten_at(subject_id)
    event_id = uuid.uuid5(_ERASURE_NAMESPACE, f"{subject_id}\n{stream}\n{forgotten_at}")
    erased = NewEvent(
        ERASURE_EVENT,
        {"subjectId": subject_id, "fields": fields, "reason": reason},
        metadata,
        event_id,
    )
    try:
        position: int | None = store.append(
            stream, [erased], aggregate_type=events[0].aggregate_type
        ).position
    except DuplicateEventError:  # recorded by an earlier run, with another reason or audit
        recorded = store.read_event(event_id)
        if recorded is None:
            raise
        position = recorded.position
    try:
        snapshots = store.snapshot_store()
    except NotImplementedError:
        pass
    else:
        snapshots.delete(stream)
    return Erasure(subject_id, destroyed, stream, tuple(fields), position)
