"""The bank service (the seed's example domain): commands on accounts, queries of read models.

Commands (``POST``) load the account from its events, check the rules, append, and answer with
the new version and the position of the last event. Queries (``GET``) read the read models the
projector keeps (``accounts``, ``transactions``, ``active_accounts``); ``minPosition`` makes a
query wait (bounded) until those read models have reached a command's position, so a client
reads its own writes. ``asOf`` and ``version`` rebuild an account from its events instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cronica.audit import Audit
from cronica.errors import AggregateTypeMismatchError, ConcurrencyError, StreamNotFoundError
from cronica.events import format_timestamp
from cronica.examples.bank import BankAccount
from cronica.examples.bank_read_models import money
from cronica.server.auth import READ, WRITE, require
from cronica.server.errors import HTTPError
from cronica.server.models import (
    ERROR_RESPONSES,
    AccountOpenedOut,
    AccountOut,
    AccountsOut,
    AccountSummaryOut,
    AuditEntryOut,
    AuditTrailOut,
    CommandOut,
    MoneyIn,
    OpenAccountIn,
    TransactionOut,
    TransactionsOut,
)
from cronica.server.routes_store import _aware, clamp, services

router = APIRouter(tags=["bank"], responses=ERROR_RESPONSES)

AccountId = Annotated[str, Path(min_length=1, max_length=255, alias="accountId")]
MinPosition = Annotated[
    int | None,
    Query(alias="minPosition", ge=0, le=2**63 - 1, description="wait for this log position"),
]
COMMAND_RETRIES = 5
"""A command that meets a concurrent change of its account (from another replica) reloads
the account and runs again, up to this many times."""


async def audit_of(
    request: Request,
    actor: Annotated[str | None, Header(alias="X-Actor", max_length=200)] = None,
    reason: Annotated[str | None, Header(alias="X-Reason", max_length=500)] = None,
    correlation: Annotated[str | None, Header(alias="X-Correlation-Id", max_length=200)] = None,
) -> Audit:
    """Who sends the command and why: the API key's name when keys are in use (else the
    ``X-Actor`` header, else ``anonymous``), ``X-Reason``, ``X-Correlation-Id``."""
    who = getattr(request.state, "actor", None) or actor or "anonymous"
    return Audit(actor=who, reason=reason, correlation_id=correlation)


AuditOf = Annotated[Audit, Depends(audit_of)]


# -- commands -----------------------------------------------------------------------------------


@router.post(
    "/accounts",
    status_code=201,
    response_model=AccountOpenedOut,
    dependencies=[Depends(require(WRITE))],
    summary="Open an account",
)
def open_account(request: Request, body: OpenAccountIn, audit: AuditOf) -> AccountOpenedOut:
    """409 ``already_exists`` if an account with that ``accountId`` exists."""
    account_id = body.account_id or str(uuid.uuid4())
    repository = services(request).accounts
    try:
        done = repository.create(account_id, lambda a: a.open(body.owner), audit=audit)
    except ConcurrencyError:
        raise HTTPError(409, "already_exists", f"account {account_id!r} already exists") from None
    assert done.position is not None
    return AccountOpenedOut(accountId=account_id, version=done.to_version, position=done.position)


async def _run(request: Request, account_id: str, audit: Audit, command: Any) -> Response:
    """Run a command on an account: commands on one account queue on its lock here, before
    taking a worker thread, so a burst on one hot account cannot hold every thread."""
    svc = services(request)
    async with svc.command_lock(account_id):
        with _not_an_account(account_id):
            done = await run_in_threadpool(
                svc.accounts.execute, account_id, command, audit=audit, retries=COMMAND_RETRIES
            )
    assert done.position is not None
    body = {"version": done.to_version, "position": done.position}
    return Response(orjson.dumps(body), status_code=201, media_type="application/json")


@router.post(
    "/accounts/{accountId}/deposits",
    status_code=201,
    response_model=CommandOut,
    dependencies=[Depends(require(WRITE))],
    summary="Deposit money",
)
async def deposit(
    request: Request, account_id: AccountId, body: MoneyIn, audit: AuditOf
) -> Response:
    """422 when the amount is not positive; 404 for an unknown account."""
    return await _run(request, account_id, audit, lambda a: a.deposit(body.amount))


@router.post(
    "/accounts/{accountId}/withdrawals",
    status_code=201,
    response_model=CommandOut,
    dependencies=[Depends(require(WRITE))],
    summary="Withdraw money",
)
async def withdraw(
    request: Request, account_id: AccountId, body: MoneyIn, audit: AuditOf
) -> Response:
    """422 ``insufficient_funds`` when the balance would go negative (nothing is written)."""
    return await _run(request, account_id, audit, lambda a: a.withdraw(body.amount))


# -- queries ------------------------------------------------------------------------------------


@router.get(
    "/accounts/{accountId}",
    response_model=AccountOut,
    dependencies=[Depends(require(READ))],
    summary="An account: from the read model, or as of a past moment or version",
)
async def get_account(
    request: Request,
    account_id: AccountId,
    min_position: MinPosition = None,
    as_of: Annotated[datetime | None, Query(alias="asOf")] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Without ``asOf`` or ``version``, the ``accounts`` read model (404 until the projector
    has seen the account: pass the command's position as ``minPosition`` to wait for it)."""
    svc = services(request)
    if as_of is not None or version is not None:
        moment = _aware(as_of)
        with _not_an_account(account_id):
            past = await run_in_threadpool(
                svc.accounts.load, account_id, version=version, as_of=moment
            )
        if version is not None and past.version < version:
            raise HTTPError(
                404,
                "not_found",
                f"account {account_id!r} has no version {version} (it is at {past.version})",
            )
        return _account_response(past.id, past.owner, str(past.balance), past.version,
                                 "closed" if past.closed else "open")  # fmt: skip
    await svc.wait_for(min_position, ("accounts",))
    rows = await svc.read(
        "SELECT account_id, owner, balance_cents, version, status FROM accounts"
        " WHERE account_id = ?",
        [account_id],
    )
    if not rows:
        raise HTTPError(404, "not_found", f"account {account_id!r} does not exist")
    found, owner, balance_cents, at_version, status = rows[0]
    return _account_response(found, owner, money(balance_cents), at_version, status)


