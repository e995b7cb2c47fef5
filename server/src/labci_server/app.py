"""The FastAPI application: webhooks, the runner API, the JSON API and the web pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from .api import account as account_routes
from .api import operations as operations_routes
from .api import operator as operator_routes
from .api import reads as read_routes
from .api import runners as runner_routes
from .api import secrets as secret_routes
from .api import webhooks as webhook_routes
from .auth.sessions import session_middleware_options
from .context import ServerContext
from .db.engine import make_engine, make_sessionmaker
from .errors import LabciError
from .forge.registry import build_forges
from .http import install_guards
from .operations.metrics import WebhookTimer
from .queue import connect
from .settings import Settings
from .web import account as account_pages
from .web import (
    badge_routes,
    compare_page,
    github_login,
    log_stream,
    metrics_page,
    pull_requests,
    run_page,
    runners_page,
    runs_list,
)
from .web.static_files import mount_static
from .web.templating import error_page

log = logging.getLogger(__name__)

FORGE_TIMEOUT_S = 30.0


def create_app(settings: Settings) -> FastAPI:
    if settings.redis_url is None:
        raise LabciError("LABCI_REDIS_URL is not set")
    redis_url = settings.redis_url
    session_options = session_middleware_options(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        redis = await connect(redis_url)
        # The API asks GitHub too: who may read a repository (the collaborator permission).
        http = httpx.AsyncClient(timeout=httpx.Timeout(FORGE_TIMEOUT_S))
        sessions = make_sessionmaker(engine)
        app.state.context = ServerContext(
            settings=settings,
            sessions=sessions,
            redis=redis,
            forges=build_forges(settings, sessions, http),
        )
        try:
            yield
        finally:
            await http.aclose()
            await redis.aclose()
            await engine.dispose()

    # The API docs page is served by `http.docs`, from assets of our own (no CDN).
    app = FastAPI(title="labci", lifespan=lifespan, docs_url=None, redoc_url=None)
    for router in (
        read_routes.router,
        operations_routes.router,
        webhook_routes.router,
        operator_routes.router,
        runner_routes.router,
        account_routes.router,
        secret_routes.router,
        account_pages.router,
        github_login.router,
        runs_list.router,
        pull_requests.router,
        log_stream.router,
        runners_page.router,
        metrics_page.router,
        compare_page.router,
        run_page.router,
        badge_routes.router,
    ):
        app.include_router(router)
    mount_static(app)
    _add_error_handlers(app)
    app.add_middleware(SessionMiddleware, **session_options)
    install_guards(app, settings)
    app.add_middleware(WebhookTimer)  # outermost: the time the forge waits
    return app


def wants_page(request: Request) -> bool:
    """A browser navigating (GET, HTML first), not a script or the API."""
    return (
        request.method == "GET"
        and not request.url.path.startswith("/api/")
        and "authorization" not in request.headers
        and "text/html" in request.headers.get("accept", "")
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LabciError)
    async def labci_error(request: Request, exc: LabciError) -> Response:
        if exc.status_code == 401 and wants_page(request):
            # A person's browser on a page that needs sign-in: to the sign-in page and back.
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/login?next={target}", status_code=303)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if wants_page(request):
            return error_page(request, exc.status_code, str(exc), headers=headers)
        return JSONResponse({"error": str(exc)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own errors (no such route, method not allowed): a page for browsers,
        FastAPI's JSON for everyone else."""
        if wants_page(request):
            return error_page(request, exc.status_code, str(exc.detail), headers=exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def storage_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # 5xx, never 2xx: the forge must redeliver what we could not store.
        log.error("storage unavailable: %s", exc)
        return JSONResponse({"error": "storage unavailable, retry later"}, status_code=503)
