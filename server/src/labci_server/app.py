"""The FastAPI application: webhooks, the runner API, the JSON API and the web pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

from .api import operator as operator_routes
from .api import runners as runner_routes
from .api import webhooks as webhook_routes
from .api.deps import get_context
from .context import ServerContext
from .db.engine import make_engine, make_sessionmaker
from .errors import LabciError
from .http import install_guards
from .queue import connect
from .results.artifacts import artifact_download
from .results.views import outbox_listing, run_detail, run_overview
from .settings import Settings
from .web import badge_routes, pages

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    if settings.redis_url is None:
        raise LabciError("LABCI_REDIS_URL is not set")
    redis_url = settings.redis_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        redis = await connect(redis_url)
        app.state.context = ServerContext(
            settings=settings, sessions=make_sessionmaker(engine), redis=redis, forges={}
        )
        try:
            yield
        finally:
            await redis.aclose()
            await engine.dispose()

    # The API docs page is served by `http.docs`, from assets of our own (no CDN).
    app = FastAPI(title="labci", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(webhook_routes.router)
    app.include_router(operator_routes.router)
    app.include_router(runner_routes.router)
    app.include_router(pages.router)
    app.include_router(badge_routes.router)
    _add_json_api(app)
    _add_error_handlers(app)
    install_guards(app, settings)
    return app


def _add_json_api(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/runs")
    async def list_runs(
        request: Request, commit: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return await run_overview(get_context(request), limit=min(limit, 500), commit_sha=commit)

    @app.get("/api/v1/runs/{run_id}")
    async def get_run(run_id: int, request: Request) -> dict[str, Any]:
        return await run_detail(get_context(request), run_id)

    @app.get("/api/v1/outbox")
    async def list_outbox(
        request: Request, status: str = "dead", limit: int = 100
    ) -> list[dict[str, Any]]:
        return await outbox_listing(
            get_context(request), status=status, limit=max(1, min(limit, 1000))
        )

    @app.get("/api/v1/jobs/{job_id}/artifacts/{path:path}")
    async def get_artifact(job_id: int, path: str, request: Request) -> FileResponse:
        file = await artifact_download(get_context(request), job_id, path)
        # A download, never a page: an HTML artifact from a pull request must not run here.
        return FileResponse(
            file,
            media_type="application/octet-stream",
            filename=file.name,
            headers={"X-Content-Type-Options": "nosniff"},
        )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LabciError)
    async def labci_error(_request: Request, exc: LabciError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def storage_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # 5xx, never 2xx: the forge must redeliver what we could not store.
        log.error("storage unavailable: %s", exc)
        return JSONResponse({"error": "storage unavailable, retry later"}, status_code=503)
