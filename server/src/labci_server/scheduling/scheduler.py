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
   matrix's `max-parallel` hold back what they cap; a `concurrency:` group holds back its
   members while one is in progress (planning/concurrency.py cancels the ones superseded).
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

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Job, Run, Runner
from ..db.queries import concurrency as concurrency_queries
from ..db.queries import jobs as job_queries
from ..db.queries import queue as queue_queries
from ..db.queries.runners import all_runners, lock_runners
from ..db.queries.runs import get_run
from ..queue import enqueue_run_job, kick_outbox, kick_scheduler
from ..results.ingest import finish_job
from ..settings import Settings
from .order import (
    Assignment,
    Candidate,
    Groups,
    Queued,
    at_max_parallel,
    effective_limit,
    plan_assignments,
)
from .placement import Room, can_run, could_ever_run, held_from_rows, never_placeable, rooms
from .runners import takes_prefetch
from .shapes import Shape, max_parallel_of, shape_of
from .wait_statuses import describe_placed, describe_waits
from .waiting import group_holder, repository_load, why_waiting

log = logging.getLogger(__name__)

# Indexing is batched: a planning burst of thousands of jobs is indexed over a few passes.
INDEX_BATCH = 2000


def priority_of(run: Run, default_branch: str | None, settings: Settings) -> int:
    """Pull request checks 0; pushes to the default branch (and baseline measurements and
    scheduled runs on it) and manual runs as configured."""
    if run.trigger == "workflow_dispatch":
        return settings.priority_manual
    if run.trigger == "schedule":
        return settings.priority_default_branch
    if run.trigger in ("push", "baseline") and default_branch and run.branch == default_branch:
        return settings.priority_default_branch
    return 0


async def index_new_pending(sc: ServerContext, now: float) -> list[int]:
    async with sc.sessions() as session, session.begin():
        found = await queue_queries.unindexed_pending(session, limit=INDEX_BATCH)
        await queue_queries.index_jobs(
            session,
            [
                {
                    "job_id": job.id or 0,
                    "shape": shape_of(job, trusted=run.trusted).key(),
                    "priority": priority_of(run, default_branch, sc.settings),
                    "repo": run.repository_id,
                    "since": now,
                    "cap": max_parallel_of(job),
                }
                for job, run, default_branch in found
            ],
        )
    return [job.id or 0 for job, _, _ in found]


async def schedule_jobs(sc: ServerContext) -> int:
    """Assign what can be assigned now; returns the number of jobs enqueued. The jobs seen
    for the first time and left waiting have their statuses say why (wait_statuses.py)."""
    now = time.time()
    indexed = await index_new_pending(sc, now)
    if len(indexed) >= INDEX_BATCH:
        await kick_scheduler(sc.redis)  # more to index: another pass right after this one
    placed = await _place(sc, now)
    if indexed and await describe_waits(sc, set(indexed) - placed):
        await kick_outbox(sc.redis)
    return len(placed)


