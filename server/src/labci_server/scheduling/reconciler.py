"""Periodic repair: SQL is the truth, Redis only carries dispatch.

Each pass: re-enqueue planning for events stuck in `received`; re-enqueue `queued` jobs
that Redis lost (flush, restart without persistence); return unstarted jobs of runners
that went silent to `pending`; retry or fail `running` jobs whose lease expired; then
schedule whatever is pending.
"""

from __future__ import annotations

import logging
import time

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Job
from ..db.queries import jobs as job_queries
from ..db.queries.events import unplanned_events
from ..db.queries.runners import online_runners
from ..queue import enqueue_plan, enqueue_run_job, run_job_known
from ..results.ingest import finish_job
from .scheduler import schedule_jobs

log = logging.getLogger(__name__)

# Grace before the reconciler second-guesses a fresh row: the API or the scheduler may be
# between their commit and their enqueue.
SETTLE_S = 2.0


async def reconcile(sc: ServerContext) -> None:
    now = time.time()
    await replan_stuck_events(sc, now)
    await requeue_lost_jobs(sc, now)
    await release_jobs_of_silent_runners(sc, now)
    await reap_expired_leases(sc, now)
    await schedule_jobs(sc)


async def replan_stuck_events(sc: ServerContext, now: float) -> None:
    async with sc.sessions() as session:
        events = await unplanned_events(session, received_before=now - SETTLE_S)
    for event in events:
        await enqueue_plan(sc.redis, event.id or 0)


async def requeue_lost_jobs(sc: ServerContext, now: float) -> None:
    async with sc.sessions() as session:
        queued = await job_queries.jobs_in_state(session, "queued")
        runners = {r.id: r for r in await online_runners(session, seen_after=0)}
    for job in queued:
        runner = runners.get(job.runner_id)
        if runner is None or (job.queued_at or 0) > now - SETTLE_S:
            continue
        if not await run_job_known(sc.redis, job.id or 0, job.attempt):
            log.warning(
                "reconciler: job %s attempt %s was lost by Redis; re-enqueuing", job.id, job.attempt
            )
            await enqueue_run_job(
                sc.redis, job_id=job.id or 0, attempt=job.attempt, queue_name=runner.queue_name
            )


async def release_jobs_of_silent_runners(sc: ServerContext, now: float) -> None:
    async with sc.sessions() as session, session.begin():
        alive = {r.id for r in await online_runners(session, seen_after=now - sc.settings.lease_s)}
        for job in await job_queries.jobs_in_state(session, "queued", for_update=True):
            if job.runner_id not in alive:
                log.warning(
                    "reconciler: runner %s is silent; job %s goes back to pending",
                    job.runner_id,
                    job.id,
                )
                _back_to_pending(session, job, reason="runner went silent before starting the job")


async def reap_expired_leases(sc: ServerContext, now: float) -> None:
    async with sc.sessions() as session, session.begin():
        for job in await job_queries.expired_leases(session, now=now):
            if job.attempt < sc.settings.max_attempts:
                log.warning(
                    "reaper: job %s lost its runner; retrying as attempt %s",
                    job.id,
                    job.attempt + 1,
                )
                _back_to_pending(session, job, reason=f"runner lost during attempt {job.attempt}")
            else:
                await finish_job(
                    session,
                    job,
                    outcome="error",
                    reason=f"runner lost ({job.attempt} attempts)",
                    metrics=None,
                    run_url=sc.run_url(job.run_id),
                )


def _back_to_pending(session: AsyncSession, job: Job, *, reason: str) -> None:
    """A new attempt number fences off the old one: its uploads get 409 from now on."""
    job.attempt += 1
    job.state = "pending"
    job.runner_id = None
    job.job_token_hash = None
    job.lease_expires_at = None
    job.queued_at = None
    job.started_at = None
    job.reason = reason
    session.add(job)
