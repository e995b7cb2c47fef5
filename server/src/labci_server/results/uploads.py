"""What a runner reports about a job attempt: start, log lines, steps, completion.

Every call is fenced by the attempt: a runner that was paused past its lease and comes
back gets 409 (Conflict), so stored results only ever come from the current attempt.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import TERMINAL_JOB_STATES, Job, Run, Runner
from ..db.queries import jobs as job_queries
from ..db.queries.runs import get_run, mark_run_running
from ..errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from ..queue import kick_outbox, kick_scheduler, unless_redis_is_down
from ..scheduling.reconciler import plan_new_events
from ..scheduling.retry import retry_or_fail
from ..tokens import hash_token
from .ingest import finish_job

OUTCOMES = ("success", "failure", "error", "cancelled", "timed_out")
MAX_LINE_CHARS = 64 * 1024
MAX_LINES_PER_BATCH = 5000


async def authorize_attempt(
    session: AsyncSession,
    *,
    job_id: int,
    attempt: int,
    token: str | None,
    cancelled_ok: bool = False,
    lock: bool = True,
) -> Job:
    """The job, if `token` is the job token of its current, unfinished attempt.

    The token is found by its hash first, so the answer says what is wrong with it: none
    known, or its attempt has ended → 401; another job's → 403; an older attempt → 409.
    `cancelled_ok` lets a cancelled attempt still deliver what it wrote while being
    stopped (its logs and steps) until its completion report ends its token.
    `lock=False` reads the row without locking it, for log batches: they only add rows
    keyed by their attempt, and a heartbeat must never wait or skip behind one.
    """
    if not token:
        raise Unauthorized("a job token is required")
    owner = await job_queries.job_by_token_hash(session, hash_token(token))
    if owner is None:
        superseded = await job_queries.get_job(session, job_id)
        if superseded is not None and hash_token(token) in (superseded.stale_token_hashes or ()):
            # An earlier attempt of this job, retried since (its runner was paused or cut
            # off past its lease): 409, and nothing it sends is stored.
            raise Conflict(
                f"job {job_id}: this token's attempt is stale, attempt {superseded.attempt}"
                " replaced it"
            )
        raise Unauthorized("unknown job token, or its attempt has ended")
    if owner.id != job_id:
        raise Forbidden(f"this job token belongs to another job, not job {job_id}")
    job = await job_queries.get_job(session, job_id, for_update=lock)
    if job is None or job.job_token_hash != hash_token(token):
        raise Unauthorized("unknown job token, or its attempt has ended")
    if job.attempt != attempt:
        raise Conflict(f"job {job_id} attempt {attempt} is stale")
    if job.state in TERMINAL_JOB_STATES and not (cancelled_ok and job.state == "cancelled"):
        raise Unauthorized(f"job {job_id} attempt {attempt} has ended; its token with it")
    return job


async def mark_started(sc: ServerContext, *, job_id: int, attempt: int, token: str | None) -> None:
    async with sc.sessions() as session, session.begin():
        job = await authorize_attempt(session, job_id=job_id, attempt=attempt, token=token)
        if job.state == "queued":
            job.state = "running"
            job.started_at = time.time()
            job.lease_expires_at = time.time() + sc.settings.lease_s
            session.add(job)
            await mark_run_running(session, job.run_id)


async def add_logs(
    sc: ServerContext, *, job_id: int, attempt: int, token: str | None, lines: list[dict[str, Any]]
) -> None:
    if len(lines) > MAX_LINES_PER_BATCH:
        raise BadRequest(f"at most {MAX_LINES_PER_BATCH} log lines per batch")
    clean = [
        {
            "seq": int(line["seq"]),
            "step": int(line.get("step", -1)),
            "stream": str(line.get("stream", "stdout"))[:16].replace("\x00", "\ufffd"),
            "text": str(line.get("text", ""))[:MAX_LINE_CHARS].replace("\x00", "\ufffd"),
            "ts": float(line.get("ts", time.time())),
        }
        for line in lines
    ]
    async with sc.sessions() as session, session.begin():
        await authorize_attempt(
            session, job_id=job_id, attempt=attempt, token=token, cancelled_ok=True, lock=False
        )
        await job_queries.add_log_lines(session, job_id=job_id, attempt=attempt, lines=clean)


async def update_step(
    sc: ServerContext,
    *,
    job_id: int,
    attempt: int,
    index: int,
    token: str | None,
    values: dict[str, Any],
) -> None:
    async with sc.sessions() as session, session.begin():
        job = await authorize_attempt(
            session, job_id=job_id, attempt=attempt, token=token, cancelled_ok=True
        )
        steps = job.spec.get("job", {}).get("steps", [])
        if not 0 <= index < len(steps):
            raise BadRequest(f"job {job_id} has no step {index}")
        name = steps[index].get("name") or steps[index].get("run", "").split("\n")[0][:60]
        await job_queries.upsert_step(
            session, job_id=job_id, attempt=attempt, index=index, values={"name": name, **values}
        )


async def complete_job(
    sc: ServerContext,
    *,
    job_id: int,
    attempt: int,
    token: str | None,
    outcome: str,
    reason: str | None,
    metrics: dict[str, float] | None,
    metrics_error: str | None,
    record: dict[str, Any] | None = None,
) -> None:
    if outcome not in OUTCOMES:
        raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
    if metrics is not None and not all(
        isinstance(v, int | float) and math.isfinite(v) for v in metrics.values()
    ):
        outcome, reason, metrics = "error", "metrics invalid: values must be finite numbers", None
    if metrics_error and outcome == "success":
        outcome, reason = "error", metrics_error
    async with sc.sessions() as session, session.begin():
        peek = await job_queries.get_job(session, job_id)
        if peek is None:
            raise NotFound(f"job {job_id} does not exist")
        run = await get_run(session, peek.run_id, for_update=True)  # lock order: run, job
        job = await authorize_attempt(
            session, job_id=job_id, attempt=attempt, token=token, cancelled_ok=True
        )
        if job.state == "cancelled":
            job.job_token_hash = None  # the cancelled attempt has reported: its token ends
            session.add(job)
            stopped = True
        else:
            stopped = False
            await _finish_reported(sc, session, job, run, record, outcome, reason, metrics)
    await kick_scheduler(sc.redis)  # room freed; a stopped job's `concurrency:` groups too
    if stopped:
        return
    await kick_outbox(sc.redis)
    with unless_redis_is_down("planning of baselines"):  # else the reconciler plans them
        await plan_new_events(sc)  # a verdict may have asked for its baseline to be measured


async def _finish_reported(
    sc: ServerContext,
    session: AsyncSession,
    job: Job,
    run: Run | None,
    record: dict[str, Any] | None,
    outcome: str,
    reason: str | None,
    metrics: dict[str, float] | None,
) -> None:
    runner = await session.get(Runner, job.runner_id) if job.runner_id else None
    job.record = {
        **_bounded_record(record or {}),
        # What the server knows better than the runner: which file and labels ran it.
        "workflow": run.workflow_path if run else None,
        "workflow_sha256": run.workflow_sha256 if run else None,
        "runner_labels": list(runner.labels) if runner else [],
    }
    await finish_job(
        session,
        job,
        outcome=outcome,
        reason=reason,
        metrics=metrics,
        run_url=sc.run_url(job.run_id),
    )


MAX_RECORD_CHARS = 16 * 1024


def _bounded_record(record: dict[str, Any]) -> dict[str, Any]:
    """A runner's record as sent, unless it is unreasonably large (then a note says so)."""
    if len(json.dumps(record, default=str)) > MAX_RECORD_CHARS:
        return {"note": f"the runner sent a record over {MAX_RECORD_CHARS} characters"}
    return record


async def release_job(
    sc: ServerContext, *, job_id: int, attempt: int, token: str | None, reason: str
) -> None:
    """The runner cannot run this attempt (an assigned GPU is not fit, or the runner was
    stopped and handed it back): it goes back to the scheduler as a new attempt, or fails
    once the attempts are used up."""
    async with sc.sessions() as session, session.begin():
        peek = await job_queries.get_job(session, job_id)
        if peek is None:
            raise NotFound(f"job {job_id} does not exist")
        await get_run(session, peek.run_id, for_update=True)
        job = await authorize_attempt(session, job_id=job_id, attempt=attempt, token=token)
        started = job.state == "running"
        await retry_or_fail(
            sc,
            session,
            job,
            retry_reason=f"handed back: {reason}" if started else f"not started: {reason}",
            fail_reason=f"handed back: {reason}" if started else f"could not start: {reason}",
        )
    await kick_outbox(sc.redis)
    await kick_scheduler(sc.redis)
