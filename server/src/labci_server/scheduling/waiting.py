"""Why a job waits, in words, with its place in the queue (the run page): a job should
never wait silently. What the scheduler checks, asked of the runners as they are now: one
online with all its labels (and a Docker engine, for a container job; one that isolates
untrusted code, for a fork's), with enough healthy GPUs; if there is such a runner, the job
waits for a free slot behind the jobs ahead of it."""

from __future__ import annotations

import time
from bisect import bisect_left

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import Job, Run
from ..db.queries import jobs as job_queries
from ..db.queries.runners import online_runners
from .gpus import gpus_wanted, healthy_gpu_ids
from .scheduler import job_needs


async def why_waiting(
    session: AsyncSession, run: Run, jobs: list[Job], *, lease_s: float
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
    runners = await online_runners(session, seen_after=time.time() - lease_s)
    # One query for every place: the queue up to this run's newest pending job.
    queue = await job_queries.queue_up_to(session, max(job.id or 0 for job in pending))
    for job in pending:
        labels = ", ".join(job.runs_on)
        kind = job_needs(job)
        able = [
            r
            for r in runners
            if set(job.runs_on) <= set(r.labels)
            and (r.capabilities or {}).get(kind, kind == "host")
            and (run.trusted or (r.capabilities or {}).get("untrusted", False))
        ]
        what = f"[{labels}]" + (" that runs containers" if kind == "container" else "")
        if not run.trusted:
            what += " that isolates untrusted code"
        gpus = gpus_wanted(job)
        drained = [r for r in able if r.drained_at is not None]
        able = [r for r in able if r.drained_at is None]
        if not able:
            also = f" ({len(drained)} drained)" if drained else ""
            found[job.id or 0] = f"no online runner with {what}{also}"
            continue
        if gpus and not any(len(healthy_gpu_ids(r)) >= gpus for r in able):
            found[job.id or 0] = f"no online runner with {what} has {gpus} healthy GPUs"
            continue
        place = bisect_left(queue, job.id or 0) + 1
        found[job.id or 0] = (
            f"waiting for a free runner with {what} ({len(able)} online); "
            f"{place}{_ordinal(place)} in the queue"
        )
    return found


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
