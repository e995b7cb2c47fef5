"""Recording a job's end: its state, metrics, the run's conclusion and the forge status."""

from __future__ import annotations

import time

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import TERMINAL_JOB_STATES, Job
from ..db.queries import jobs as job_queries
from ..db.queries.runs import get_run
from ..forge.outbox import enqueue_status
from .report import describe_outcome

RUN_CONCLUSION_ORDER = ("error", "timed_out", "cancelled", "failure", "success")


async def finish_job(
    session: AsyncSession,
    job: Job,
    *,
    outcome: str,
    reason: str | None,
    metrics: dict[str, float] | None,
    run_url: str,
) -> None:
    """Make the job terminal (once) and queue its final status; part of the caller's transaction."""
    if job.state in TERMINAL_JOB_STATES:
        return
    assert job.id is not None
    now = time.time()
    job.state = outcome
    job.reason = reason
    job.finished_at = now
    job.lease_expires_at = None
    job.job_token_hash = None
    session.add(job)
    if metrics is not None:
        await job_queries.replace_metrics(
            session, job_id=job.id, attempt=job.attempt, metrics=metrics
        )
    # Locked: two jobs of one run finishing together must not both see the other unfinished.
    run = await get_run(session, job.run_id, for_update=True)
    if run is None:
        return
    duration_s = now - job.started_at if job.started_at else None
    state, description = describe_outcome(
        outcome, reason=reason, metrics=metrics or {}, duration_s=duration_s
    )
    await enqueue_status(
        session,
        repository_id=run.repository_id,
        commit_sha=run.commit_sha,
        context=job.context,
        state=state,
        description=description,
        target_url=run_url,
    )
    await session.flush()
    states = await job_queries.job_states(session, run.id or 0)
    if all(s in TERMINAL_JOB_STATES for s in states):
        run.state = "finished"
        run.finished_at = now
        run.conclusion = next((c for c in RUN_CONCLUSION_ORDER if c in states), "success")
    else:
        run.state = "running"
    session.add(run)
