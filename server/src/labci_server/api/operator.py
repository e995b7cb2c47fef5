"""Operator actions: manual runs and cancelling a run."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..results.cancel import cancel_run_by_id
from ..webhooks.dispatch import store_dispatch, to_dispatch_event
from ..webhooks.gitlocal import verify_local
from .deps import Ctx
from .webhooks import read_capped, stored_answer, webhook_secret

router = APIRouter()


@router.post("/api/v1/dispatches")
async def dispatch(request: Request, sc: Ctx) -> JSONResponse:
    """A manual run, sent (and checked) by `labci dispatch`."""
    body = await read_capped(request)
    data = verify_local(request.headers.get("x-hub-signature-256"), body, webhook_secret(sc))
    stored = await store_dispatch(sc, to_dispatch_event(data))
    return JSONResponse(stored_answer(stored), status_code=202)


@router.post("/api/v1/runs/{run_id}/cancel")
async def cancel(run_id: int, request: Request, sc: Ctx) -> JSONResponse:
    """An operator stops a run (`labci cancel`); signed like the other operator calls."""
    body = await read_capped(request)
    data = verify_local(request.headers.get("x-hub-signature-256"), body, webhook_secret(sc))
    reason = str(data.get("reason") or "cancelled by an operator")[:200]
    stopped = await cancel_run_by_id(sc, run_id, reason=reason)
    return JSONResponse({"run_id": run_id, "cancelled_jobs": stopped})
