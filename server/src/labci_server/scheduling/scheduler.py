"""Match pending jobs to online runners by labels and free slots; enqueue on their queues.

The database claim (`pending` → `queued` on one runner) happens before the enqueue, so two
schedulers racing for a job cannot both win; the arq job id makes a repeated enqueue a no-op.
If Redis fails after the claim, the reconciler re-enqueues the job by id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Job, Runner
from ..db.queries import jobs as job_queries
from ..db.queries.runners import get_runner, online_runners
from ..queue import enqueue_run_job

log = logging.getLogger(__name__)


def pick_runner(
    runs_on: Sequence[str], runners: Sequence[Runner], free: dict[int, int]
) -> Runner | None:
    """The eligible runner with the most free slots (lowest id on ties), or None."""
    wanted = set(runs_on)
    eligible = [r for r in runners if wanted <= set(r.labels) and free.get(r.id or 0, 0) > 0]
    if not eligible:
        return None
    return max(eligible, key=lambda r: (free[r.id or 0], -(r.id or 0)))


async def schedule_jobs(sc: ServerContext) -> int:
    """Assign what can be assigned now; returns the number of jobs enqueued."""
    now = time.time()
    async with sc.sessions() as session:
        pending = await job_queries.pending_jobs(session)
        if not pending:
            return 0
        runners = await online_runners(session, seen_after=now - sc.settings.lease_s)
        busy = await job_queries.busy_slots_by_runner(session)
    free = {r.id or 0: r.slots - busy.get(r.id or 0, 0) for r in runners}
    assignments: list[tuple[Job, Runner]] = []
    for job in pending:
        runner = pick_runner(job.runs_on, runners, free)
        if runner is not None:
            free[runner.id or 0] -= 1
            assignments.append((job, runner))
    enqueued = 0
    for job, runner in assignments:
        async with sc.sessions() as session, session.begin():
            claimed = await _claim(session, job, runner, now)
        if claimed:
            await enqueue_run_job(
                sc.redis, job_id=job.id or 0, attempt=job.attempt, queue_name=runner.queue_name
            )
            enqueued += 1
    return enqueued


async def _claim(session: AsyncSession, job: Job, runner: Runner, now: float) -> bool:
    """Claim with the runner's row locked and its slots recounted: concurrent scheduler
    passes work from snapshots, and must not give one runner more jobs than slots."""
    locked = await get_runner(session, runner.id or 0, for_update=True)
    if (
        locked is None
        or await job_queries.busy_slots_of_runner(session, runner.id or 0) >= locked.slots
    ):
        return False
    return await job_queries.claim_job_for_runner(
        session, job_id=job.id or 0, attempt=job.attempt, runner_id=runner.id or 0, now=now
    )
