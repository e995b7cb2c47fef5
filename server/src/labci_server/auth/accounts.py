"""Use cases of people: local accounts, signing in with a password, tokens, grants."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import Repository, User
from ..db.queries import people
from ..db.queries.history import repositories_named
from ..db.queries.repositories import find_repository
from ..errors import BadRequest, Conflict, NotFound, Unauthorized
from .api_tokens import TokenRequest, describe_token, issue_token
from .levels import LEVELS
from .passwords import hash_password, verify_password

Sessions = async_sessionmaker[AsyncSession]
MAX_LOGIN_CHARS = 100
LOGIN_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_login(login: str) -> None:
    if not 1 <= len(login) <= MAX_LOGIN_CHARS or not set(login) <= LOGIN_CHARS:
        raise BadRequest(f"a login has 1 to {MAX_LOGIN_CHARS} letters, digits, '-', '_' or '.'")


async def create_local_user(
    sessions: Sessions, *, login: str, password: str, admin: bool = False
) -> User:
    check_login(login)
    password_hash = hash_password(password)
    async with sessions() as session, session.begin():
        if await people.user_by_login(session, provider="local", login=login) is not None:
            raise Conflict(f"a local user {login!r} exists already")
        user = User(provider="local", login=login, password_hash=password_hash, is_admin=admin)
        session.add(user)
        await session.flush()
    return user


async def set_password(sessions: Sessions, *, login: str, password: str) -> None:
    password_hash = hash_password(password)
    async with sessions() as session, session.begin():
        user = await people.user_by_login(session, provider="local", login=login)
        if user is None:
            raise NotFound(f"no local user {login!r}")
        user.password_hash = password_hash
        session.add(user)


async def sign_in_with_password(sessions: Sessions, *, login: str, password: str) -> User:
    """The local user with this password, or Unauthorized (the same for every reason)."""
    async with sessions() as session, session.begin():
        user = await people.user_by_login(session, provider="local", login=login[:MAX_LOGIN_CHARS])
        ok = verify_password(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            raise Unauthorized("wrong login or password")
        user.last_seen_at = time.time()
        session.add(user)
    return user


async def new_token_for(sessions: Sessions, user: User, request: TokenRequest) -> dict[str, Any]:
    async with sessions() as session, session.begin():
        secret, row = await issue_token(session, user, request)
    return {**describe_token(row), "token": secret}


async def tokens_of(sessions: Sessions, user: User) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = await people.tokens_of_user(session, user.id or 0)
    return [describe_token(row) for row in rows]


async def revoke_token(sessions: Sessions, user: User | None, token_id: int) -> None:
    """Revoke a token of `user` (None: an administrator's command, any token)."""
    async with sessions() as session, session.begin():
        token = await people.get_token(session, token_id)
        if token is None or (user is not None and token.user_id != user.id):
            raise NotFound(f"no token {token_id} of yours")
        if token.revoked_at is None:
            token.revoked_at = time.time()
            session.add(token)


async def set_disabled(sessions: Sessions, user: User, *, disabled: bool) -> None:
    async with sessions() as session, session.begin():
        stored = await people.get_user(session, user.id or 0)
        if stored is None:
            raise NotFound(f"user {user.login} is gone")
        stored.disabled = disabled
        session.add(stored)


async def find_user(sessions: Sessions, login: str) -> User:
    """A user by login: `github:octocat` or `local:ada`, or a login only one user has."""
    provider, _, name = login.rpartition(":")
    async with sessions() as session:
        if provider:
            found = await people.user_by_login(session, provider=provider, login=name)
            candidates = [found] if found else []
        else:
            candidates = await people.users_named(session, name)
    if len(candidates) > 1:
        raise BadRequest(f"{login!r} is ambiguous: say local:{name} or github:{name}")
    if not candidates:
        raise NotFound(f"no user {login!r}")
    return candidates[0]


async def find_repository_named(sessions: Sessions, name: str) -> Repository:
    """OWNER/REPO of GitHub (or a local repository's last two path parts), or the absolute
    path of a local bare repository."""
    from ..web.badge_tokens import pick_repository

    async with sessions() as session:
        if name.startswith("/"):
            repo = await find_repository(session, provider="git", full_name=name)
        else:
            owner, _, rest = name.partition("/")
            if not owner or not rest or "/" in rest:
                raise BadRequest(f"{name!r}: expected OWNER/REPO or a bare repository's path")
            repo = pick_repository(
                await repositories_named(session, owner=owner, name=rest), owner, rest
            )
    if repo is None:
        raise NotFound(f"no repository {name} is known to labci")
    return repo


async def grant(sessions: Sessions, *, repo: Repository, user: User, level: str) -> None:
    if level not in LEVELS:
        raise BadRequest(f"level must be one of {', '.join(LEVELS)}")
    async with sessions() as session, session.begin():
        if level == "none":
            await people.remove_grant(session, repository_id=repo.id or 0, user_id=user.id or 0)
        else:
            await people.set_grant(
                session, repository_id=repo.id or 0, user_id=user.id or 0, level=level
            )


async def set_visibility(sessions: Sessions, repo: Repository, *, private: bool) -> None:
    """Local repositories only: a GitHub repository's visibility is GitHub's."""
    if repo.provider != "git":
        raise BadRequest(f"{repo.full_name} is on GitHub: its visibility comes from GitHub")
    async with sessions() as session, session.begin():
        stored = await session.get(Repository, repo.id)
        if stored is None:
            raise NotFound(f"repository {repo.full_name} is gone")
        stored.private = private
        session.add(stored)
