"""The runner-facing API (docs/runner-protocol.md): parse, call a stage function, answer.

Every route declares its credential: a runner's token (heartbeats, fetching a job) or a job
attempt's token (everything a job reports). A call without one is refused before its body is
read; the token itself is checked by the stage function, which knows the job and attempt.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from ..auth.policies import JOB_TOKEN, REGISTRATION_TOKEN, RUNNER_TOKEN, policy
from ..results import artifacts, uploads
from ..scheduling import runners
from .bodies import body_doc, json_body
from .deps import MAX_ROW_ID, Bearer, Ctx, RowId
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

Attempt = Annotated[int, Query(ge=1, le=MAX_ROW_ID)]
StepIndex = Annotated[int, Path(ge=0, le=10_000)]


@router.post(
    "/runners/register",
    dependencies=policy(REGISTRATION_TOKEN),
    openapi_extra=body_doc(RegisterRequest),
)
async def register(
    sc: Ctx, body: Annotated[RegisterRequest, Depends(json_body(RegisterRequest))]
) -> dict[str, Any]:
    return await runners.register_runner(
        sc,
        registration_token=body.registration_token,
        name=body.name,
        labels=body.labels,
        slots=body.slots,
    )


@router.post(
    "/runners/heartbeat",
    dependencies=policy(RUNNER_TOKEN),
    openapi_extra=body_doc(HeartbeatRequest),
)
async def heartbeat(
    sc: Ctx,
    token: Bearer,
    body: Annotated[HeartbeatRequest, Depends(json_body(HeartbeatRequest))],
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
        resources=body.resources.model_dump() if body.resources else None,
        draining=body.draining,
        version=body.version,
    )


@router.get("/runner/jobs/{job_id}", dependencies=policy(RUNNER_TOKEN))
async def fetch_job(job_id: RowId, attempt: Attempt, sc: Ctx, token: Bearer) -> dict[str, Any]:
    return await runners.fetch_job(sc, token=token, job_id=job_id, attempt=attempt)


@router.post(
    "/runner/jobs/{job_id}/start",
    dependencies=policy(JOB_TOKEN),
    openapi_extra=body_doc(AttemptBody),
)
async def start(
    job_id: RowId,
    sc: Ctx,
    token: Bearer,
    body: Annotated[AttemptBody, Depends(json_body(AttemptBody))],
) -> dict[str, bool]:
    await uploads.mark_started(sc, job_id=job_id, attempt=body.attempt, token=token)
    return {"ok": True}


@router.post(
    "/runner/jobs/{job_id}/logs",
    dependencies=policy(JOB_TOKEN),
    openapi_extra=body_doc(LogsRequest),
)
async def logs(
    job_id: RowId,
    sc: Ctx,
    token: Bearer,
    body: Annotated[LogsRequest, Depends(json_body(LogsRequest, nul_ok=True))],
) -> dict[str, bool]:
    await uploads.add_logs(sc, job_id=job_id, attempt=body.attempt, token=token, lines=body.lines)
    return {"ok": True}


@router.post(
    "/runner/jobs/{job_id}/steps/{index}",
    dependencies=policy(JOB_TOKEN),
    openapi_extra=body_doc(StepRequest),
)
async def step(
    job_id: RowId,
    index: StepIndex,
    sc: Ctx,
    token: Bearer,
    body: Annotated[StepRequest, Depends(json_body(StepRequest))],
) -> dict[str, bool]:
    values = body.model_dump(exclude={"attempt"})
    await uploads.update_step(
        sc, job_id=job_id, attempt=body.attempt, index=index, token=token, values=values
    )
    return {"ok": True}


@router.post(
    "/runner/jobs/{job_id}/complete",
    dependencies=policy(JOB_TOKEN),
    openapi_extra=body_doc(CompleteRequest),
)
async def complete(
    job_id: RowId,
    sc: Ctx,
    token: Bearer,
    body: Annotated[CompleteRequest, Depends(json_body(CompleteRequest))],
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


@router.put("/runner/jobs/{job_id}/artifacts/{path:path}", dependencies=policy(JOB_TOKEN))
async def upload_artifact(
    job_id: RowId,
    path: str,
    attempt: Attempt,
    request: Request,
    sc: Ctx,
    token: Bearer,
) -> dict[str, Any]:
    return await artifacts.store_artifact(
        sc, job_id=job_id, attempt=attempt, token=token, path=path, body=request.stream()
    )


@router.post(
    "/runner/jobs/{job_id}/release",
    dependencies=policy(JOB_TOKEN),
    openapi_extra=body_doc(ReleaseRequest),
)
async def release(
    job_id: RowId,
    sc: Ctx,
    token: Bearer,
    body: Annotated[ReleaseRequest, Depends(json_body(ReleaseRequest))],
) -> dict[str, bool]:
    await uploads.release_job(
        sc, job_id=job_id, attempt=body.attempt, token=token, reason=body.reason
    )
    return {"ok": True}
