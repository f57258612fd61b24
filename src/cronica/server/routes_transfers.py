"""Transfers between accounts: a saga (debit, credit, refund when the credit is refused).

``POST /transfers`` only starts the saga (``SagaStarted`` in the transfer's own stream) and
answers 202 at once; a saga runner (in ``cronica serve`` or ``cronica worker``) moves the
money. ``GET /transfers/{id}`` reads the saga from its events, so it answers right after the
202: ``pending`` until the runner has finished.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from cronica.errors import AggregateTypeMismatchError, ConcurrencyError, StreamNotFoundError
from cronica.examples._money import amount
from cronica.examples.transfers import Transfer
from cronica.server.auth import READ, WRITE, require
from cronica.server.errors import HTTPError
from cronica.server.models import (
    ERROR_RESPONSES,
    TransferAcceptedOut,
    TransferIn,
    TransferOut,
)
from cronica.server.routes_bank import AuditOf
from cronica.server.routes_store import services

router = APIRouter(tags=["bank"], responses=ERROR_RESPONSES)

TransferId = Annotated[str, Path(min_length=1, max_length=255, alias="transferId")]


@router.post(
    "/transfers",
    status_code=202,
    response_model=TransferAcceptedOut,
    dependencies=[Depends(require(WRITE))],
    summary="Transfer money between accounts (a saga: accepted now, done by a worker)",
)
def start_transfer(request: Request, body: TransferIn, audit: AuditOf) -> TransferAcceptedOut:
    """422 for an amount that is not positive or a transfer to the same account. Unknown or
    closed accounts are the saga's business: the transfer then ends ``failed`` or
    ``compensated``. Sending the same ``transferId`` with the same body again is safe; with
    another body it is 409 ``already_exists``."""
    money = amount(body.amount)
    if body.from_ == body.to:
        raise HTTPError(422, "same_account", "a transfer needs two different accounts")
    transfer_id = body.transfer_id or f"tr-{uuid.uuid4().hex}"
    data = {"from": body.from_, "to": body.to, "amount": str(money)}
    sagas = services(request).transfers
    try:
        started = sagas.begin(transfer_id, data, audit=audit)
    except (ConcurrencyError, AggregateTypeMismatchError):
        raise HTTPError(
            409, "already_exists", f"{transfer_id!r} exists and is not this transfer"
        ) from None
    assert started.position is not None
    return TransferAcceptedOut(transferId=transfer_id, position=started.position)


@router.get(
    "/transfers/{transferId}",
    response_model=TransferOut,
    response_model_by_alias=True,
    dependencies=[Depends(require(READ))],
    summary="A transfer's status: pending, completed, failed or compensated",
)
async def get_transfer(request: Request, transfer_id: TransferId) -> TransferOut:
    """From the transfer's own events: up to date as soon as the 202 has been answered."""
    svc = services(request)
    try:
        transfer: Transfer = await run_in_threadpool(svc.transfers.get, transfer_id)
    except (StreamNotFoundError, AggregateTypeMismatchError):
        raise HTTPError(404, "not_found", f"transfer {transfer_id!r} does not exist") from None
    return TransferOut.model_validate(
        {
            "transferId": transfer.id,
            "status": transfer.status,
            "from": transfer.source,
            "to": transfer.target,
            "amount": str(transfer.amount),
            "reason": transfer.reason,
            "version": transfer.version,
        }
    )
