from __future__ import annotations

from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import ContextVerdict, Event, Job, Metric, Run
from ._insert import insert_ignore


async def insert_run(session: AsyncSession, run: Run) -> Run | None:
    """Store `run`; None when a run with its `dedupe_key` exists already.

    The unique index decides (INSERT … ON CONFLICT DO NOTHING): on PostgreSQL a second
    transaction inserting the same key waits for the first and then inserts nothing.
    A run without a key (a manual run) is always stored.
    """
    values = run.model_dump(exclude={"id"})
    run_id = await insert_ignore(session, Run, values, unique=["dedupe_key"])
    return None if run_id is None else await session.get(Run, run_id)


async def runs_for_event(session: AsyncSession, event_id: int) -> list[Run]:
    return list((await session.exec(select(Run).where(Run.event_id == event_id))).all())


async def mark_run_running(session: AsyncSession, run_id: int) -> None:
    """A pending run whose first job started is running (a conditional update: a run that
    another transaction just finished or marked stays as it is)."""
    stmt = update(Run).where(col(Run.id) == run_id, col(Run.state) == "pending")
    await session.exec(stmt.values(state="running"))


async def get_run(session: AsyncSession, run_id: int, *, for_update: bool = False) -> Run | None:
    if not for_update:
        return await session.get(Run, run_id)
    stmt = select(Run).where(Run.id == run_id).with_for_update()
    return (await session.exec(stmt.execution_options(populate_existing=True))).first()


async def runs_by_id(session: AsyncSession, run_ids: set[int]) -> dict[int, Run]:
    """The runs `run_ids`, in one query."""
    if not run_ids:
        return {}
    stmt = select(Run).where(col(Run.id).in_(sorted(run_ids)))
    return {run.id or 0: run for run in (await session.exec(stmt)).all()}


async def recent_runs(session: AsyncSession, *, limit: int = 50) -> list[Run]:
    stmt = select(Run).order_by(col(Run.id).desc()).limit(limit)
    return list((await session.exec(stmt)).all())


async def jobs_of_run(session: AsyncSession, run_id: int) -> list[Job]:
    stmt = select(Job).where(Job.run_id == run_id).order_by(col(Job.id))
    return list((await session.exec(stmt)).all())


async def jobs_of_context(session: AsyncSession, run_id: int, context: str) -> list[Job]:
    stmt = select(Job).where(Job.run_id == run_id, Job.context == context).order_by(col(Job.id))
    return list((await session.exec(stmt)).all())


async def metrics_of_jobs(session: AsyncSession, job_ids: list[int]) -> dict[int, dict[str, float]]:
    if not job_ids:
        return {}
    rows = (
        await session.exec(
            select(Metric).where(col(Metric.job_id).in_(job_ids)).order_by(col(Metric.name))
        )
    ).all()
    found: dict[int, dict[str, float]] = {job_id: {} for job_id in job_ids}
    for row in rows:
        found[row.job_id][row.name] = row.value
    return found


async def runs_for_commit(session: AsyncSession, commit_sha: str) -> list[Run]:
    stmt = select(Run).where(Run.commit_sha == commit_sha).order_by(col(Run.id))
    return list((await session.exec(stmt)).all())


async def open_runs_of_pull_request(
    session: AsyncSession,
    *,
    repository_id: int,
    pr_number: int,
    other_than_sha: str,
    before_event_id: int,
) -> list[Run]:
    """Unfinished runs of a pull request at other commits, planned for earlier events
    (what a new head supersedes; a late delivery of an old head never cancels a newer)."""
    stmt = (
        select(Run)
        .where(
            Run.repository_id == repository_id,
            Run.pr_number == pr_number,
            Run.trigger == "pull_request",
            Run.commit_sha != other_than_sha,
            Run.state != "finished",
            col(Run.event_id) < before_event_id,
        )
        .order_by(col(Run.id))
    )
    return list((await session.exec(stmt)).all())


async def newest_run_with_context(
    session: AsyncSession, *, repository_id: int, commit_sha: str, context: str
) -> Run | None:
    """The newest run of the commit that has jobs of `context` (baseline runs aside)."""
    stmt = (
        select(Run)
        .join(Job, col(Job.run_id) == col(Run.id))
        .where(
            Run.repository_id == repository_id,
            Run.commit_sha == commit_sha,
            Run.trigger != "baseline",
            Job.context == context,
        )
        .order_by(col(Run.id).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def forget_results(
    session: AsyncSession, jobs: list[Job], *, run_id: int, context: str
) -> None:
    """Drop the metrics of `jobs` and the verdict of the context: a re-run replaces them."""
    ids = [job.id or 0 for job in jobs]
    await session.exec(delete(Metric).where(col(Metric.job_id).in_(ids)))  # type: ignore[call-overload]
    await session.exec(
        delete(ContextVerdict).where(  # type: ignore[call-overload]
            col(ContextVerdict.run_id) == run_id, col(ContextVerdict.context) == context
        )
    )


async def unfinished_runs_of(
    session: AsyncSession,
    *,
    repository_id: int,
    pr_number: int | None = None,
    branch: str | None = None,
    received_before: float | None = None,
) -> list[Run]:
    """Unfinished runs of a pull request (any head), or of the pushes to a branch (of
    events received before `received_before`)."""
    stmt = select(Run).where(Run.repository_id == repository_id, Run.state != "finished")
    if received_before is not None:
        stmt = stmt.join(Event, col(Event.id) == col(Run.event_id)).where(
            col(Event.received_at) < received_before
        )
    if pr_number is not None:
        stmt = stmt.where(Run.pr_number == pr_number, Run.trigger == "pull_request")
    else:
        stmt = stmt.where(Run.branch == branch, Run.trigger == "push")
    return list((await session.exec(stmt.order_by(col(Run.id)))).all())
