"""What a pull request's heads have shown: for settling contexts a new head does not run."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Event, Job, OutboxMessage, Run


async def contexts_of_other_heads(session: AsyncSession, event: Event) -> dict[str, str]:
    """Context → workflow path, for every context of the pull request's other heads."""
    runs = select(Run.id).where(
        Run.repository_id == event.repository_id,
        Run.pr_number == event.pr_number,
        Run.trigger == "pull_request",
        Run.commit_sha != event.commit_sha,
    )
    found: dict[str, str] = {}
    stmt = (
        select(Job.context, Run.workflow_path)
        .join(Run, col(Run.id) == Job.run_id)
        .where(col(Job.run_id).in_(runs))
        .distinct()
    )
    for context, path in (await session.exec(stmt)).all():
        found.setdefault(context, path)
    broken = select(Run.workflow_name, Run.workflow_path).where(
        col(Run.id).in_(runs), col(Run.error).is_not(None)
    )
    for name, path in (await session.exec(broken)).all():
        found.setdefault(f"labci/{name}", path)
    return found


async def status_contexts_at(session: AsyncSession, repository_id: int, sha: str) -> set[str]:
    stmt = select(OutboxMessage.context).where(
        OutboxMessage.repository_id == repository_id,
        OutboxMessage.commit_sha == sha,
        OutboxMessage.kind == "status",
    )
    return set((await session.exec(stmt)).all())
