"""The JSON API's reads: runs (with their logs), the outbox, artifacts. Every route names
its policy; a private repository's runs answer 404 to whoever may not read it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from ..auth.permissions import readable_repository_ids
from ..auth.policies import (
    LISTING,
    PUBLIC,
    READ_JOB,
    READ_RUN,
    SERVER_ADMIN,
    SIGNED_IN,
    Access,
    policy,
)
from ..results.artifacts import artifact_download
from ..results.views import outbox_listing, run_detail, run_overview
from ..scheduling.runner_listing import runner_rows
from .deps import Ctx, RowId, clamp

router = APIRouter()

MAX_RUNS = 500
MAX_OUTBOX = 1000


@router.get("/healthz", dependencies=policy(PUBLIC))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/api/v1/runs")
async def list_runs(
    sc: Ctx,
    access: Annotated[Access, Depends(LISTING)],
    commit: Annotated[str | None, Query(max_length=64)] = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest runs of the repositories the caller may read (of one commit, if given)."""
    visible = await readable_repository_ids(sc, access.principal)
    return await run_overview(
        sc, limit=clamp(limit, MAX_RUNS), commit_sha=commit, repository_ids=visible
    )


@router.get("/api/v1/runs/{run_id}", dependencies=policy(READ_RUN))
async def get_run(run_id: RowId, sc: Ctx) -> dict[str, Any]:
    return await run_detail(sc, run_id)


@router.get("/api/v1/runners")
async def runners(sc: Ctx, access: Annotated[Access, Depends(SIGNED_IN)]) -> list[dict[str, Any]]:
    """Every runner (the runners page's rows): state, drain, labels, executors, version,
    slots, the jobs it holds (a repository's you cannot read without its name) and GPUs."""
    visible = await readable_repository_ids(sc, access.principal)
    rows = await runner_rows(sc.sessions, lease_s=sc.settings.lease_s, visible=visible)
    return [row.as_json() for row in rows]


@router.get("/api/v1/outbox", dependencies=policy(SERVER_ADMIN))
async def list_outbox(
    sc: Ctx, status: Annotated[str, Query(max_length=20)] = "dead", limit: int = 100
) -> list[dict[str, Any]]:
    return await outbox_listing(sc, status=status, limit=clamp(limit, MAX_OUTBOX))


@router.get("/api/v1/jobs/{job_id}/artifacts/{path:path}", dependencies=policy(READ_JOB))
async def get_artifact(job_id: RowId, path: str, sc: Ctx) -> FileResponse:
    file = await artifact_download(sc, job_id, path)
    # A download, never a page: an HTML artifact from a pull request must not run here.
    return FileResponse(
        file,
        media_type="application/octet-stream",
        filename=file.name,
        headers={"X-Content-Type-Options": "nosniff"},
    )
