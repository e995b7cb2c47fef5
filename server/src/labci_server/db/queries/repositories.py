from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Repository
from ._insert import insert_ignore


async def ensure_repository(
    session: AsyncSession,
    *,
    provider: str,
    full_name: str,
    clone_url: str,
    private: bool | None = None,
    installation_id: int | None = None,
) -> Repository:
    """The repository's row, created on first sight; what the forge says now is kept."""
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
    changes = {"clone_url": clone_url, "private": private, "installation_id": installation_id}
    for name, value in changes.items():
        if value is not None and getattr(repo, name) != value:
            setattr(repo, name, value)
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
