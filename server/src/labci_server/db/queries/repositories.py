from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Repository
from ._insert import insert_ignore


async def ensure_repository(
    session: AsyncSession, *, provider: str, full_name: str, clone_url: str
) -> Repository:
    await insert_ignore(
        session,
        Repository,
        {"provider": provider, "full_name": full_name, "clone_url": clone_url},
        unique=["provider", "full_name"],
    )
    repo = (
        await session.exec(
            select(Repository).where(
                Repository.provider == provider, Repository.full_name == full_name
            )
        )
    ).one()
    if repo.clone_url != clone_url:
        repo.clone_url = clone_url
        session.add(repo)
    return repo


async def get_repository(session: AsyncSession, repository_id: int) -> Repository | None:
    return await session.get(Repository, repository_id)


async def find_repository(
    session: AsyncSession, *, provider: str, full_name: str
) -> Repository | None:
    return (
        await session.exec(
            select(Repository).where(
                Repository.provider == provider, Repository.full_name == full_name
            )
        )
    ).first()
