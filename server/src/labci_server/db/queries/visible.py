"""Queries that answer "which repository is this?" for permission checks, and listings
limited to the repositories a caller may read."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Job, Repository, Run


async def repository_of_run(session: AsyncSession, run_id: int) -> Repository | None:
    stmt = select(Repository).join(Run, col(Run.repository_id) == col(Repository.id))
    return (await session.exec(stmt.where(Run.id == run_id))).first()


async def repository_of_job(session: AsyncSession, job_id: int) -> Repository | None:
    stmt = (
        select(Repository)
        .join(Run, col(Run.repository_id) == col(Repository.id))
        .join(Job, col(Job.run_id) == col(Run.id))
    )
    return (await session.exec(stmt.where(Job.id == job_id))).first()


async def visible_runs(
    session: AsyncSession,
    *,
    repository_ids: set[int] | None,
    limit: int,
    commit_sha: str | None = None,
) -> list[Run]:
    """The newest runs (of one commit, if given) in `repository_ids` (None: in all)."""
    stmt = select(Run)
    if repository_ids is not None:
        if not repository_ids:
            return []
        stmt = stmt.where(col(Run.repository_id).in_(sorted(repository_ids)))
    if commit_sha is not None:
        stmt = stmt.where(Run.commit_sha == commit_sha).order_by(col(Run.id))
    else:
        stmt = stmt.order_by(col(Run.id).desc())
    return list((await session.exec(stmt.limit(limit))).all())
