"""The runners page (issue 13, item 6): each runner's state and last heartbeat, labels,
what it can run, slots in use, the jobs it holds, and each GPU with its model, memory,
health and the job holding it; administrators drain, resume, revoke and remove runners from it
(the same as `labci runners drain|resume|revoke|remove`).

Runners serve every repository, so the page is for people signed in; a job of a repository
the reader cannot read is shown as held, without its name or link."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ..api.deps import Ctx
from ..auth.permissions import readable_repository_ids
from ..auth.policies import SERVER_ADMIN, SIGNED_IN, Access
from ..errors import NotFound
from ..queue import kick_scheduler
from ..scheduling.runner_listing import runner_rows
from ..scheduling.runners import drain_runner, revoke_runner_with_acl
from .runs_list import ago
from .templating import render

router = APIRouter()


@router.get("/runners", response_class=HTMLResponse)
async def runners_page(
    request: Request, sc: Ctx, access: Annotated[Access, Depends(SIGNED_IN)]
) -> HTMLResponse:
    now = time.time()
    rows = [
        {
            **asdict(row),
            "jobs": row.jobs,
            "gpus": row.gpus,
            "executors": ", ".join(row.executors) or "—",
            "seen": ago(row.last_heartbeat_at, now) if row.last_heartbeat_at else "never",
            "drained_ago": ago(row.drained_at, now) if row.drained_at else None,
            "drained_by": row.drained_by if row.drained_at is not None else None,
            "driver": row.driver_version,
            "cuda": row.cuda_version,
            "size": row.size(),
        }
        for row in await runner_rows(
            sc.sessions,
            lease_s=sc.settings.lease_s,
            visible=await readable_repository_ids(sc, access.principal),
        )
    ]
    return render(
        request,
        "runners.html",
        access.principal,
        title="Runners",
        runners=rows,
        admin=access.principal.is_admin,
    )


ACTIONS = ("drain", "resume", "revoke", "remove")


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
    if action in ("revoke", "remove"):
        await revoke_runner_with_acl(sc.settings, sc.sessions, name, remove=action == "remove")
        await kick_scheduler(sc.redis)  # jobs only it could take fail now
    else:
        _, released = await drain_runner(
            sc.sessions, name, drain=action == "drain", by=access.principal.name
        )
        if released:
            await kick_scheduler(sc.redis)  # its queued jobs go to other runners now
    return RedirectResponse("/runners", status_code=303)
