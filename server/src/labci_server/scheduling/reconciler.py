"""Periodic repair: SQL is the truth, Redis only carries dispatch.

Each pass: re-enqueue planning for events stuck in `received`; judge again verdicts that
wait for a baseline measurement which has ended; re-enqueue `queued` jobs
that Redis lost (flush, restart without persistence); return unstarted jobs of runners
that went silent to `pending`; retry or fail `running` jobs whose lease expired; then
end the waits that outlasted `queue_timeout`; then kick the scheduler (a safety net: its
own loop also runs a pass every reaper interval) and queue a pass over the bisections.
"""

from __future__ import annotations

import logging
import time

from sqlmodel.ext.asyncio.session import AsyncSession

from ..bisection.advance import wake_bisections
from ..context import ServerContext
from ..db.models import Job
from ..db.queries import jobs as job_queries
from ..db.queries.events import unplanned_events
from ..db.queries.runners import get_runner, online_runners
from ..db.queries.runs import get_run
from ..queue import (
    enqueue_plan,
    enqueue_run_job,
    kick_outbox,
    kick_scheduler,
    run_job_known,
    withdraw_run_job,
)
from ..results.publish import rejudge_awaiting
from .retry import back_to_pending, retry_or_fail
from .scheduler import end_long_waits

log = logging.getLogger(__name__)

# Grace before the reconciler second-guesses a fresh row: the API or the scheduler may be
# between their commit and their enqueue.
SETTLE_S = 2.0


async def reconcile(sc: ServerContext) -> None:
    now = time.time()
    await replan_stuck_events(sc, now)
    await rejudge_waiting_verdicts(sc, now)
    await requeue_lost_jobs(sc, now)
    await release_jobs_of_silent_runners(sc, now)
    await reap_expired_leases(sc, now)
    await end_long_waits(sc, now)
    await kick_scheduler(sc.redis)
    await wake_bisections(sc)


async def repair_leases(sc: ServerContext) -> None:
    """The repairs that need only SQL, also run on a loop of their own: the full pass waits
    for Redis while it is away, and these must not (a runner lost during a Redis outage
    is reaped on time all the same)."""
    now = time.time()
    await release_jobs_of_silent_runners(sc, now)
    await reap_expired_leases(sc, now)


async def replan_stuck_events(sc: ServerContext, now: float, *, grace_s: float = SETTLE_S) -> None:
    async with sc.sessions() as session:
        events = await unplanned_events(session, received_before=now - grace_s)
    for event in events:
        await enqueue_plan(sc.redis, event.id or 0)


async def plan_new_events(sc: ServerContext) -> None:
    """Plan events stored by other work (a baseline a verdict asked for) right away."""
    await replan_stuck_events(sc, time.time(), grace_s=0.0)


async def rejudge_waiting_verdicts(sc: ServerContext, now: float) -> None:
    """Verdicts waiting for a baseline whose measurement ended unseen (its plan failed, a
    race with the base's own completion) are judged again."""
    async with sc.sessions() as session, session.begin():
        ended = await rejudge_awaiting(session, updated_before=now - SETTLE_S)
    if ended:
        await kick_outbox(sc.redis)


async def requeue_lost_jobs(sc: ServerContext, now: float) -> None:
    async with sc.sessions() as session:
        queued = await job_queries.jobs_in_state(session, "queued")
        runners = {r.id: r for r in await online_runners(session, seen_after=0)}
    for job in queued:
        runner = runners.get(job.runner_id)
        if runner is None or (job.queued_at or 0) > now - SETTLE_S:
            continue
        if not await run_job_known(sc.redis, job.id or 0, job.attempt, runner.queue_name):
            log.warning(
                "reconciler: job %s attempt %s was lost by Redis; re-enqueuing", job.id, job.attempt
            )
            await enqueue_run_job(
                sc.redis, job_id=job.id or 0, attempt=job.attempt, queue_name=runner.queue_name
            )


async def release_jobs_of_silent_runners(sc: ServerContext, now: float) -> None:
    """B10: a runner whose heartbeats stopped holds queued jobs it never started; they go
    back to the scheduler as new attempts (placed on an eligible runner by the pass this
    kicks) and off the silent runner's queue."""
    withdrawn: list[tuple[int, int, str]] = []
    async with sc.sessions() as session, session.begin():
        alive = {r.id for r in await online_runners(session, seen_after=now - sc.settings.lease_s)}
        for job in await job_queries.jobs_in_state(session, "queued", for_update=True):
            if job.runner_id not in alive:
                log.warning(
                    "reconciler: runner %s is silent; job %s goes back to pending",
                    job.runner_id,
                    job.id,
                )
                silent = await get_runner(session, job.runner_id or 0)
                if silent is not None:
                    withdrawn.append((job.id or 0, job.attempt, silent.queue_name))
                back_to_pending(session, job, reason="runner went silent before starting the job")
    for job_id, attempt, queue_name in withdrawn:
        await withdraw_run_job(sc.redis, job_id=job_id, attempt=attempt, queue_name=queue_name)
    if withdrawn:
        await kick_scheduler(sc.redis)


async def reap_expired_leases(sc: ServerContext, now: float) -> None:
    async with sc.sessions() as session:
        expired = await job_queries.expired_leases(session, now=now)
    for candidate in expired:
        async with sc.sessions() as session, session.begin():
            # Lock order: run, then job (as in completions); re-check under the lock.
            await get_run(session, candidate.run_id, for_update=True)
            job = await job_queries.get_job(session, candidate.id or 0, for_update=True)
            if job is not None and _lease_expired(job, now):
                await _reap(sc, session, job)


def _lease_expired(job: Job, now: float) -> bool:
    return (
        job.state in ("queued", "running")
        and job.lease_expires_at is not None
        and job.lease_expires_at < now
    )


async def _reap(sc: ServerContext, session: AsyncSession, job: Job) -> None:
    lost_attempt = job.attempt
    retried = await retry_or_fail(
        sc,
        session,
        job,
        retry_reason=f"runner lost during attempt {lost_attempt}",
        fail_reason="runner lost",
    )
    if retried:
        log.warning("reaper: job %s lost its runner; retrying as attempt %s", job.id, job.attempt)
