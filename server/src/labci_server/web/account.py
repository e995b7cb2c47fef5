"""Sign-in, sign-out, and one's account page with personal API tokens (Jinja2 templates,
autoescaped). Every form carries the session's CSRF token."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.bodies import refuse_nul
from ..api.deps import Ctx, RowId
from ..auth.accounts import new_token_for, revoke_token, sign_in_with_password, tokens_of
from ..auth.api_tokens import TokenRequest
from ..auth.policies import PUBLIC, SIGNED_IN, Access, limit_writes, policy
from ..auth.principal import ANONYMOUS, SESSION_USER, Principal, identify
from ..auth.sessions import check_csrf, csrf_token
from ..errors import LabciError
from .templating import render

router = APIRouter()

NEW_TOKEN_KEY = "new_token"  # noqa: S105 — a session key name


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc or "\\" in target else target


def sign_in_page(
    request: Request,
    sc: Ctx,
    next: str | None,
    *,
    error: LabciError | None = None,
    status: int | None = None,
) -> HTMLResponse:
    """The sign-in page; with `error`, its message and status (or `status`)."""
    page = render(
        request,
        "login.html",
        ANONYMOUS,
        title="Sign in",
        next=safe_next(next),
        github=sc.settings.github_oauth_client_id is not None,
        error=str(error) if error else None,
    )
    if error is not None:
        page.status_code = status or error.status_code
    return page


@router.get("/login", response_class=HTMLResponse, dependencies=policy(PUBLIC))
async def login_page(request: Request, sc: Ctx, next: str | None = None) -> HTMLResponse:
    return sign_in_page(request, sc, next)


@router.post("/login", dependencies=policy(PUBLIC))
async def login(
    request: Request,
    sc: Ctx,
    login: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    # The login form is CSRF-protected too: nobody may sign a browser into their account.
    await check_csrf(request, Principal(via="session"))
    await limit_writes(request)  # guessing passwords costs a place in the write budget
    refuse_nul({"login": login, "password": password, "next": next}, "form")
    try:
        user = await sign_in_with_password(sc.sessions, login=login, password=password)
    except LabciError as exc:
        return sign_in_page(request, sc, next, error=exc)
    start_session(request, user.id or 0)
    return RedirectResponse(safe_next(next), status_code=303)


def start_session(request: Request, user_id: int) -> None:
    """A fresh session for `user_id` (a new CSRF token too: no fixation across sign-in)."""
    request.session.clear()
    request.session[SESSION_USER] = user_id
    csrf_token(request)


@router.post("/logout", dependencies=policy(PUBLIC))
async def logout(request: Request, sc: Ctx) -> Response:
    principal = await identify(sc, request)
    if principal.via == "session":  # a bearer token has no session to end
        await check_csrf(request, principal)
        request.session.clear()
    return RedirectResponse("/", status_code=303)


@router.get("/account", response_class=HTMLResponse)
async def account_page(
    request: Request, sc: Ctx, access: Annotated[Access, Depends(SIGNED_IN)]
) -> HTMLResponse:
    user = access.principal.user
    tokens = await tokens_of(sc.sessions, user) if user else []
    new_token = request.session.pop(NEW_TOKEN_KEY, None)  # shown once
    page = render(
        request,
        "account.html",
        access.principal,
        title="Account",
        tokens=tokens,
        new_token=new_token,
    )
    page.headers["Cache-Control"] = "no-store"  # it may hold a token's secret
    return page


@router.post("/account/tokens")
async def make_token(
    request: Request,
    sc: Ctx,
    access: Annotated[Access, Depends(SIGNED_IN)],
    name: Annotated[str, Form(min_length=1, max_length=100)],
    scope: Annotated[str, Form(max_length=10)] = "write",
    expires_in_days: Annotated[int, Form(ge=1, le=366)] = 90,
) -> Response:
    """Make the token, then redirect (post/redirect/get): reloading the page that shows it
    must not make another. The secret rides in the session until that page shows it once."""
    await check_csrf(request, access.principal)
    refuse_nul({"name": name, "scope": scope}, "form")
    user = access.principal.user
    if user is None:
        raise LabciError("no user")
    made = await new_token_for(sc.sessions, user, TokenRequest(name, scope, expires_in_days))
    request.session[NEW_TOKEN_KEY] = made["token"]
    return RedirectResponse("/account", status_code=303)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke(
    token_id: RowId, request: Request, sc: Ctx, access: Annotated[Access, Depends(SIGNED_IN)]
) -> Response:
    await check_csrf(request, access.principal)
    await revoke_token(sc.sessions, access.principal.user, token_id)
    return RedirectResponse("/account", status_code=303)
