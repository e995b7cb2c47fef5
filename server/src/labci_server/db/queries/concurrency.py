"""The members of `concurrency:` groups (planning/concurrency.py, the scheduler).

A group belongs to a repository. A run's workflow-level group is on the run, a job's
job-level group on the job; both reads go through partial indexes, so finished work
costs nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, literal_column, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import TERMINAL_JOB_STATES, Job, Run

ACTIVE_JOB_STATES = ("queued", "running")
FINISHED = literal_column("'finished'")


def _in_progress() -> Any:
    """A run is in progress in its group once one of its jobs was placed, until it
    finishes: a job queued or running, or one that ran and ended while others still wait
    for their needs. A job settled at planning (skipped by `if:`) places nothing."""
    return exists().where(
        col(Job.run_id) == col(Run.id),
        or_(
            col(Job.state).in_(ACTIVE_JOB_STATES),
            and_(col(Job.queued_at).is_not(None), col(Job.state).in_(TERMINAL_JOB_STATES)),
        ),
    )


async def unfinished_runs_in_group(
    session: AsyncSession, *, repository_id: int, group: str, before_run: int
) -> list[tuple[int, bool]]:
    """(run id, in progress) of the unfinished runs of `group` older than `before_run`
    (see `_in_progress`)."""
    stmt = (
        select(Run.id, _in_progress())
        .where(
            col(Run.repository_id) == repository_id,
            col(Run.concurrency_group) == group,
            col(Run.state) != FINISHED,
            col(Run.id) < before_run,
        )
        .order_by(col(Run.id))
    )
    return [(run_id or 0, bool(busy)) for run_id, busy in (await session.exec(stmt)).all()]


async def unfinished_jobs_in_group(
    session: AsyncSession, *, repository_id: int, group: str, before_run: int
) -> list[Job]:
    """The unfinished jobs of job-level `group` in runs older than `before_run`, as they
    are now (read again after their runs were locked)."""
    stmt = (
        select(Job)
        .join(Run, col(Run.id) == col(Job.run_id))
        .where(
            col(Job.concurrency_group) == group,
            col(Run.repository_id) == repository_id,
            col(Job.run_id) < before_run,
            col(Job.finished_at).is_(None),  # what the partial index holds
            col(Job.state).not_in(TERMINAL_JOB_STATES),
        )
        .order_by(col(Job.run_id), col(Job.id))
        .execution_options(populate_existing=True)
    )
    return list((await session.exec(stmt)).all())


async def groups_in_use(session: AsyncSession, *, stopping_since: float) -> bool:
    """Whether any `concurrency:` group has an unfinished member, or one being stopped: one
    cheap read through the partial indexes, so that a server whose workflows name no group
    pays nothing more per scheduling pass."""
    stmt = select(
        or_(
            exists().where(col(Run.concurrency_group).is_not(None), col(Run.state) != FINISHED),
            exists().where(col(Job.concurrency_group).is_not(None), col(Job.finished_at).is_(None)),
            exists().where(_stopping(stopping_since)),
        )
    )
    return bool((await session.exec(stmt)).one())


async def busy_groups(
    session: AsyncSession,
    repository_ids: set[int] | None = None,
    *,
    stopping_since: float | None = None,
) -> tuple[dict[tuple[int, str], int], set[tuple[int, str]]]:
    """The groups that have a member in progress: ({(repository, run group): the run
    holding it}, {(repository, job group)}). A run holds its group from its first job's
    placing until it finishes; a job from its placing until it ends. Two runs in progress
    in one group (planned at once, say): the older holds it.

    A job cancelled after `stopping_since` whose runner has not reported it stopped (its
    attempt's token is still out) holds its groups too: the next member does not start
    while its step is being interrupted (as on GitHub). A runner that never reports lets
    go when the lease that was `stopping_since` ago has run out."""
    # Each read narrow enough for an index, however long the history: unfinished runs of a
    # group (ix_runs_concurrency_group: the literal 'finished' lets a generic plan match its
    # predicate), jobs queued or running (ix_jobs_state), jobs whose token is still out
    # (ix_jobs_job_token_hash). One OR across them would read the whole jobs table.
    runs = select(Run.repository_id, Run.concurrency_group, Run.id).where(
        col(Run.concurrency_group).is_not(None), col(Run.state) != FINISHED, _in_progress()
    )
    grouped_jobs = select(Run.repository_id, Job.concurrency_group).join(
        Run, col(Run.id) == col(Job.run_id)
    )
    reads = [grouped_jobs.where(col(Job.state).in_(ACTIVE_JOB_STATES))]
    stopping_runs = None
    if stopping_since is not None:
        reads.append(grouped_jobs.where(_stopping(stopping_since)))
        stopping_runs = (
            select(Run.repository_id, Run.concurrency_group, Run.id)
            .join(Job, col(Job.run_id) == col(Run.id))
            .where(col(Run.concurrency_group).is_not(None), _stopping(stopping_since))
        )
    if repository_ids is not None:
        within = col(Run.repository_id).in_(sorted(repository_ids))
        runs = runs.where(within)
        reads = [read.where(within) for read in reads]
        stopping_runs = stopping_runs.where(within) if stopping_runs is not None else None
    found = list((await session.exec(runs)).all())
    if stopping_runs is not None:
        found += list((await session.exec(stopping_runs)).all())
    held_runs: dict[tuple[int, str], int] = {}
    for repo, group, run_id in sorted(found, key=lambda r: r[2]):
        held_runs.setdefault((repo, group or ""), run_id or 0)  # the oldest, should two be
    held_jobs: set[tuple[int, str]] = set()
    for read in reads:
        rows = (await session.exec(read.where(col(Job.concurrency_group).is_not(None)))).all()
        held_jobs |= {(repo, group or "") for repo, group in rows}
    return held_runs, held_jobs


def _stopping(since: float) -> Any:
    """A job cancelled while a runner ran it, not yet reported stopped (the token of its
    attempt is kept until then: results/ingest.mark_terminal)."""
    return and_(
        col(Job.job_token_hash).is_not(None),
        col(Job.state) == "cancelled",
        col(Job.runner_id).is_not(None),
        col(Job.finished_at) > since,
    )


async def run_groups(session: AsyncSession, run_ids: set[int]) -> dict[int, str]:
    """The workflow-level group of each of `run_ids` that has one."""
    if not run_ids:
        return {}
    stmt = select(Run.id, Run.concurrency_group).where(
        col(Run.id).in_(sorted(run_ids)), col(Run.concurrency_group).is_not(None)
    )
    return {run_id or 0: group or "" for run_id, group in (await session.exec(stmt)).all()}


async def runs_waiting_on_groups(
    session: AsyncSession, held_runs: dict[tuple[int, str], int]
) -> set[int]:
    """The unfinished runs of the groups in `held_runs` other than the one holding each:
    their jobs wait."""
    if not held_runs:
        return set()
    groups = {group for _, group in held_runs}
    stmt = select(Run.id, Run.repository_id, Run.concurrency_group).where(
        col(Run.concurrency_group).in_(sorted(groups)), col(Run.state) != "finished"
    )
    return {
        run_id or 0
        for run_id, repo, group in (await session.exec(stmt)).all()
        if (repo, group or "") in held_runs and held_runs[(repo, group or "")] != run_id
    }
