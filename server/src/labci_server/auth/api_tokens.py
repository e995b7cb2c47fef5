"""Personal API tokens: `Authorization: Bearer labci_pat_…` for the CLI and scripts.

A token is shown once, when it is made; only its SHA-256 is stored. It carries a scope
(read, write or admin) that caps what its user may do with it, an expiry, and can be
revoked. A token of a disabled user, an expired or a revoked one answers 401.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import ApiToken, User
from ..db.queries import people
from ..errors import BadRequest, Unauthorized
from ..tokens import hash_token, new_token
from .levels import SCOPES

TOKEN_PREFIX = "labci_pat"  # noqa: S105 — a prefix, for secret scanners
DEFAULT_DAYS = 90
MAX_DAYS = 366
MAX_NAME_CHARS = 100
# Writing `last_used_at` on every call would make every read a write.
TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class TokenRequest:
    name: str
    scope: str = "write"
    expires_in_days: int | None = DEFAULT_DAYS  # None: never expires


def check_request(request: TokenRequest) -> None:
    if not request.name.strip() or len(request.name) > MAX_NAME_CHARS:
        raise BadRequest(f"a token's name has 1 to {MAX_NAME_CHARS} characters")
    if request.scope not in SCOPES:
        raise BadRequest(f"scope must be one of {', '.join(SCOPES)}, not {request.scope!r}")
    days = request.expires_in_days
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"a token expires in 1 to {MAX_DAYS} days (or never)")


async def issue_token(
    session: AsyncSession, user: User, request: TokenRequest
) -> tuple[str, ApiToken]:
    """A new token for `user`: the secret (shown once) and its stored row."""
    check_request(request)
    secret = new_token(TOKEN_PREFIX)
    now = time.time()
    days = request.expires_in_days
    row = await people.add_token(
        session,
        ApiToken(
            user_id=user.id or 0,
            name=request.name.strip(),
            token_hash=hash_token(secret),
            scope=request.scope,
            created_at=now,
            expires_at=None if days is None else now + days * 86400,
        ),
    )
    return secret, row


async def authenticate_token(session: AsyncSession, secret: str) -> tuple[User, ApiToken]:
    """The user and token behind `secret`, or Unauthorized (one message for every reason, so
    a caller learns nothing about which tokens exist)."""
    refused = Unauthorized("invalid, expired or revoked API token")
    if not secret.startswith(TOKEN_PREFIX + "_"):
        raise refused
    token = await people.token_by_hash(session, hash_token(secret))
    now = time.time()
    if token is None or token.revoked_at is not None:
        raise refused
    if token.expires_at is not None and token.expires_at <= now:
        raise refused
    user = await people.get_user(session, token.user_id)
    if user is None or user.disabled:
        raise refused
    return user, token


async def note_use(sessions: Any, token: ApiToken) -> None:
    """Keep `last_used_at` roughly current: a write at most every TOUCH_EVERY_S a token."""
    now = time.time()
    if token.last_used_at is not None and now - token.last_used_at <= TOUCH_EVERY_S:
        return
    async with sessions() as session, session.begin():
        stored = await people.get_token(session, token.id or 0)
        if stored is not None:
            await people.touch_token(session, stored, now)


def describe_token(token: ApiToken) -> dict[str, object]:
    """A token as listed: never its secret nor its hash."""
    return token.model_dump(exclude={"token_hash"})
