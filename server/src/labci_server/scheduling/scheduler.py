"""One scheduling pass: place what can be placed now, fail what can never be placed.

A pass decides per shape (scheduling/shapes.py), not per job: the queue's length does not
enter its cost, only what it places. In order:

1. Index the jobs that became pending since the last pass: their shape, priority,
   repository and since when they wait (a job is indexed once per attempt).
2. Read the queue's summary — pending jobs per (shape, repository) — and the fleet.
3. A shape that no registered runner could ever take (labels, GPUs, CPUs, memory) fails
   its jobs at once, with the reason: such a job must not wait silently.
4. For each shape that some online runner has room for, read only the heads of each
   repository's queue, as many as could be placed. Order them by priority, then by how
   many jobs their repository already has queued or running plus their place in its queue
   (a round robin between repositories: one repository's 200-job sweep does not starve
   another's pull request check), then oldest first. A repository's job limit and a
   matrix's `max-parallel` hold back what they cap.
5. Give each job the best-fitting runner (scheduling/placement.py), then claim them all
   in one transaction with the runners' rows locked and their room recounted, and enqueue
   each claimed job on its runner's queue.

The database claim (`pending` → `queued` on one runner) happens before the enqueue, so two
schedulers racing for a job cannot both win; the arq job id makes a repeated enqueue a
no-op. If Redis fails after the claim, the reconciler re-enqueues the job by id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Job, Run, Runner
from ..db.queries import jobs as job_queries
from ..db.queries import queue as queue_queries
from ..db.queries.runners import all_runners, lock_runners
from ..db.queries.runs import get_run
from ..queue import enqueue_run_job, kick_outbox
from ..results.ingest import finish_job
from ..settings import Settings
from .placement import Room, best_fit, never_placeable, rooms
from .shapes import Shape, shape_of
from .waiting import why_waiting

log = logging.getLogger(__name__)

# Indexing is batched: a planning burst of thousands of jobs is indexed over a few passes.
INDEX_BATCH = 2000


@dataclass
class Candidate:
    job: Job
    shape: Shape
    rank: int  # its place in its repository's queue of this shape


@dataclass
class Assignment:
    job: Job
    shape: Shape
    runner: Runner


def priority_of(run: Run, default_branch: str | None, settings: Settings) -> int:
    """Pull request checks 0; pushes to the default branch (and baseline measurements on
    it) and manual runs as configured."""
    if run.trigger == "workflow_dispatch":
        return settings.priority_manual
    if run.trigger in ("push", "baseline") and run.branch == (default_branch or run.branch):
        return settings.priority_default_branch
    return 0


async def index_new_pending(sc: ServerContext, now: float) -> int:
    async with sc.sessions() as session, session.begin():
        found = await queue_queries.unindexed_pending(session, limit=INDEX_BATCH)
        for job, run, default_branch in found:
            await queue_queries.index_job(
                session,
                job.id or 0,
                shape=shape_of(job, trusted=run.trusted).key(),
                priority=priority_of(run, default_branch, sc.settings),
                repository_id=run.repository_id,
                pending_since=now,
            )
    return len(found)


async def schedule_jobs(sc: ServerContext) -> int:
    """Assign what can be assigned now; returns the number of jobs enqueued."""
    now = time.time()
    await index_new_pending(sc, now)
    async with sc.sessions() as session:
        summary = await queue_queries.pending_summary(session)
        if not summary:
            return 0
        registered = [r for r in await all_runners(session) if r.revoked_at is None]
        online = [
            r
            for r in registered
            if r.drained_at is None
            and r.last_heartbeat_at is not None
            and r.last_heartbeat_at > now - sc.settings.lease_s
        ]
        room = rooms(online, await job_queries.active_jobs(session))
        shapes = {key: Shape.from_key(key) for key, _, _, _ in summary}
        impossible = {
            key: why for key, shape in shapes.items() if (why := never_placeable(shape, registered))
        }
        fitting = {
            key: [r for r in room.values() if r.fits(shape)]
            for key, shape in shapes.items()
            if key not in impossible
        }
        candidates = await _queue_heads(sc.settings, session, summary, shapes, fitting)
    if impossible:
        await fail_never_placeable(sc, impossible)
    if not candidates:
        return 0
    async with sc.sessions() as session:
        assignments = await _assign(sc.settings, session, candidates, room)
    return await _claim_and_enqueue(sc, assignments, now)


async def _queue_heads(
    settings: Settings,
    session: AsyncSession,
    summary: list[tuple[str, int, int, int]],
    shapes: dict[str, Shape],
    fitting: dict[str, list[Room]],
) -> list[Candidate]:
    """The jobs worth considering now: per (shape, repository), as many heads of its queue
    as the runners that fit the shape have slots (never the whole queue)."""
    found: list[Candidate] = []
    for key, repository_id, _count, _top in summary:
        places = sum(r.slots for r in fitting.get(key, ()))
        if places <= 0:
            continue
        heads = await queue_queries.queue_heads(
            session, shape=key, repository_id=repository_id, limit=places
        )
        found += [Candidate(job, shapes[key], rank) for rank, job in enumerate(heads)]
    return found


async def _assign(
    settings: Settings, session: AsyncSession, candidates: list[Candidate], room: dict[int, Room]
) -> list[Assignment]:
    by_repository = await queue_queries.active_by_repository(session)
    limits = await queue_queries.repository_limits(
        session, {c.job.repository_id or 0 for c in candidates}
    )
    groups = await job_queries.active_jobs_by_group(
        session, {c.job.run_id for c in candidates if _max_parallel(c.job) is not None}
    )

    def order(c: Candidate) -> tuple[int, int, int]:
        repo = c.job.repository_id or 0
        return (-c.job.priority, by_repository.get(repo, 0) + c.rank, c.job.id or 0)

    assignments: list[Assignment] = []
    for candidate in sorted(candidates, key=order):
        job, repo = candidate.job, candidate.job.repository_id or 0
        limit = _limit(settings, limits.get(repo))
        if limit is not None and by_repository.get(repo, 0) >= limit:
            continue
        group = (job.run_id, job.workflow_job)
        if _at_max_parallel(job, groups.get(group, 0)):
            continue
        chosen = best_fit(candidate.shape, room.values())
        if chosen is None:
            continue
        chosen.take(candidate.shape)
        by_repository[repo] = by_repository.get(repo, 0) + 1
        groups[group] = groups.get(group, 0) + 1
        assignments.append(Assignment(job, candidate.shape, chosen.runner))
    return assignments


def _limit(settings: Settings, repository_limit: int | None) -> int | None:
    """A repository's own limit, else the server's; None: no limit."""
    if repository_limit is not None:
        return repository_limit
    return settings.repository_max_jobs or None


async def _claim_and_enqueue(sc: ServerContext, assignments: list[Assignment], now: float) -> int:
    """Claim in one transaction: the runs of capped matrix jobs, then the limited
    repositories' active jobs, then the runners' rows are locked (the order completions
    and heartbeats take them in), and the room is recounted under the locks — concurrent
    passes work from snapshots and must not give a runner more than it has, nor one GPU to
    two jobs."""
    if not assignments:
        return 0
    claimed: list[tuple[Job, Runner]] = []
    async with sc.sessions() as session, session.begin():
        capped_runs = sorted({a.job.run_id for a in assignments if _max_parallel(a.job)})
        for run_id in capped_runs:
            await get_run(session, run_id, for_update=True)
        groups = await job_queries.active_jobs_by_group(session, set(capped_runs))
        limited = {a.job.repository_id or 0 for a in assignments}
        limits = await queue_queries.repository_limits(session, limited)
        limits = {repo: _limit(sc.settings, limit) for repo, limit in limits.items()}
        limits = {repo: limit for repo, limit in limits.items() if limit is not None}
        if limits:
            await queue_queries.lock_repositories(session, set(limits))
        by_repository = await queue_queries.active_by_repository(session) if limits else {}
        runner_ids = sorted({a.runner.id or 0 for a in assignments})
        locked = [
            r
            for r in await lock_runners(session, runner_ids)
            if r.revoked_at is None and r.drained_at is None
        ]
        active = await job_queries.active_jobs_of_runners(session, runner_ids)
        room = rooms(locked, active)
        for a in assignments:
            repo = a.job.repository_id or 0
            if repo in limits and by_repository.get(repo, 0) >= limits[repo]:
                continue
            group = (a.job.run_id, a.job.workflow_job)
            if _at_max_parallel(a.job, groups.get(group, 0)):
                continue
            runner_room = room.get(a.runner.id or 0)
            if runner_room is None or not runner_room.fits(a.shape):
                continue  # taken (or unfit) since the snapshot: the next pass decides again
            gpu_ids = runner_room.take(a.shape)
            if await job_queries.claim_job_for_runner(
                session,
                job_id=a.job.id or 0,
                attempt=a.job.attempt,
                runner_id=a.runner.id or 0,
                now=now,
                gpu_ids=gpu_ids,
            ):
                by_repository[repo] = by_repository.get(repo, 0) + 1
                groups[group] = groups.get(group, 0) + 1
                claimed.append((a.job, a.runner))
    for job, runner in claimed:
        await enqueue_run_job(
            sc.redis, job_id=job.id or 0, attempt=job.attempt, queue_name=runner.queue_name
        )
    return len(claimed)


async def fail_never_placeable(sc: ServerContext, reasons: dict[str, str]) -> int:
    """Jobs that no registered runner could ever take error at once, with the reason."""
    failed = 0
    for key, reason in reasons.items():
        async with sc.sessions() as session:
            jobs = await queue_queries.pending_of_shape(session, key)
        for candidate in jobs:
            async with sc.sessions() as session, session.begin():
                # Lock order: run, then job (as in completions); re-check under the lock.
                await get_run(session, candidate.run_id, for_update=True)
                job = await job_queries.get_job(session, candidate.id or 0, for_update=True)
                if job is None or job.state != "pending" or job.shape != key:
                    continue
                await finish_job(
                    session,
                    job,
                    outcome="error",
                    reason=f"cannot be placed: {reason}",
                    metrics=None,
                    run_url=sc.run_url(job.run_id),
                )
                failed += 1
    if failed:
        log.warning("failed %d job(s) no registered runner could ever take", failed)
        await kick_outbox(sc.redis)
    return failed


def _max_parallel(job: Job) -> int | None:
    strategy = job.spec.get("job", {}).get("strategy") or {}
    limit = strategy.get("max-parallel")
    return limit if isinstance(limit, int) else None


def _at_max_parallel(job: Job, active: int) -> bool:
    """`strategy.max-parallel`: at most that many instances of a matrix job run at once."""
    limit = _max_parallel(job)
    return limit is not None and active >= limit


async def end_long_waits(sc: ServerContext, now: float) -> int:
    """Jobs that waited for a runner longer than `queue_timeout` error, saying what for."""
    timeout = sc.settings.queue_timeout_s
    async with sc.sessions() as session:
        overdue = await queue_queries.waiting_since_before(session, now - timeout)
    ended = 0
    for candidate in overdue:
        async with sc.sessions() as session, session.begin():
            run = await get_run(session, candidate.run_id, for_update=True)
            job = await job_queries.get_job(session, candidate.id or 0, for_update=True)
            if run is None or job is None or job.state != "pending" or job.pending_since is None:
                continue
            if job.pending_since >= now - timeout:
                continue  # handed back to the queue since: it waits from then
            why = (await why_waiting(session, run, [job], settings=sc.settings)).get(job.id or 0)
            await finish_job(
                session,
                job,
                outcome="error",
                reason=f"waited {_duration(now - job.pending_since)} for a runner, longer than "
                f"the queue timeout ({_duration(timeout)})" + (f": {why}" if why else ""),
                metrics=None,
                run_url=sc.run_url(job.run_id),
            )
            ended += 1
    if ended:
        log.warning("%d job(s) waited longer than the queue timeout", ended)
        await kick_outbox(sc.redis)
    return ended


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"
