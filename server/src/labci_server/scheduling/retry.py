"""A job attempt that will not finish goes back to the scheduler as a new attempt — or,
once its attempts are used up, fails with the reason."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Job
from ..results.ingest import finish_job


def back_to_pending(session: AsyncSession, job: Job, *, reason: str) -> None:
    """A new attempt number fences off the old one: its uploads get 409 from now on."""
    if job.job_token_hash is not None:
        # Remembered, not forgotten: with only the current token known, the old attempt's
        # runner (paused past its lease, then back) was told 401 "unknown token" (B2).
        job.stale_token_hashes = [*(job.stale_token_hashes or []), job.job_token_hash]
    job.attempt += 1
    job.state = "pending"
    job.runner_id = None
    job.job_token_hash = None
    job.lease_expires_at = None
    job.queued_at = None
    job.gpu_ids = None
    job.started_at = None
    job.reason = reason
    job.record = None  # the record is the attempt's: the next one brings its own
    job.shape = None  # indexed again by the next scheduling pass, waiting from then
    job.pending_since = None
    session.add(job)


async def retry_or_fail(
    sc: ServerContext, session: AsyncSession, job: Job, *, retry_reason: str, fail_reason: str
) -> bool:
    """A new attempt while attempts remain (True), else the job errors (False).

    Part of the caller's transaction, which holds the job's run locked.
    """
    if job.attempt < sc.settings.max_attempts:
        back_to_pending(session, job, reason=retry_reason)
        return True
    await finish_job(
        session,
        job,
        outcome="error",
        reason=f"{fail_reason} ({job.attempt} attempts)",
        metrics=None,
        run_url=sc.run_url(job.run_id),
    )
    return False