def _account_response(
    account_id: str, owner: str, balance: str, version: int, status: str
) -> Response:
    """An :class:`AccountOut`, serialised directly: the hottest query skips re-validating
    what it has just built."""
    body = {
        "accountId": account_id,
        "owner": owner,
        "balance": balance,
        "version": version,
        "status": status,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/accounts",
    response_model=AccountsOut,
    dependencies=[Depends(require(READ))],
    summary="Accounts (all, or the active ones), by id, in pages",
)
async def list_accounts(
    request: Request,
    active: bool = False,
    limit: Annotated[int | None, Query(ge=1)] = None,
    after: Annotated[str | None, Query(max_length=255, description="the last page's next")] = None,
    min_position: MinPosition = None,
) -> AccountsOut:
    """``active=true``: the accounts with a balance above zero (``active_accounts``)."""
    svc = services(request)
    view = "active_accounts" if active else "accounts"
    await svc.wait_for(min_position, (view,))
    size = clamp(limit)
    rows = await svc.read(
        f"SELECT account_id, owner, balance_cents FROM {view} WHERE account_id > ?"
        " ORDER BY account_id LIMIT ?",
        [after or "", size + 1],
    )
    page = rows[:size]
    return AccountsOut(
        accounts=[AccountSummaryOut(accountId=a, owner=o, balance=money(b)) for a, o, b in page],
        next=page[-1][0] if len(rows) > size else None,
    )


@contextmanager
def _not_an_account(account_id: str) -> Iterator[None]:
    """A stream of another aggregate type is no account: 404, as for a missing one."""
    try:
        yield
    except AggregateTypeMismatchError:
        raise HTTPError(404, "not_found", f"account {account_id!r} does not exist") from None


def _require_account(request: Request, account_id: str) -> None:
    try:
        info = services(request).store.stream_info(account_id)
    except StreamNotFoundError:
        info = None
    if info is None or info.aggregate_type != BankAccount.aggregate_type:
        raise HTTPError(404, "not_found", f"account {account_id!r} does not exist")


@router.get(
    "/accounts/{accountId}/transactions",
    response_model=TransactionsOut,
    dependencies=[Depends(require(READ))],
    summary="An account's movements (read model), in log order, in pages",
)
async def list_transactions(
    request: Request,
    account_id: AccountId,
    limit: Annotated[int | None, Query(ge=1)] = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="the last page's next")] = 0,
    min_position: MinPosition = None,
) -> TransactionsOut:
    svc = services(request)
    await svc.call(lambda: _require_account(request, account_id))
    await svc.wait_for(min_position, ("transactions",))
    size = clamp(limit)
    rows = await svc.read(
        "SELECT event_id, type, direction, amount_cents, timestamp, position, counterparty"
        " FROM transactions WHERE account_id = ? AND position > ? ORDER BY position LIMIT ?",
        [account_id, after, size + 1],
    )
    page = rows[:size]
    return TransactionsOut(
        accountId=account_id,
        transactions=[
            TransactionOut(
                eventId=event_id,
                type=kind,
                direction=direction,
                amount=money(cents),
                timestamp=_rfc3339(timestamp),
                position=position,
                counterparty=counterparty,
            )
            for event_id, kind, direction, cents, timestamp, position, counterparty in page
        ],
        next=page[-1][5] if len(rows) > size else None,
    )


def _rfc3339(stored: str) -> str:
    return format_timestamp(datetime.fromisoformat(stored))


@router.get(
    "/accounts/{accountId}/events",
    response_model=AuditTrailOut,
    dependencies=[Depends(require(READ))],
    summary="An account's audit trail: every event with who, what, when and why",
)
def audit_trail(
    request: Request,
    account_id: AccountId,
    from_version: Annotated[int, Query(alias="fromVersion", ge=1, le=2**31 - 1)] = 1,
    limit: Annotated[int | None, Query(ge=1)] = None,
    min_position: MinPosition = None,
) -> AuditTrailOut:
    """Read from the store itself, which is never behind: ``minPosition`` is only checked
    (422 past the end of the log)."""
    svc = services(request)
    if min_position is not None:
        svc.check_in_log(min_position, svc.store.head_position())
    _require_account(request, account_id)
    events = svc.readable(
        svc.store.read_stream(account_id, from_version=from_version, limit=clamp(limit))
    )
    return AuditTrailOut(
        accountId=account_id,
        events=[
            AuditEntryOut(
                eventId=str(e.event_id),
                eventType=e.event_type,
                version=e.version,
                position=e.position,
                timestamp=format_timestamp(e.timestamp),
                data=e.data,
                actor=_text(e.metadata.get("actor")),
                reason=_text(e.metadata.get("reason")),
                commandId=_text(e.metadata.get("commandId")),
                correlationId=_text(e.metadata.get("correlationId")),
                causationId=_text(e.metadata.get("causationId")),
            )
            for e in events
        ],
    )


def _text(value: object) -> str | None:
    """A metadata value as text (events appended through the store API may carry anything)."""
    return None if value is None else value if isinstance(value, str) else str(value)
