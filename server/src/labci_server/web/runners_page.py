"""The runners page (issue 13, item 6): each runner's state and last heartbeat, labels,
what it can run, slots in use, the jobs it holds, and each GPU with its model, memory,
health and the job holding it; administrators drain, resume and revoke runners from it
(the same as `labci runners drain|resume|revoke`).

Runners serve every repository, so the page is for people signed in; a job of a repository
the reader cannot read is shown as held, without its name or link."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ..api.deps import Ctx
from ..auth.permissions import readable_repository_ids
from ..auth.policies import SERVER_ADMIN, SIGNED_IN, Access
from ..db.models import Job, Runner
from ..db.queries.jobs import active_jobs
from ..db.queries.runners import all_runners
from ..db.queries.runs import runs_by_id
from ..errors import NotFound
from ..queue import kick_scheduler
from ..scheduling.runners import drain_runner, revoke_runner_with_acl
from .runs_list import ago
from .templating import render

router = APIRouter()


def runner_state(runner: Runner, now: float, lease_s: float) -> str:
    if runner.revoked_at is not None:
        return "revoked"
    seen = runner.last_heartbeat_at
    # Offline after a lease without a heartbeat: its jobs are reaped then.
    return "online" if seen is not None and now - seen <= lease_s else "offline"


def executors(runner: Runner) -> str:
    kinds = [name for name, able in sorted((runner.capabilities or {}).items()) if able]
    return ", ".join({"host": "process", "container": "docker"}.get(k, k) for k in kinds) or "—"


@router.get("/runners", response_class=HTMLResponse)
async def runners_page(
    request: Request, sc: Ctx, access: Annotated[Access, Depends(SIGNED_IN)]
) -> HTMLResponse:
    visible = await readable_repository_ids(sc, access.principal)
    now = time.time()
    async with sc.sessions() as session:
        runners = await all_runners(session)
        held = await active_jobs(session)
        runs = await runs_by_id(session, {job.run_id for job in held})
    jobs_of: dict[int, list[Job]] = {}
    for job in held:
        if job.runner_id is not None:
            jobs_of.setdefault(job.runner_id, []).append(job)

    def shown(job: Job) -> dict[str, Any]:
        run = runs.get(job.run_id)
        readable = run is not None and (visible is None or run.repository_id in visible)
        return {
            "id": job.id,
            "key": job.job_key if readable else None,
            "run_id": job.run_id if readable else None,
            "state": job.state,
        }

    rows = []
    for runner in runners:
        mine = jobs_of.get(runner.id or 0, [])
        holder = {gpu: shown(job) for job in mine for gpu in job.gpu_ids or []}
        inventory = runner.gpus or {}
        rows.append(
            {
                "name": runner.name,
                "state": runner_state(runner, now, sc.settings.lease_s),
                "drained_by": runner.drained_by if runner.drained_at is not None else None,
                "drained_ago": ago(runner.drained_at, now) if runner.drained_at else None,
                "seen": ago(runner.last_heartbeat_at, now) if runner.last_heartbeat_at else "never",
                "labels": runner.labels,
                "executors": executors(runner),
                "version": runner.version,
                "slots": runner.slots,
                "busy": len(mine),
                "jobs": [shown(job) for job in mine],
                "gpus": [
                    {**gpu, "job": holder.get(str(gpu.get("id")))}
                    for gpu in inventory.get("gpus") or []
                ],
                "driver": inventory.get("driver_version"),
                "cuda": inventory.get("cuda_version"),
            }
        )
    return render(
        request,
        "runners.html",
        access.principal,
        title="Runners",
        runners=rows,
        admin=access.principal.is_admin,
    )


ACTIONS = ("drain", "resume", "revoke")


@router.post("/runners/{action}")
async def runner_action(
    action: str,
    sc: Ctx,
    access: Annotated[Access, Depends(SERVER_ADMIN)],
    name: Annotated[str, Form(min_length=1, max_length=200)],
) -> RedirectResponse:
    """The runners page's buttons (a form with the session's CSRF token), for administrators."""
    if action not in ACTIONS:
        raise NotFound(f"no runner action {action!r}: {', '.join(ACTIONS)}")
    if action == "revoke":
        await revoke_runner_with_acl(sc.settings, sc.sessions, name)
    else:
        _, released = await drain_runner(
            sc.sessions, name, drain=action == "drain", by=access.principal.name
        )
        if released:
            await kick_scheduler(sc.redis)  # its queued jobs go to other runners now
    return RedirectResponse("/runners", status_code=303)
