"""The runner-facing API (docs/runner-protocol.md): parse, call a stage function, answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..results import artifacts, uploads
from ..scheduling import runners
from .deps import Bearer, Ctx
from .schemas import (
    AttemptBody,
    CompleteRequest,
    HeartbeatRequest,
    LogsRequest,
    RegisterRequest,
    ReleaseRequest,
    StepRequest,
)

router = APIRouter(prefix="/api/v1")


@router.post("/runners/register")
async def register(body: RegisterRequest, sc: Ctx) -> dict[str, Any]:
    return await runners.register_runner(
        sc,
        registration_token=body.registration_token,
        name=body.name,
        labels=body.labels,
        slots=body.slots,
    )


@router.post("/runners/heartbeat")
async def heartbeat(
    body: HeartbeatRequest,
    sc: Ctx,
    token: Bearer,
) -> dict[str, Any]:
    running = [(j.job_id, j.attempt) for j in body.running]
    capabilities = body.capabilities.model_dump() if body.capabilities else None
    return await runners.heartbeat(
        sc,
        token=token,
        running=running,
        slots=body.slots,
        labels=body.labels,
        capabilities=capabilities,
        gpus=body.gpus,
    )


@router.get("/runner/jobs/{job_id}")
async def fetch_job(
    job_id: int,
    attempt: int,
    sc: Ctx,
    token: Bearer,
) -> dict[str, Any]:
    return await runners.fetch_job(sc, token=token, job_id=job_id, attempt=attempt)


@router.post("/runner/jobs/{job_id}/start")
async def start(
    job_id: int,
    body: AttemptBody,
    sc: Ctx,
    token: Bearer,
) -> dict[str, bool]:
    await uploads.mark_started(sc, job_id=job_id, attempt=body.attempt, token=token)
    return {"ok": True}


@router.post("/runner/jobs/{job_id}/logs")
async def logs(
    job_id: int,
    body: LogsRequest,
    sc: Ctx,
    token: Bearer,
) -> dict[str, bool]:
    lines = [line.model_dump() for line in body.lines]
    await uploads.add_logs(sc, job_id=job_id, attempt=body.attempt, token=token, lines=lines)
    return {"ok": True}


@router.post("/runner/jobs/{job_id}/steps/{index}")
async def step(
    job_id: int,
    index: int,
    body: StepRequest,
    sc: Ctx,
    token: Bearer,
) -> dict[str, bool]:
    values = body.model_dump(exclude={"attempt"})
    await uploads.update_step(
        sc, job_id=job_id, attempt=body.attempt, index=index, token=token, values=values
    )
    return {"ok": True}


@router.post("/runner/jobs/{job_id}/complete")
async def complete(
    job_id: int,
    body: CompleteRequest,
    sc: Ctx,
    token: Bearer,
) -> dict[str, bool]:
    await uploads.complete_job(
        sc,
        job_id=job_id,
        attempt=body.attempt,
        token=token,
        outcome=body.outcome,
        reason=body.reason,
        metrics=body.metrics,
        metrics_error=body.metrics_error,
        record=body.record,
    )
    return {"ok": True}


@router.put("/runner/jobs/{job_id}/artifacts/{path:path}")
async def upload_artifact(
    job_id: int,
    path: str,
    attempt: int,
    request: Request,
    sc: Ctx,
    token: Bearer,
) -> dict[str, Any]:
    return await artifacts.store_artifact(
        sc, job_id=job_id, attempt=attempt, token=token, path=path, body=request.stream()
    )


@router.post("/runner/jobs/{job_id}/release")
async def release(
    job_id: int,
    body: ReleaseRequest,
    sc: Ctx,
    token: Bearer,
) -> dict[str, bool]:
    await uploads.release_job(
        sc, job_id=job_id, attempt=body.attempt, token=token, reason=body.reason
    )
    return {"ok": True}
