"""Match pending jobs to online runners by labels and free slots; enqueue on their queues.

A matrix job's `strategy.max-parallel` caps how many of its instances are queued or
running at once; the rest stay pending until one finishes.

The database claim (`pending` → `queued` on one runner) happens before the enqueue, so two
schedulers racing for a job cannot both win; the arq job id makes a repeated enqueue a no-op.
If Redis fails after the claim, the reconciler re-enqueues the job by id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Job, Runner
from ..db.queries import jobs as job_queries
from ..db.queries.runners import get_runner, online_runners
from ..db.queries.runs import get_run
from ..queue import enqueue_run_job
from .gpus import choose_gpus, free_gpu_ids, gpus_wanted, held_gpu_ids

log = logging.getLogger(__name__)


def pick_runner(
    runs_on: Sequence[str],
    runners: Sequence[Runner],
    free: dict[int, int],
    *,
    needs: str = "host",
    gpus: int = 0,
    free_gpus: Mapping[int, list[str]] | None = None,
    trusted: bool = True,
) -> Runner | None:
    """The eligible runner with the most free slots (lowest id on ties), or None.

    `needs` is "container" for a job naming `container.image` (a runner whose Docker
    engine answers), else "host". A job wanting `gpus` needs that many healthy GPUs of
    the runner that no other job holds (`free_gpus`). Untrusted code (a fork's) goes
    only to runners that run every job in a container (`untrusted` capability): never
    to a process runner, where a step could read the machine.
    """
    wanted = set(runs_on)
    eligible = [
        r
        for r in runners
        if wanted <= set(r.labels)
        and free.get(r.id or 0, 0) > 0
        and (r.capabilities or {}).get(needs, needs == "host")
        and (trusted or (r.capabilities or {}).get("untrusted", False))
        and (gpus == 0 or len((free_gpus or {}).get(r.id or 0, [])) >= gpus)
    ]
    if not eligible:
        return None
    return max(eligible, key=lambda r: (free[r.id or 0], -(r.id or 0)))


def job_needs(job: Job) -> str:
    """What kind of runner a job needs: "container" when it names an image."""
    return "container" if job.spec.get("job", {}).get("container") else "host"


async def schedule_jobs(sc: ServerContext) -> int:
    """Assign what can be assigned now; returns the number of jobs enqueued."""
    now = time.time()
    async with sc.sessions() as session:
        schedulable = await job_queries.schedulable_jobs(session)
        if not schedulable:
            return 0
        runners = await online_runners(session, seen_after=now - sc.settings.lease_s)
        runners = [r for r in runners if r.drained_at is None]  # an administrator's drain
        busy = await job_queries.busy_slots_by_runner(session)
        active = await job_queries.active_jobs_by_group(session, {j.run_id for j, _ in schedulable})
        held = held_gpu_ids(await job_queries.active_jobs(session))
    free = {r.id or 0: r.slots - busy.get(r.id or 0, 0) for r in runners}
    gpus_free = {r.id or 0: free_gpu_ids(r, held.get(r.id or 0, ())) for r in runners}
    assignments: list[tuple[Job, Runner, list[str]]] = []
    for job, trusted in schedulable:
        group = (job.run_id, job.workflow_job)
        if _at_max_parallel(job, active.get(group, 0)):
            continue
        gpus = gpus_wanted(job)
        runner = pick_runner(
            job.runs_on,
            runners,
            free,
            needs=job_needs(job),
            gpus=gpus,
            free_gpus=gpus_free,
            trusted=trusted,
        )
        if runner is not None:
            ids = choose_gpus(gpus_free, runner.id or 0, gpus) or []
            gpus_free[runner.id or 0] = [g for g in gpus_free[runner.id or 0] if g not in ids]
            free[runner.id or 0] -= 1
            active[group] = active.get(group, 0) + 1
            assignments.append((job, runner, ids))
    enqueued = 0
    for job, runner, ids in assignments:
        async with sc.sessions() as session, session.begin():
            claimed = await _claim(session, job, runner, now, gpu_ids=ids)
        if claimed:
            await enqueue_run_job(
                sc.redis, job_id=job.id or 0, attempt=job.attempt, queue_name=runner.queue_name
            )
            enqueued += 1
    return enqueued


def _max_parallel(job: Job) -> int | None:
    strategy = job.spec.get("job", {}).get("strategy") or {}
    limit = strategy.get("max-parallel")
    return limit if isinstance(limit, int) else None


def _at_max_parallel(job: Job, active: int) -> bool:
    """`strategy.max-parallel`: at most that many instances of a matrix job run at once."""
    limit = _max_parallel(job)
    return limit is not None and active >= limit


async def _claim(
    session: AsyncSession, job: Job, runner: Runner, now: float, *, gpu_ids: list[str]
) -> bool:
    """Claim with the runner's row locked and its slots (and GPUs) recounted: concurrent
    scheduler passes work from snapshots, and must not give one runner more jobs than
    slots, nor one GPU to two jobs. A job under max-parallel also locks its run (run
    before runner, as completions lock run before job) and recounts its group."""
    if _max_parallel(job) is not None:
        await get_run(session, job.run_id, for_update=True)
        active = await job_queries.active_jobs_by_group(session, {job.run_id})
        if _at_max_parallel(job, active.get((job.run_id, job.workflow_job), 0)):
            return False
    locked = await get_runner(session, runner.id or 0, for_update=True)
    if (
        locked is None
        or await job_queries.busy_slots_of_runner(session, runner.id or 0) >= locked.slots
    ):
        return False
    if gpu_ids:
        held = held_gpu_ids(await job_queries.active_jobs(session, runner_id=runner.id))
        if set(gpu_ids) - set(free_gpu_ids(locked, held.get(runner.id or 0, ()))):
            return False  # taken (or unfit) since the snapshot: the next pass decides again
    return await job_queries.claim_job_for_runner(
        session,
        job_id=job.id or 0,
        attempt=job.attempt,
        runner_id=runner.id or 0,
        now=now,
        gpu_ids=gpu_ids,
    )
