"""Signing in with GitHub: the OAuth web flow, done by Authlib's Starlette client.

Why Authlib's Starlette integration rather than its bare `AsyncOAuth2Client`: it keeps the
flow's `state` (and the redirect URI) in the signed session cookie when the flow starts, and
on the callback refuses a `state` this browser was not given and turns GitHub's `error=` into
an exception: the parts of the flow that must not be hand-written. It opens a short-lived
HTTP client for each call, which sign-ins (rare) can afford.

labci asks GitHub for no scope: a token without one reads public information only, and who
the person is (`GET /user`: id and login) is all labci wants. That token is used for that
one request and dropped. What the person may do on a repository comes from the server's
own credential (`permissions.py`, the collaborator-permission API).

A GitHub user is known by GitHub's numeric id: a renamed account stays the same labci user
(its login follows the rename at its next sign-in), and an old name that GitHub gave to
someone else is moved aside (see `people.release_github_login`).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Final

import httpx
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import User
from ..db.queries import people
from ..errors import BadRequest, Forbidden, ForgeUnavailable, LabciError, NotFound
from ..forge.github import USER_AGENT
from ..settings import Settings
from .accounts import check_login

with warnings.catch_warnings():
    # Authlib 1.9 prefers the `httpx2` package and warns once, on import, when it falls back
    # to `httpx` (which the rest of labci uses); the fallback is what we want. Its warnings
    # module adds an "always" filter of its own when imported, so ours goes in after it.
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message=".*httpx2.*", category=DeprecationWarning)
    from authlib.integrations.base_client.errors import MismatchingStateError
    from authlib.integrations.starlette_client import OAuth, OAuthError
    from authlib.integrations.starlette_client.apps import StarletteOAuth2App

Sessions = async_sessionmaker[AsyncSession]

CALLBACK_PATH: Final = "/login/github/callback"
NEXT_KEY: Final = "github_next"  # where to go once signed in (a safe path, see web/account)
TIMEOUT_S: Final = 15.0
API_HEADERS: Final = {
    "accept": "application/vnd.github+json",
    "x-github-api-version": "2022-11-28",
    "user-agent": USER_AGENT,
}


def is_enabled(settings: Settings) -> bool:
    return bool(settings.github_oauth_client_id) and settings.github_oauth_client_secret is not None


def callback_url(settings: Settings) -> str:
    return settings.public_url.rstrip("/") + CALLBACK_PATH


def github_client(settings: Settings) -> StarletteOAuth2App:
    """Authlib's client for the server's GitHub OAuth App (NotFound when none is set up)."""
    secret = settings.github_oauth_client_secret
    if not settings.github_oauth_client_id or secret is None:
        raise NotFound("signing in with GitHub is not set up on this server")
    web = settings.github_web_url.rstrip("/")
    client: StarletteOAuth2App = OAuth().register(
        name="github",
        client_id=settings.github_oauth_client_id,
        client_secret=secret.get_secret_value(),
        authorize_url=f"{web}/login/oauth/authorize",
        access_token_url=f"{web}/login/oauth/access_token",
        api_base_url=settings.github_api_url.rstrip("/") + "/",
        # GitHub documents the client's id and secret as parameters of the token request.
        client_kwargs={"token_endpoint_auth_method": "client_secret_post", "timeout": TIMEOUT_S},
    )
    return client


async def start_sign_in(settings: Settings, request: Request) -> Response:
    """The redirect to GitHub's authorization page (the `state` is kept in the session)."""
    response: Response = await github_client(settings).authorize_redirect(
        request, callback_url(settings)
    )
    return response


async def finish_sign_in(settings: Settings, sessions: Sessions, request: Request) -> User:
    """The labci user of the GitHub account that authorized the callback's `code`.

    BadRequest: a `state` this browser was not given, or GitHub refused the code;
    Forbidden: the person declined, or their labci account is disabled;
    ForgeUnavailable: GitHub could not be reached (try again).
    """
    login, forge_user_id = await github_identity(github_client(settings), request)
    return await github_person(sessions, login=login, forge_user_id=forge_user_id)


async def github_identity(client: StarletteOAuth2App, request: Request) -> tuple[str, int]:
    """(login, numeric id) of whoever authorized the callback's code."""
    try:
        token = await client.authorize_access_token(request)
        response = await client.get("user", token=token, headers=API_HEADERS)
    except MismatchingStateError as exc:
        raise BadRequest(
            "this sign-in was not started from this browser, or has expired: sign in again"
        ) from exc
    except OAuthError as exc:
        if exc.error == "access_denied":
            raise Forbidden(
                "you declined to let labci see your GitHub identity, so nobody is signed in"
            ) from exc
        raise BadRequest(f"GitHub refused the sign-in ({exc.error}): sign in again") from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise ForgeUnavailable(
            f"GitHub could not be asked who you are ({type(exc).__name__}): try again"
        ) from exc
    return _identity(response)


def _identity(response: httpx.Response) -> tuple[str, int]:
    if response.status_code != 200:
        raise ForgeUnavailable(f"GitHub answered {response.status_code} to GET /user: try again")
    try:
        found: Any = response.json()
    except ValueError as exc:
        raise ForgeUnavailable("GitHub's answer to GET /user is not JSON: try again") from exc
    login = found.get("login") if isinstance(found, dict) else None
    forge_user_id = found.get("id") if isinstance(found, dict) else None
    if not isinstance(login, str) or type(forge_user_id) is not int or forge_user_id < 1:
        raise ForgeUnavailable("GitHub's answer to GET /user has no login and id: try again")
    check_login(login)
    return login, forge_user_id


async def github_person(sessions: Sessions, *, login: str, forge_user_id: int) -> User:
    """Find or create the labci user of GitHub account `forge_user_id`, now called `login`."""
    async with sessions() as session, session.begin():
        await people.release_github_login(session, login=login, forge_user_id=forge_user_id)
        user = await people.user_by_forge_id(
            session, provider="github", forge_user_id=forge_user_id
        )
        if user is None:
            user = await people.add_github_user(session, login=login, forge_user_id=forge_user_id)
        if user.disabled:
            raise Forbidden(f"the labci account of GitHub user {login} is disabled")
        user.login = login
        user.last_seen_at = time.time()
        session.add(user)
    return user


def page_status(exc: LabciError) -> int:
    """The status of the sign-in page that explains `exc`: GitHub out of reach is a 503."""
    return 503 if isinstance(exc, ForgeUnavailable) else exc.status_code
