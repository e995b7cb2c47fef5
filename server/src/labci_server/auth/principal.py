"""Who is calling: a personal API token (`Authorization: Bearer`), a signed-in session
(a signed cookie), or nobody.

A bearer token that is not valid is a 401, never a silent fall-back to anonymous: a script
with an expired token should say so rather than see only public repositories.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..context import ServerContext
from ..db.models import User
from ..db.queries import people
from ..tokens import bearer_value
from .api_tokens import authenticate_token, note_use

SESSION_USER = "uid"


@dataclass(frozen=True)
class Principal:
    user: User | None = None
    # The most this caller may do, whatever its user may: a token's scope; "admin" for a
    # session (the person themself).
    scope: str = "admin"
    via: str = "anonymous"  # anonymous | session | token
    token_id: int | None = None

    @property
    def signed_in(self) -> bool:
        return self.user is not None

    @property
    def is_admin(self) -> bool:
        """A server administrator acting with full power (not through a narrower token)."""
        return self.user is not None and self.user.is_admin and self.scope == "admin"

    @property
    def name(self) -> str:
        return self.user.login if self.user else "anonymous"


ANONYMOUS = Principal()


def bearer_of(request: Request) -> str | None:
    return bearer_value(request.headers.get("authorization"))


async def identify(sc: ServerContext, request: Request) -> Principal:
    """The caller of `request`, worked out once per request."""
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    principal = await _identify(sc, request)
    request.state.principal = principal
    return principal


async def _identify(sc: ServerContext, request: Request) -> Principal:
    secret = bearer_of(request)
    if secret is not None:
        # A read, not a write transaction: every API call comes through here (on SQLite a
        # write transaction takes the database's one write lock).
        async with sc.sessions() as session:
            user, token = await authenticate_token(session, secret)
        await note_use(sc.sessions, token)
        return Principal(user=user, scope=token.scope, via="token", token_id=token.id)
    user_id = request.session.get(SESSION_USER) if "session" in request.scope else None
    if not isinstance(user_id, int):
        return ANONYMOUS
    async with sc.sessions() as session:
        user = await people.get_user(session, user_id)
    if user is None or user.disabled:
        request.session.clear()
        return ANONYMOUS
    return Principal(user=user, scope="admin", via="session")