async def _place(sc: ServerContext, now: float) -> set[int]:
    """The ids of the jobs placed."""
    async with sc.sessions() as session:
        summary = await queue_queries.pending_summary(session)
        if not summary:
            return set()
        # Registered: every runner not removed, revoked ones too (a token is revoked to be
        # rotated; the machine comes back under a new registration). `labci runners remove`
        # takes one out of the count.
        registered = await all_runners(session)
        online = [
            r
            for r in registered
            if r.revoked_at is None
            and r.drained_at is None
            and r.last_heartbeat_at is not None
            and r.last_heartbeat_at > now - sc.settings.lease_s
        ]
        room = rooms(online, held_from_rows(await queue_queries.held(session)))
        shapes = {key: Shape.from_key(key) for key, _, _, _ in summary}
        impossible = {
            key: why for key, shape in shapes.items() if (why := never_placeable(shape, registered))
        }
        fitting = {
            key: [r for r in room.values() if r.fits(shape)]
            for key, shape in shapes.items()
            if key not in impossible
        }
        possible = {
            key: [
                r
                for r in room.values()
                if can_run(r.runner, shape) and could_ever_run(r.runner, shape)
            ]
            for key, shape in shapes.items()
            if shape.gpus and key not in impossible
        }
        stopping = now - sc.settings.lease_s
        in_use = await concurrency_queries.groups_in_use(session, stopping_since=stopping)
        held_runs: dict[tuple[int, str], int] = {}
        held_jobs: set[tuple[int, str]] = set()
        waiting_runs: set[int] = set()
        if in_use:
            held_runs, held_jobs = await concurrency_queries.busy_groups(
                session, stopping_since=stopping
            )
            waiting_runs = await concurrency_queries.runs_waiting_on_groups(session, held_runs)
        candidates = await _queue_heads(
            session,
            summary,
            shapes,
            fitting,
            possible,
            skip_runs=waiting_runs,
            held_groups=held_jobs,
        )
        assignments: list[Assignment] = []
        if candidates:
            repos = {c.job.repository_id or 0 for c in candidates}
            facts = await queue_queries.repository_queue_facts(session, repos)
            capped = {c.job.run_id for c in candidates if c.job.max_parallel is not None}
            assignments = plan_assignments(
                candidates,
                fitting,
                active_by_repository=await queue_queries.active_by_repository(session),
                last_served={repo: placed for repo, (_, placed) in facts.items()},
                limits={
                    repo: effective_limit(limit, sc.settings.repository_max_jobs)
                    for repo, (limit, _) in facts.items()
                },
                groups=await job_queries.active_jobs_by_group(session, capped),
                possible=possible,
                concurrency=Groups(
                    held_runs,
                    held_jobs,
                    await concurrency_queries.run_groups(
                        session, {c.job.run_id for c in candidates}
                    )
                    if in_use
                    else {},
                ),
            )
    if impossible:
        await fail_never_placeable(sc, impossible)
    if not assignments:
        return set()
    return await _claim_and_enqueue(sc, assignments, now)


async def _queue_heads(
    session: AsyncSession,
    summary: list[tuple[str, int, int, int]],
    shapes: dict[str, Shape],
    fitting: dict[str, list[Room]],
    possible: dict[str, list[Room]],
    *,
    skip_runs: set[int],
    held_groups: set[tuple[int, str]],
) -> list[Candidate]:
    """The jobs worth considering now: per (shape, repository), as many heads of its queue
    as the runners that fit the shape have slots (never the whole queue); of a GPU shape
    nothing fits now, the head, to reserve a runner for. Members of `concurrency:` groups
    that another member holds are left out (`skip_runs`, `held_groups`)."""
    wanted = []
    for key, repository_id, _count, _top in summary:
        places = sum(r.slots for r in fitting.get(key, ()))
        if places == 0 and possible.get(key):
            places = 1
        if places > 0:
            wanted.append((key, repository_id, places))
    heads = await queue_queries.queue_heads(
        session,
        wanted,
        skip_groups=await queue_queries.groups_at_cap(session),
        skip_runs=skip_runs,
        held_groups=held_groups,
    )
    return [
        Candidate(job, shapes[key], key, rank)
        for (key, _), jobs in heads.items()
        for rank, job in enumerate(jobs)
    ]


