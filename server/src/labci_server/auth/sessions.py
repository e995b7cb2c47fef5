"""Sign-in sessions and CSRF protection.

Sessions are Starlette's signed cookies (itsdangerous): HttpOnly, SameSite=Lax, Secure
when LABCI_PUBLIC_URL is https, 14 days. The key is LABCI_SESSION_SECRET, else one the
server makes on first start and keeps in the database (so every server process and every
restart signs alike).

CSRF: each session holds a random token; a state-changing request made with a session
cookie must echo it (form field `csrf_token` or header `X-CSRF-Token`). This is the
synchronizer-token pattern, written here rather than taken from asgi-csrf or
starlette-csrf: the first answers 500 on a malformed multipart or non-UTF-8 form body,
the second reads only a header, so plain HTML forms could not use it. Requests with a
bearer token carry no ambient credential and need no CSRF token.
"""

from __future__ import annotations

import secrets
from typing import Final

from fastapi import Request
from pydantic import SecretStr

from ..db.engine import make_engine, make_sessionmaker
from ..db.queries import people
from ..errors import ConfigError, Forbidden
from ..settings import Settings
from .principal import Principal

COOKIE_NAME: Final = "labci_session"
MAX_AGE_S: Final = 14 * 24 * 3600
CSRF_KEY: Final = "csrf"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
SAFE_METHODS: Final = ("GET", "HEAD", "OPTIONS")
KEY_NAME: Final = "session-signing-key"


def session_middleware_options(settings: Settings) -> dict[str, object]:
    if settings.session_secret is None:
        raise ConfigError(
            "LABCI_SESSION_SECRET is not set (`labci serve` makes one and keeps it in the database)"
        )
    return {
        "secret_key": settings.session_secret.get_secret_value(),
        "session_cookie": COOKIE_NAME,
        "max_age": MAX_AGE_S,
        "same_site": "lax",
        "https_only": settings.public_url.startswith("https://"),
    }


async def with_session_secret(settings: Settings) -> Settings:
    """`settings` with a session key: the configured one, else the database's own."""
    if settings.session_secret is not None:
        return settings
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            key = await people.server_key(session, KEY_NAME, secrets.token_urlsafe(48))
    finally:
        await engine.dispose()
    return settings.model_copy(update={"session_secret": SecretStr(key)})


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (forms embed it)."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


async def check_csrf(request: Request, principal: Principal) -> None:
    """Refuse a state-changing session request that does not echo the session's token."""
    if principal.via != "session" or request.method in SAFE_METHODS:
        return
    expected = request.session.get(CSRF_KEY)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and _is_form(request):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if (
        not isinstance(expected, str)
        or not sent
        or not secrets.compare_digest(sent.encode(), expected.encode())
    ):
        raise Forbidden("CSRF token missing or wrong: reload the page and try again")


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")
