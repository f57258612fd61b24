"""Operations: projections (status, rebuild), forgetting a data subject, health, Prometheus
metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from cronica.errors import StoreError
from cronica.projections import projection_status
from cronica.server.auth import ADMIN, READ, require
from cronica.server.models import (
    ERROR_RESPONSES,
    ForgetIn,
    ForgetOut,
    HealthOut,
    ProjectionOut,
    ProjectionsOut,
    RebuildOut,
)
from cronica.server.routes_bank import AuditOf
from cronica.server.routes_store import services

router = APIRouter(tags=["operations"], responses=ERROR_RESPONSES)


@router.get(
    "/projections",
    response_model=ProjectionsOut,
    dependencies=[Depends(require(READ))],
    summary="Projections: position, lag, state",
)
def list_projections(request: Request) -> ProjectionsOut:
    svc = services(request)
    statuses = projection_status(svc.store, svc.read_models)
    return ProjectionsOut(
        projections=[
            ProjectionOut(
                name=s.name,
                status=s.state,
                state=s.state,
                position=s.position,
                lag=s.lag_events,
                lagSeconds=s.lag_seconds,
                version=s.version,
                generation=s.generation,
                runner=s.runner,
                error=s.error,
                rebuild=s.to_dict()["rebuild"],
            )
            for s in statuses
        ],
        head=svc.store.head_position(),
    )


@router.post(
    "/projections/{name}/rebuild",
    status_code=202,
    response_model=RebuildOut,
    dependencies=[Depends(require(ADMIN))],
    summary="Rebuild a projection from zero, behind its view",
)
def rebuild_projection(
    request: Request,
    name: str,
    reason: Annotated[str | None, Header(alias="X-Reason", max_length=500)] = None,
) -> RebuildOut:
    """The projector rebuilds it into a new generation and switches when caught up; queries
    keep answering from the old one meanwhile. 404 unknown name, 409 already rebuilding."""
    actor = getattr(request.state, "actor", None) or "anonymous"
    services(request).catalog.request_rebuild(name, actor=actor, reason=reason or "HTTP API")
    return RebuildOut(name=name, rebuildRequested=True)


@router.post(
    "/subjects/{subjectId}/forget",
    response_model=ForgetOut,
    dependencies=[Depends(require(ADMIN))],
    summary="Forget a data subject: destroy their keys, erase their personal data",
)
async def forget_subject(
    request: Request,
    subject_id: Annotated[str, Path(alias="subjectId", min_length=1, max_length=255)],
    body: ForgetIn,
    audit: AuditOf,
) -> ForgetOut:
    """Crypto-shredding (seed 1.7.4): the subject's keys are destroyed, so their personal data
    reads as ``[erased]`` in every copy of the events; ``PersonalDataErased`` is appended to
    their stream (in the bank, an account's subject is its account id) and the read models drop
    those fields: ``readModelsUpdated`` says whether this process's projector had done so
    before the answer (it waits up to the ``minPosition`` timeout; false when the projector
    runs elsewhere: then wait with ``minPosition=position``). Forgetting again answers the
    same. 404 for an unknown subject."""
    svc = services(request)
    erasure, updated = await run_in_threadpool(svc.forget, subject_id, body.reason, audit)
    return ForgetOut(
        subjectId=subject_id,
        keysDestroyed=erasure.keys_destroyed,
        fields=list(erasure.fields),
        position=erasure.position,
        readModelsUpdated=updated,
    )


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut}},
    summary="Is the store reachable?",
)
def health(request: Request) -> JSONResponse:
    svc = services(request)
    try:
        head = svc.store.head_position()
    except StoreError as exc:
        body = HealthOut(status="unavailable", store=svc.store.backend_name, message=str(exc))
        return JSONResponse(body.model_dump(exclude_none=True), 503)
    body = HealthOut(status="ok", store=svc.store.backend_name, head=head)
    return JSONResponse(body.model_dump(exclude_none=True))


@router.get(
    "/metrics",
    dependencies=[Depends(require(READ))],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
