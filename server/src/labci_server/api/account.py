"""Who am I, and personal API tokens: made (with a session, a token, or a local account's
password — what `labci login` does), listed, revoked."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, ValidationError

from ..auth.accounts import new_token_for, revoke_token, sign_in_with_password, tokens_of
from ..auth.api_tokens import DEFAULT_DAYS, TokenRequest
from ..auth.levels import at_least
from ..auth.policies import SIGNED_IN, Access, Declared, limit_writes
from ..auth.principal import identify
from ..auth.sessions import check_csrf
from ..db.models import User
from ..errors import BadRequest, Forbidden, Unauthorized
from .bodies import body_doc, problems, refuse_nul
from .deps import Ctx, RowId

router = APIRouter(prefix="/api/v1")

MAX_BODY_BYTES = 16 * 1024
PASSWORD_OR_SIGNED_IN = Declared("signed-in, or a local account's password in the body")


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scope: str = "write"
    expires_in_days: int | None = Field(DEFAULT_DAYS, ge=1, le=366)
    # A local account signs in with these instead of a session or a token.
    login: str | None = Field(None, max_length=100)
    password: str | None = Field(None, max_length=1024)


@router.get("/user")
async def who_am_i(access: Annotated[Access, Depends(SIGNED_IN)]) -> dict[str, Any]:
    user = signed_in_user(access)
    return {
        "login": user.login,
        "provider": user.provider,
        "admin": user.is_admin,
        "via": access.principal.via,
        "scope": access.principal.scope,
    }


@router.post(
    "/tokens",
    status_code=201,
    dependencies=[Depends(PASSWORD_OR_SIGNED_IN)],
    openapi_extra=body_doc(NewToken),
)
async def create_token(request: Request, sc: Ctx) -> dict[str, Any]:
    """A new token, shown once. With `login` and `password`, a local account's; otherwise
    the caller's own, no wider than the credential it calls with."""
    await limit_writes(request)  # a password guess is a write, and rate-limited like one
    body = await _new_token(request)
    ask = TokenRequest(body.name, body.scope, body.expires_in_days)
    if body.login is not None or body.password is not None:
        user = await sign_in_with_password(
            sc.sessions, login=body.login or "", password=body.password or ""
        )
        return await new_token_for(sc.sessions, user, ask)
    principal = await identify(sc, request)
    if principal.user is None:
        raise Unauthorized("sign in, send a token, or give a local account's login and password")
    await check_csrf(request, principal)
    if not at_least(principal.scope, body.scope):
        raise Forbidden(f"a {principal.scope}-scoped token cannot make a {body.scope} token")
    return await new_token_for(sc.sessions, principal.user, ask)


@router.get("/tokens")
async def list_tokens(
    sc: Ctx, access: Annotated[Access, Depends(SIGNED_IN)]
) -> list[dict[str, Any]]:
    return await tokens_of(sc.sessions, signed_in_user(access))


@router.delete("/tokens/{token_id}")
async def delete_token(
    token_id: RowId, request: Request, sc: Ctx, access: Annotated[Access, Depends(SIGNED_IN)]
) -> dict[str, Any]:
    await check_csrf(request, access.principal)
    await revoke_token(sc.sessions, access.principal.user, token_id)
    return {"revoked": token_id}


def signed_in_user(access: Access) -> User:
    """The user SIGNED_IN let through (a 401 rather than an assert, should that change)."""
    if access.principal.user is None:
        raise Unauthorized("sign in, or send a personal API token (Authorization: Bearer)")
    return access.principal.user


async def _new_token(request: Request) -> NewToken:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        parsed = NewToken.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise BadRequest(f"invalid body: {problems(exc)}") from exc
    refuse_nul(parsed.model_dump())
    return parsed
