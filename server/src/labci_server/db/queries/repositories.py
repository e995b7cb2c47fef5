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
    """The repository's row, created on first sight with what the delivery says.

    A known repository is returned as it is: a delivery never rewrites its clone URL,
    visibility or installation (those come from the forge's API, `record_facts`). A new
    one with unknown visibility is private until the API says otherwise.
    """
    await insert_ignore(
        session,
        Repository,
        {
            "provider": provider,
            "full_name": full_name,
            "clone_url": clone_url,
            "private": True if private is None else private,
            "installation_id": installation_id,
        },
        unique=["provider", "full_name"],
    )
    repo = await find_repository(session, provider=provider, full_name=full_name)
    if repo is None:  # inserted or present: only a concurrent delete could get here
        raise LookupError(f"repository {provider}:{full_name} vanished while being stored")
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


async def record_facts(
    session: AsyncSession,
    repository_id: int,
    *,
    clone_url: str,
    private: bool,
    installation_id: int | None,
    default_branch: str | None = None,
    checked_at: float | None,
) -> Repository | None:
    """Store what the forge's API says of the repository (`checked_at` None: read them
    again before the next planning)."""
    repo = await session.get(Repository, repository_id, with_for_update=True)
    if repo is None:
        return None
    repo.clone_url = clone_url
    repo.private = private
    repo.installation_id = installation_id
    repo.default_branch = default_branch
    repo.facts_checked_at = checked_at
    session.add(repo)
    return repo


async def mark_facts_stale(session: AsyncSession, repository_id: int, *, hide: bool) -> None:
    """Read the repository's facts again before its next planning; `hide` makes it private
    meanwhile (its forge could not confirm what is known)."""
    repo = await session.get(Repository, repository_id, with_for_update=True)
    if repo is None:
        return
    repo.facts_checked_at = None
    if hide:
        repo.private = True
    session.add(repo)


async def find_by_hook_token(session: AsyncSession, token_hash: str) -> Repository | None:
    """The local repository whose post-receive hook holds the token with this hash."""
    return (
        await session.exec(
            select(Repository).where(
                Repository.provider == "git", Repository.hook_token_hash == token_hash
            )
        )
    ).first()


async def register_local_repository(
    session: AsyncSession,
    *,
    path: str,
    private: bool,
    hook_token_hash: str,
    default_branch: str | None = None,
) -> Repository:
    """Create or update the local (`git`) repository at `path` with a new hook token (the
    old one stops working), the visibility its administrator chose and its default branch."""
    repo = await ensure_repository(
        session, provider="git", full_name=path, clone_url=path, private=private
    )
    repo.clone_url = path
    repo.private = private
    repo.hook_token_hash = hook_token_hash
    repo.default_branch = default_branch
    session.add(repo)
    return repo
