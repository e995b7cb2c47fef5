"""The pages' Jinja2 environment (autoescaped: everything a pull request controls is text,
never markup) and `render`, which every page goes through: the layout needs the signed-in
user and the session's CSRF token for its sign-out form."""

from __future__ import annotations

import time
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..auth.principal import Principal
from ..auth.sessions import csrf_token
from .static_files import static_url
from .terminal import as_terminal_shows, clock

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _when(ts: float | None, never: str = "—") -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else never


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["terminal"] = as_terminal_shows
TEMPLATES.env.filters["clock"] = clock
TEMPLATES.env.globals["static_url"] = static_url


def render(request: Request, name: str, principal: Principal, **values: Any) -> HTMLResponse:
    context = {"title": values.pop("title", "labci"), "user": principal.user, **values}
    context["csrf"] = csrf_token(request)
    return TEMPLATES.TemplateResponse(request, name, context, status_code=values.get("status", 200))


def error_page(
    request: Request, status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """An error as a page for a browser (the JSON API keeps answering JSON)."""
    context = {
        "title": f"{status} {_reason(status)}",
        "status": status,
        "reason": _reason(status),
        "message": message,
        "error_page": True,
        "user": None,
        "csrf": "",
    }
    return TEMPLATES.TemplateResponse(
        request, "error.html", context, status_code=status, headers=dict(headers or {})
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
