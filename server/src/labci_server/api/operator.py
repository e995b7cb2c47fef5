"""Operator actions: manual runs, cancelling a run, approving a fork's run.

Both take a personal API token (or a session with its CSRF token) with write permission on
the repository acted on; the run a cancel names is what is authorised, so a request made for
one run can never act on another.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..auth.policies import WRITE_IN_BODY, WRITE_RUN, Access, require_level
from ..db.queries.repositories import find_repository
from ..errors import BadRequest, NotFound
from ..planning.approval import approve_run
from ..results.cancel import cancel_run_by_id
from ..webhooks.dispatch import store_dispatch, to_dispatch_event
from .bodies import json_object
from .deps import Ctx, RowId
from .webhooks import stored_answer

router = APIRouter(prefix="/api/v1")

MAX_REASON_CHARS = 200


async def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object (the HTTP guards capped its size); `{}` for an empty one
    where it is optional."""
    body = await request.body()
    if not body.strip() and not required:
        return {}
    return json_object(body)


@router.post("/dispatches", status_code=202)
async def dispatch(
    request: Request, sc: Ctx, access: Annotated[Access, Depends(WRITE_IN_BODY)]
) -> JSONResponse:
    """A manual run, sent (and checked) by `labci dispatch`."""
    new = to_dispatch_event(await json_body(request))
    async with sc.sessions() as session:
        repo = await find_repository(session, provider=new.provider, full_name=new.repo_full_name)
    if repo is None:
        raise NotFound(f"repository {new.repo_full_name!r} is not known to labci")
    await require_level(sc, request, access.principal, repo, "write")
    stored = await store_dispatch(sc, new)
    return JSONResponse({**stored_answer(stored), "by": access.principal.name}, status_code=202)


@router.post("/runs/{run_id}/cancel")
async def cancel(
    run_id: RowId, request: Request, sc: Ctx, access: Annotated[Access, Depends(WRITE_RUN)]
) -> JSONResponse:
    """Stop a run (`labci cancel`): its unfinished jobs are cancelled."""
    data = await json_body(request, required=False)
    given = data.get("reason")
    if given is not None and not isinstance(given, str):
        raise BadRequest("reason must be a string")
    reason = f"stopped by {access.principal.name}"
    if given and given.strip():
        reason += f": {given.strip()[:MAX_REASON_CHARS]}"
    stopped = await cancel_run_by_id(sc, run_id, reason=reason)
    return JSONResponse({"run_id": run_id, "cancelled_jobs": stopped, "reason": reason})


@router.post("/runs/{run_id}/approve")
async def approve(
    run_id: RowId, sc: Ctx, access: Annotated[Access, Depends(WRITE_RUN)]
) -> JSONResponse:
    """Let a fork's code run (`labci approve`): every run held at the run's commit starts.
    The approval names that commit only; a new push waits for a new one."""
    released = await approve_run(sc, run_id, by=access.principal.name, via="api")
    return JSONResponse({"run_id": run_id, "approved_runs": released, "by": access.principal.name})
