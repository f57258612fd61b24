"""Request and response bodies of the HTTP API (the wire contract in docs/http-api.md).

Commands and queries have separate models (CQRS): a command answers with what it wrote and the
position of its last event; a query answers from a read model or from the log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
)

AMOUNT_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,2})?$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorOut(BaseModel):
    """Every error: a code, a message, and fields that depend on the code."""

    model_config = ConfigDict(extra="allow")

    error: str
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in [
        (401, "An API key is required"),
        (403, "The API key lacks the scope"),
        (404, "Not found"),
        (409, "Conflict: version, duplicate, existing"),
        (413, "The body or an event is too large"),
        (422, "Invalid input, or a broken business rule"),
        (503, "The store is unavailable, or the read model is behind"),
    ]
}
"""The error answers every route may give, for the OpenAPI document."""


# -- the store API ------------------------------------------------------------------------------


class EventIn(_Body):
    event_id: str | None = Field(None, alias="eventId", description="a UUID; drawn if absent")
    event_type: str = Field(alias="eventType", min_length=1, max_length=100)
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None


class AppendIn(_Body):
    # Strict: true, 1.0 and "2" are not versions (a lax int would take them as 1, 1 and 2).
    expected_version: StrictInt | Literal["any", "no_stream", "exists"] = Field(
        "any", alias="expectedVersion"
    )
    aggregate_type: str | None = Field(None, alias="aggregateType", max_length=100)
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class AppendOut(BaseModel):
    aggregateId: str
    fromVersion: int
    toVersion: int
    position: int


class EventOut(BaseModel):
    """The seed's envelope."""

    eventId: str
    eventType: str
    aggregateId: str
    aggregateType: str
    version: int
    position: int
    timestamp: str
    data: dict[str, Any]
    metadata: dict[str, Any]


class StreamOut(BaseModel):
    aggregateId: str
    version: int
    events: list[EventOut]


class LogOut(BaseModel):
    events: list[EventOut]
    last: int


# -- the bank -----------------------------------------------------------------------------------


class OpenAccountIn(_Body):
    owner: str = Field(min_length=1, max_length=200)
    account_id: str | None = Field(
        None,
        alias="accountId",
        min_length=1,
        max_length=255,
        pattern=r"^[^/]+$",
        description="the account's id (no '/': it goes in URLs); drawn if absent",
    )


class ForgetIn(_Body):
    reason: str = Field(
        min_length=1,
        max_length=500,
        description="why the subject is forgotten (recorded in the erasure event: no personal"
        " data here)",
    )


class ForgetOut(BaseModel):
    subjectId: str
    keysDestroyed: int
    fields: list[str]
    position: int | None
    readModelsUpdated: bool


class MoneyIn(_Body):
    amount: Annotated[str, Field(pattern=AMOUNT_PATTERN)] | StrictInt = Field(
        description='a positive decimal with at most two places: "1000.00" (or an integer)'
    )


class AccountOpenedOut(BaseModel):
    accountId: str
    version: int
    position: int


class CommandOut(BaseModel):
    version: int
    position: int


class AccountOut(BaseModel):
    accountId: str
    owner: str
    balance: str
    version: int
    status: str | None = None


class AccountSummaryOut(BaseModel):
    accountId: str
    owner: str
    balance: str


def _is_none(value: object) -> bool:
    return value is None


class AccountsOut(BaseModel):
    accounts: list[AccountSummaryOut]
    # Left out on the last page (the contract's "next"?), not sent as null.
    next: str | None = Field(None, exclude_if=_is_none)


class TransactionOut(BaseModel):
    eventId: str
    type: Literal["deposit", "withdrawal", "transfer"]
    direction: Literal["in", "out"]
    amount: str
    timestamp: str
    position: int
    counterparty: str | None = None


class TransactionsOut(BaseModel):
    accountId: str
    transactions: list[TransactionOut]
    next: int | None = Field(None, exclude_if=_is_none)  # left out on the last page


class AuditEntryOut(BaseModel):
    """One event of an account's history, with who did it and why."""

    eventId: str
    eventType: str
    version: int
    position: int
    timestamp: str
    data: dict[str, Any]
    actor: str | None
    reason: str | None
    commandId: str | None
    correlationId: str | None
    causationId: str | None


class AuditTrailOut(BaseModel):
    accountId: str
    events: list[AuditEntryOut]


# -- operations ---------------------------------------------------------------------------------


class ProjectionOut(BaseModel):
    name: str
    status: str = Field(description="the contract's name for state")
    state: str
    position: int
    lag: int
    lagSeconds: float
    version: int
    generation: int
    runner: str | None
    error: str | None = None
    rebuild: dict[str, Any] | None = None


class ProjectionsOut(BaseModel):
    projections: list[ProjectionOut]
    head: int


class RebuildOut(BaseModel):
    name: str
    rebuildRequested: bool


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    store: str
    head: int | None = None
    message: str | None = None


# -- transfers (a saga) -------------------------------------------------------------------------

AccountRef = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/]+$")]


class TransferIn(_Body):
    from_: AccountRef = Field(alias="from", description="the account the money leaves")
    to: AccountRef = Field(description="the account the money goes to")
    amount: Annotated[str, Field(pattern=AMOUNT_PATTERN)] | StrictInt = Field(
        description='a positive decimal with at most two places: "1000.00" (or an integer)'
    )
    transfer_id: AccountRef | None = Field(
        None,
        alias="transferId",
        description="the transfer's id, to retry a request safely; drawn if absent",
    )


class TransferAcceptedOut(BaseModel):
    transferId: str
    position: int


class TransferOut(BaseModel):
    transferId: str
    status: Literal["pending", "completed", "failed", "compensated"]
    from_: str = Field(alias="from")
    to: str
    amount: str
    reason: str | None = Field(description="why it failed or was compensated")
    version: int
