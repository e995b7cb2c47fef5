"""Users, their personal API tokens, repository grants and the server's own keys."""

from __future__ import annotations

import time

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import ApiToken, Repository, RepositoryGrant, ServerKey, User
from ._insert import insert_ignore


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def user_by_login(session: AsyncSession, *, provider: str, login: str) -> User | None:
    stmt = select(User).where(User.provider == provider, User.login == login)
    return (await session.exec(stmt)).first()


async def user_by_forge_id(
    session: AsyncSession, *, provider: str, forge_user_id: int
) -> User | None:
    stmt = select(User).where(User.provider == provider, User.forge_user_id == forge_user_id)
    return (await session.exec(stmt)).first()


async def users_named(session: AsyncSession, login: str) -> list[User]:
    """Every user called `login`, whichever way they sign in."""
    stmt = select(User).where(User.login == login).order_by(col(User.id))
    return list((await session.exec(stmt)).all())


async def all_users(session: AsyncSession) -> list[User]:
    return list((await session.exec(select(User).order_by(col(User.id)))).all())


async def add_token(session: AsyncSession, token: ApiToken) -> ApiToken:
    session.add(token)
    await session.flush()
    return token


async def token_by_hash(session: AsyncSession, token_hash: str) -> ApiToken | None:
    return (await session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash))).first()


async def tokens_of_user(session: AsyncSession, user_id: int) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user_id).order_by(col(ApiToken.id))
    return list((await session.exec(stmt)).all())


async def get_token(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.get(ApiToken, token_id)


async def touch_token(session: AsyncSession, token: ApiToken, now: float) -> None:
    token.last_used_at = now
    session.add(token)


async def grant_of(session: AsyncSession, *, repository_id: int, user_id: int) -> str | None:
    stmt = select(RepositoryGrant.level).where(
        RepositoryGrant.repository_id == repository_id, RepositoryGrant.user_id == user_id
    )
    return (await session.exec(stmt)).first()


async def grants_of_user(session: AsyncSession, user_id: int) -> dict[int, str]:
    stmt = select(RepositoryGrant).where(RepositoryGrant.user_id == user_id)
    return {g.repository_id: g.level for g in (await session.exec(stmt)).all()}


async def set_grant(session: AsyncSession, *, repository_id: int, user_id: int, level: str) -> None:
    await insert_ignore(
        session,
        RepositoryGrant,
        {"repository_id": repository_id, "user_id": user_id, "level": level},
        unique=["repository_id", "user_id"],
    )
    stmt = select(RepositoryGrant).where(
        RepositoryGrant.repository_id == repository_id, RepositoryGrant.user_id == user_id
    )
    grant = (await session.exec(stmt)).one()
    grant.level = level
    session.add(grant)


async def remove_grant(session: AsyncSession, *, repository_id: int, user_id: int) -> bool:
    stmt = select(RepositoryGrant).where(
        RepositoryGrant.repository_id == repository_id, RepositoryGrant.user_id == user_id
    )
    grant = (await session.exec(stmt)).first()
    if grant is None:
        return False
    await session.delete(grant)
    return True


async def all_repositories(session: AsyncSession) -> list[Repository]:
    return list((await session.exec(select(Repository).order_by(col(Repository.id)))).all())


async def server_key(session: AsyncSession, name: str, candidate: str) -> str:
    """The key called `name`; `candidate` becomes it if there is none yet (first writer wins)."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = (
        module.insert(ServerKey)
        .values(name=name, value=candidate, created_at=time.time())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    await session.exec(stmt)  # type: ignore[call-overload]
    return (await session.exec(select(ServerKey.value).where(ServerKey.name == name))).one()


async def add_github_user(session: AsyncSession, *, login: str, forge_user_id: int) -> User:
    """The GitHub user with this numeric id, created with `login` if there is none yet (two
    first sign-ins at once store one row: the database decides)."""
    await insert_ignore(
        session,
        User,
        {
            "provider": "github",
            "login": login,
            "forge_user_id": forge_user_id,
            "created_at": time.time(),
        },
        unique=["provider", "login"],
    )
    user = await user_by_forge_id(session, provider="github", forge_user_id=forge_user_id)
    if user is None:  # the login is another GitHub account's (release_github_login first)
        raise LookupError(f"the GitHub login {login!r} belongs to another user here")
    return user


async def release_github_login(session: AsyncSession, *, login: str, forge_user_id: int) -> int:
    """Rename every other GitHub user still called `login` (an account renamed since, whose
    old name GitHub gave to someone else) to `login--<their id>`, which no GitHub account
    can be called (GitHub logins never hold two hyphens in a row). Returns how many."""
    stmt = select(User).where(
        User.provider == "github",
        User.login == login,
        col(User.forge_user_id).is_distinct_from(forge_user_id),
    )
    stale = list((await session.exec(stmt)).all())
    for user in stale:
        user.login = f"{login}--{user.forge_user_id if user.forge_user_id is not None else user.id}"
        session.add(user)
    if stale:
        await session.flush()
    return len(stale)
