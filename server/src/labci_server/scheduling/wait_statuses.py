"""What a job's commit status says while the scheduler holds it: why it waits and its
place in the queue, then where it was placed.

A context's first status says `queued` (planning). When a pass leaves one of its jobs
waiting, the status says why (`waiting for a free runner with [gpu] (3 online); 4th in
the queue`); when such a job is placed, it says where (`placed on lab-gpu-3`). A job
whose status never said it waits (placed in the pass that first saw it, or beyond the
per-pass bound) keeps its `queued`: no status is posted for it.
Pending statuses not yet sent are rewritten in the outbox rather than queued anew
(forge/outbox.py), so a wait noticed right after planning costs the forge nothing extra.

At most MAX_PER_PASS (50) contexts are described per pass: a 10,000-job sweep must not queue
10,000 forge calls; the rest keep `queued` and their run page says the same live.
"""

from __future__ import annotations

from collections import defaultdict

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Job, Run
from ..db.queries import outbox as outbox_queries
from ..db.queries import queue as queue_queries
from ..db.queries.runs import get_run
from ..forge.outbox import enqueue_status
from .waiting import why_waiting

MAX_PER_PASS = 50


async def describe_waits(sc: ServerContext, job_ids: set[int]) -> int:
    """Post why each of `job_ids` (left waiting by this pass) waits; returns the statuses
    queued."""
    if not job_ids:
        return 0
    posted = 0
    async with sc.sessions() as session, session.begin():
        by_run: dict[int, list[Job]] = defaultdict(list)
        ids = sorted(job_ids)[: MAX_PER_PASS * 2]
        for job in await queue_queries.pending_of(session, ids):
            by_run[job.run_id].append(job)
        for run_id, jobs in sorted(by_run.items()):
            # Locked (runs in id order), so that a cancel or a result committing meanwhile
            # is not followed by this pending status.
            run = await get_run(session, run_id, for_update=True)
            if run is None or run.state == "finished":
                continue
            reasons = await why_waiting(session, run, jobs, settings=sc.settings)
            for context in dict.fromkeys(job.context for job in jobs):
                if posted >= MAX_PER_PASS:
                    return posted
                first = next(job for job in jobs if job.context == context)
                reason = reasons.get(first.id or 0)
                if reason is None:
                    continue
                await _pending(sc, session, run, context, reason)
                posted += 1
    return posted


async def describe_placed(
    sc: ServerContext, session: AsyncSession, placed: list[tuple[int, str]]
) -> None:
    """`placed on <runner>` for the (job id, runner name) whose context's status said it
    was waiting; part of the claim's transaction. Contexts still saying `queued` keep it:
    no forge call for a placing nobody was told to wait for."""
    for job_id, runner in placed[:MAX_PER_PASS]:
        job = await session.get(Job, job_id)
        run = await session.get(Run, job.run_id) if job is not None else None
        if job is None or run is None:
            continue
        said = await outbox_queries.messages_for_context(
            session, repository_id=run.repository_id, commit_sha=run.commit_sha, context=job.context
        )
        if said and said[-1].state == "pending" and said[-1].description.startswith("waiting"):
            await _pending(sc, session, run, job.context, f"placed on {runner}")


async def _pending(
    sc: ServerContext, session: AsyncSession, run: Run, context: str, description: str
) -> None:
    await enqueue_status(
        session,
        repository_id=run.repository_id,
        commit_sha=run.commit_sha,
        context=context,
        state="pending",
        description=description,
        target_url=sc.run_url(run.id),
    )