async def _claim_and_enqueue(
    sc: ServerContext, assignments: list[Assignment], now: float
) -> set[int]:
    """Claim in one transaction: the rows of the jobs' runs, then of their repositories
    (limits, when they were served), then of the runners are locked, each kind in id order
    (runs first, as completions and cancels take them), and the room is recounted under the
    locks — concurrent passes work from snapshots and must not give a runner more than it
    has, nor one GPU to two jobs."""
    if not assignments:
        return set()
    claimed: list[tuple[Queued, Runner]] = []
    async with sc.sessions() as session, session.begin():
        # Every run of the jobs placed, in id order: completions and cancels lock a run and
        # then its jobs, so a claim taking a job's row must hold its run first.
        await queue_queries.lock_runs(session, {a.job.run_id for a in assignments})
        capped_runs = {a.job.run_id for a in assignments if a.job.max_parallel}
        groups = await job_queries.active_jobs_by_group(session, capped_runs)
        repos = {a.job.repository_id or 0 for a in assignments}
        limits = await queue_queries.lock_repositories(session, repos)
        limits = {
            repo: effective_limit(limit, sc.settings.repository_max_jobs)
            for repo, limit in limits.items()
        }
        limits = {repo: limit for repo, limit in limits.items() if limit is not None}
        by_repository = await queue_queries.active_by_repository(session) if limits else {}
        # A `concurrency:` group belongs to one repository, whose row is locked: what its
        # members hold now is what concurrent passes committed.
        concurrency = Groups()
        stopping = now - sc.settings.lease_s
        if await concurrency_queries.groups_in_use(session, stopping_since=stopping):
            held_runs, held_jobs = await concurrency_queries.busy_groups(
                session, repos, stopping_since=stopping
            )
            run_ids = {a.job.run_id for a in assignments}
            concurrency = Groups(
                held_runs, held_jobs, await concurrency_queries.run_groups(session, run_ids)
            )
        runner_ids = sorted({a.runner.id or 0 for a in assignments})
        locked = [
            r
            for r in await lock_runners(session, runner_ids)
            if r.revoked_at is None and r.drained_at is None
        ]
        held = held_from_rows(await queue_queries.held(session, runner_ids=runner_ids))
        room = rooms(locked, held)
        for a in assignments:
            repo = a.job.repository_id or 0
            if repo in limits and by_repository.get(repo, 0) >= limits[repo]:
                continue
            group = (a.job.run_id, a.job.workflow_job)
            if at_max_parallel(a.job, groups.get(group, 0)):
                continue
            if concurrency.blocked(a.job):
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
                concurrency.take(a.job)
                claimed.append((a.job, a.runner))
        # In placing order, a microsecond apart: the repository served last in this pass
        # is the one served last by the round robin's next pass.
        served = {job.repository_id or 0: now + i * 1e-6 for i, (job, _) in enumerate(claimed)}
        await queue_queries.mark_placed(session, served)
        waited = [
            (job.id or 0, runner.name)
            for job, runner in claimed
            if job.pending_since is not None and job.pending_since < now
        ]
        await describe_placed(sc, session, waited)
        hinted = {job.run_id for job, runner in claimed if takes_prefetch(runner)}
        checkouts = await queue_queries.checkouts_of_runs(session, hinted)
    for job, runner in claimed:
        checkout = checkouts.get(job.run_id) if takes_prefetch(runner) else None
        await enqueue_run_job(
            sc.redis,
            job_id=job.id or 0,
            attempt=job.attempt,
            queue_name=runner.queue_name,
            prefetch={"clone_url": checkout[0], "commit_sha": checkout[1]} if checkout else None,
        )
    if waited:
        await kick_outbox(sc.redis)
    return {job.id or 0 for job, _ in claimed}


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
            if await _held_back(sc.settings, session, job):
                # Its own matrix's max-parallel, its repository's limit or its concurrency
                # group holds it, not a want of runners: its wait for a runner starts when
                # the hold lifts.
                job.pending_since = now
                session.add(job)
                continue
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


async def _held_back(settings: Settings, session: AsyncSession, job: Job) -> bool:
    if await group_holder(session, job, settings=settings) is not None:
        return True
    if job.max_parallel is not None:
        active = await job_queries.active_jobs_by_group(session, {job.run_id})
        if active.get((job.run_id, job.workflow_job), 0) >= job.max_parallel:
            return True
    active, limit = await repository_load(session, settings, job.repository_id or 0)
    return limit is not None and active >= limit


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"
