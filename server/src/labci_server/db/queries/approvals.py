"""Approvals of fork pull requests' commits, and the runs held for one."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Approval, Run
from ._insert import insert_ignore


async def approval_of(session: AsyncSession, repository_id: int, sha: str) -> Approval | None:
    stmt = select(Approval).where(
        Approval.repository_id == repository_id, Approval.commit_sha == sha
    )
    return (await session.exec(stmt)).first()


async def record_approval(
    session: AsyncSession,
    *,
    repository_id: int,
    commit_sha: str,
    pr_number: int | None,
    by: str,
    via: str,
) -> None:
    """The first approval of a commit is kept (who approved it first is what counts)."""
    values = {
        "repository_id": repository_id,
        "commit_sha": commit_sha,
        "pr_number": pr_number,
        "approved_by": by,
        "via": via,
    }
    await insert_ignore(session, Approval, values, unique=["repository_id", "commit_sha"])


async def held_runs(session: AsyncSession, *, repository_id: int, sha: str) -> list[Run]:
    """The runs at this commit awaiting approval, locked."""
    stmt = (
        select(Run)
        .where(
            Run.repository_id == repository_id,
            Run.commit_sha == sha,
            Run.approval == "awaiting",
        )
        .order_by(col(Run.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.exec(stmt)).all())
