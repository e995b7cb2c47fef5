from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Artifact
from ._insert import insert_ignore


async def artifacts_of(session: AsyncSession, *, job_id: int, attempt: int) -> list[Artifact]:
    stmt = (
        select(Artifact)
        .where(Artifact.job_id == job_id, Artifact.attempt == attempt)
        .order_by(col(Artifact.path))
    )
    return list((await session.exec(stmt)).all())


async def add_artifact(session: AsyncSession, artifact: Artifact) -> None:
    """Record a stored file; a re-upload of the same path by the same attempt replaces it."""
    values = artifact.model_dump(exclude={"id"})
    existing = (
        await session.exec(
            select(Artifact).where(
                Artifact.job_id == artifact.job_id,
                Artifact.attempt == artifact.attempt,
                Artifact.path == artifact.path,
            )
        )
    ).first()
    if existing is None:
        await insert_ignore(session, Artifact, values, unique=["job_id", "attempt", "path"])
        return
    existing.size_bytes, existing.sha256 = artifact.size_bytes, artifact.sha256
    session.add(existing)


async def latest_artifact(session: AsyncSession, *, job_id: int, path: str) -> Artifact | None:
    stmt = (
        select(Artifact)
        .where(Artifact.job_id == job_id, Artifact.path == path)
        .order_by(col(Artifact.attempt).desc())
    )
    return (await session.exec(stmt)).first()


async def artifacts_of_jobs(
    session: AsyncSession, job_attempts: dict[int, int]
) -> dict[int, list[Artifact]]:
    """Each job's artifacts of the given attempt."""
    if not job_attempts:
        return {}
    stmt = select(Artifact).where(col(Artifact.job_id).in_(list(job_attempts)))
    found: dict[int, list[Artifact]] = {job_id: [] for job_id in job_attempts}
    for row in (await session.exec(stmt.order_by(col(Artifact.path)))).all():
        if row.attempt == job_attempts[row.job_id]:
            found[row.job_id].append(row)
    return found
