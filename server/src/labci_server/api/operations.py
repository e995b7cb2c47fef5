"""Probes and metrics for whoever runs labci: `/readyz` and `/metrics` (`/healthz` is in
reads.py). Both are public like `/healthz`: they show counts, never a repository's name;
keep them off the public side of the reverse proxy all the same (docs/operations.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..auth.policies import PUBLIC, policy
from ..operations.health import database_snapshot, readiness
from ..operations.metrics import exposition
from .deps import Ctx

router = APIRouter()


@router.get("/readyz", dependencies=policy(PUBLIC))
async def readyz(sc: Ctx) -> JSONResponse:
    """200 when the database and Redis answer; 503 naming what did not."""
    answers = await readiness(sc)
    ready = all(answer == "ok" for answer in answers.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", **answers}, status_code=200 if ready else 503
    )


@router.get("/metrics", dependencies=policy(PUBLIC))
async def metrics(sc: Ctx) -> Response:
    """Prometheus text format: this process's metrics and the database's (see
    operations/metrics.py for which is which)."""
    return Response(exposition(await database_snapshot(sc)), media_type=CONTENT_TYPE_LATEST)
