"""Audit: who did it, why, and what it belongs to, on every event (seed 1.6.1).

The *when* is the event's timestamp and the *what* its type and data; the rest travels in the
event's metadata, set by the repository from an :class:`Audit`, passed to a command or set once
for a block of code (an HTTP request, a saga step), so domain code never passes it around:

>>> with audit_context(actor="ana@example.com", reason="customer called"):
...     current_audit().actor
'ana@example.com'

Metadata keys: ``actor``, ``reason`` (when given), ``commandId`` (one per command run),
``correlationId`` (the conversation: the first command's id unless given) and ``causationId``
(the message that caused these events: the command, or the event a saga reacted to).
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

UNKNOWN_ACTOR = "unknown"
"""The actor recorded when no one was named."""


@dataclass(frozen=True, slots=True)
class Audit:
    """The audit answers for a command; unset fields come from the current context."""

    actor: str | None = None
    reason: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    command_id: str | None = None

    def merged_over(self, base: Audit) -> Audit:
        """These answers, with ``base``'s wherever this one has none."""
        if base == _EMPTY:
            return self
        return Audit(
            self.actor if self.actor is not None else base.actor,
            self.reason if self.reason is not None else base.reason,
            self.correlation_id if self.correlation_id is not None else base.correlation_id,
            self.causation_id if self.causation_id is not None else base.causation_id,
            self.command_id if self.command_id is not None else base.command_id,
        )

    def metadata(self) -> dict[str, Any]:
        """The event metadata for one command run (a fresh command id when none is set)."""
        command_id = self.command_id or str(uuid.uuid4())
        meta: dict[str, Any] = {"actor": self.actor or UNKNOWN_ACTOR}
        if self.reason is not None:
            meta["reason"] = self.reason
        meta["commandId"] = command_id
        meta["correlationId"] = self.correlation_id or command_id
        meta["causationId"] = self.causation_id or command_id
        return meta


_EMPTY = Audit()

_current: contextvars.ContextVar[Audit] = contextvars.ContextVar(
    "cronica_audit",
    default=Audit(),  # noqa: B039 - Audit is frozen
)


def current_audit() -> Audit:
    """The audit answers set by the innermost :func:`audit_context`."""
    return _current.get()


@contextmanager
def audit_context(
    *,
    actor: str | None = None,
    reason: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Iterator[Audit]:
    """Set audit answers for the commands run inside the block (nested blocks add to them)."""
    audit = Audit(actor, reason, correlation_id, causation_id).merged_over(_current.get())
    token = _current.set(audit)
    try:
        yield audit
    finally:
        _current.reset(token)
