"""Earlier results of one context: the candidates for a baseline and for a metric's history."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Job, Run
from .runs import metrics_of_jobs

# Runs of these triggers measure a branch itself, not a proposal to change it.
BRANCH_TRIGGERS = ("push", "baseline", "workflow_dispatch", "schedule")


@dataclass(frozen=True)
class ContextResult:
    """One run's jobs of a context, with the metrics each reported."""

    run: Run
    jobs: list[Job]
    metrics: dict[int, dict[str, float]]  # job id -> name -> value


async def results_at_commit(
    session: AsyncSession, *, repository_id: int, context: str, commit_sha: str, limit: int = 20
) -> list[ContextResult]:
    """The context's results at one commit, newest run first."""
    runs = select(Run.id).where(Run.repository_id == repository_id, Run.commit_sha == commit_sha)
    return await _results(session, runs, context, limit)


async def results_on_branch(
    session: AsyncSession,
    *,
    repository_id: int,
    context: str,
    branch: str,
    before_run_id: int | None = None,
    limit: int = 20,
) -> list[ContextResult]:
    """The context's results of runs that measured `branch` itself, newest first."""
    runs = select(Run.id).where(
        Run.repository_id == repository_id,
        Run.branch == branch,
        col(Run.trigger).in_(BRANCH_TRIGGERS),
    )
    if before_run_id is not None:
        runs = runs.where(col(Run.id) < before_run_id)
    return await _results(session, runs, context, limit)


async def _results(session: AsyncSession, runs, context: str, limit: int) -> list[ContextResult]:  # type: ignore[no-untyped-def]
    # Runs that have the context at all, newest first: a repository's other workflows
    # must not use up the limit.
    ids_stmt = (
        select(Job.run_id)
        .where(Job.context == context, col(Job.run_id).in_(runs))
        .distinct()
        .order_by(col(Job.run_id).desc())
        .limit(limit)
    )
    run_ids = list((await session.exec(ids_stmt)).all())
    if not run_ids:
        return []
    jobs = list(
        (
            await session.exec(
                select(Job)
                .where(col(Job.run_id).in_(run_ids), Job.context == context)
                .order_by(col(Job.id))
            )
        ).all()
    )
    rows = {
        run.id: run
        for run in (await session.exec(select(Run).where(col(Run.id).in_(run_ids)))).all()
    }
    metrics = await metrics_of_jobs(session, [job.id or 0 for job in jobs])
    return [
        ContextResult(
            run=rows[run_id],
            jobs=[job for job in jobs if job.run_id == run_id],
            metrics={
                job.id or 0: metrics.get(job.id or 0, {}) for job in jobs if job.run_id == run_id
            },
        )
        for run_id in run_ids
    ]
