"""Why a job waits, in words, with its place in the queue (the run page): a job should
never wait silently. What the scheduler checks, asked of the runners as they are now: one
online with all its labels (and a Docker engine, for a container job; one that isolates
untrusted code, for a fork's) that is big enough for what it declares; if there is such a
runner, the job waits for room behind the jobs ahead of it (of its shape: the jobs that
compete for the same runners), or for its repository's job limit; or for the member of
its `concurrency:` group in progress."""

from __future__ import annotations

import time
from bisect import bisect_left

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import Job, Run
from ..db.queries import concurrency as concurrency_queries
from ..db.queries import jobs as job_queries
from ..db.queries import queue as queue_queries
from ..db.queries.runners import online_runners
from ..settings import Settings
from .order import effective_limit
from .placement import can_run, could_ever_run
from .shapes import shape_of


async def why_waiting(
    session: AsyncSession, run: Run, jobs: list[Job], *, settings: Settings
) -> dict[int, str]:
    """For each of `jobs` still waiting to be placed, why, by id."""
    found: dict[int, str] = {}
    pending = [job for job in jobs if job.state == "pending"]
    for job in jobs:
        if job.state == "waiting":
            needs = (job.spec.get("job") or {}).get("needs") or []
            found[job.id or 0] = f"waiting for {', '.join(needs) or 'the jobs it needs'}"
    if not pending:
        return found
    if run.approval == "awaiting":
        return found | {job.id or 0: "waiting for a maintainer's approval" for job in pending}
    held: dict[int, str] = {}
    if run.concurrency_group is not None or any(j.concurrency_group for j in pending):
        busy = await _busy(session, run, settings)  # once for the run, not once a job
        for job in pending:
            holder = _holder(run, job, *busy)
            if holder is not None:
                held[job.id or 0] = holder
    found |= held
    pending = [job for job in pending if job.id not in held]
    if not pending:
        return found
    runners = await online_runners(session, seen_after=time.time() - settings.lease_s)
    places = await _places(session, pending)
    limit_note = await _limit_note(session, run, settings)
    for job in pending:
        shape = shape_of(job, trusted=run.trusted)
        labels = f"[{', '.join(shape.labels)}]"
        what = labels + (" that runs containers" if shape.needs == "container" else "")
        if not shape.trusted:
            what += " that isolates untrusted code"
        able = [r for r in runners if can_run(r, shape)]
        drained = [r for r in able if r.drained_at is not None]
        able = [r for r in able if r.drained_at is None]
        if not able:
            also = f" ({len(drained)} drained)" if drained else ""
            found[job.id or 0] = f"no online runner with {what}{also}"
            continue
        able = [r for r in able if could_ever_run(r, shape)]
        if not able:
            found[job.id or 0] = f"no online runner with {what}{shape.wants()}"
            continue
        place = places[job.id or 0]
        found[job.id or 0] = (
            f"waiting for a free runner with {what} ({len(able)} online); "
            f"{place}{_ordinal(place)} in the queue" + limit_note
        )
    return found


async def group_holder(
    session: AsyncSession, job: Job, *, settings: Settings, run: Run | None = None
) -> str | None:
    """What holds `job` back in its `concurrency:` groups, in words; None: nothing."""
    run = run or await session.get(Run, job.run_id)
    if run is None or (run.concurrency_group is None and job.concurrency_group is None):
        return None
    return _holder(run, job, *await _busy(session, run, settings))


async def _busy(
    session: AsyncSession, run: Run, settings: Settings
) -> tuple[dict[tuple[int, str], int], set[tuple[int, str]]]:
    return await concurrency_queries.busy_groups(
        session, {run.repository_id}, stopping_since=time.time() - settings.lease_s
    )


def _holder(
    run: Run, job: Job, held_runs: dict[tuple[int, str], int], held_jobs: set[tuple[int, str]]
) -> str | None:
    group = run.concurrency_group
    if group is not None:
        holder = held_runs.get((run.repository_id, group))
        if holder is not None and holder != run.id:
            return f"waiting for run {holder}, in progress in concurrency group '{group}'"
    group = job.concurrency_group
    if group is not None and (run.repository_id, group) in held_jobs:
        return f"waiting for a job in progress in concurrency group '{group}'"
    return None


async def _places(session: AsyncSession, pending: list[Job]) -> dict[int, int]:
    """Each job's place among the pending jobs the scheduler takes before it: of its shape,
    by priority then age (a job not indexed yet: among all, by age)."""
    places: dict[int, int] = {}
    unindexed = [job for job in pending if job.shape is None]
    if unindexed:
        # One query for every place: the queue up to this run's newest pending job.
        queue = await job_queries.queue_up_to(session, max(job.id or 0 for job in unindexed))
        for job in unindexed:
            places[job.id or 0] = bisect_left(queue, job.id or 0) + 1
    by_shape: dict[str, list[Job]] = {}
    for job in pending:
        if job.shape is not None:
            by_shape.setdefault(job.shape, []).append(job)
    for shape, jobs in by_shape.items():
        order = await queue_queries.queue_order(
            session,
            shape=shape,
            min_priority=min(j.priority for j in jobs),
            up_to=max(j.id or 0 for j in jobs),
        )
        for job in jobs:
            places[job.id or 0] = bisect_left(order, (-job.priority, job.id or 0)) + 1
    return places


async def repository_load(
    session: AsyncSession, settings: Settings, repository_id: int
) -> tuple[int, int | None]:
    """(jobs of the repository queued or running, its job limit; None: no limit)."""
    own = (await queue_queries.repository_limits(session, {repository_id})).get(repository_id)
    limit = effective_limit(own, settings.repository_max_jobs)
    if limit is None:
        return 0, None
    return (await queue_queries.active_by_repository(session)).get(repository_id, 0), limit


async def _limit_note(session: AsyncSession, run: Run, settings: Settings) -> str:
    active, limit = await repository_load(session, settings, run.repository_id)
    if limit is None or active < limit:
        return ""
    return f"; the repository has {active} jobs queued or running, its limit"


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
