"""HTTP hardening shared by every route: body caps, read timeouts, connection limits,
parameter guards and security headers (see `install_guards` and `serve_options`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..settings import Settings


def install_guards(app: FastAPI, settings: Settings) -> None:
    """Add the middleware that caps and guards every request."""


def serve_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` beyond the app, host and port."""
    return {}
