"""The scheduler's reads of the queue: pending jobs by shape and repository, in queue order.

Every read here goes through the partial indexes on pending jobs (`ix_jobs_pending_queue`,
`ix_jobs_pending_since`), so its cost follows what it returns, not the length of the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, or_, tuple_, union_all, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Job, Repository, Run


async def unindexed_pending(
    session: AsyncSession, *, limit: int = 2000
) -> list[tuple[Job, Run, str | None]]:
    """Pending jobs the scheduler has not indexed yet, with their run and their repository's
    default branch; jobs of runs that wait for a maintainer's approval stay out."""
    stmt = (
        select(Job, Run, Repository.default_branch)
        .join(Run, col(Run.id) == col(Job.run_id))
        .join(Repository, col(Repository.id) == col(Run.repository_id))
        .where(
            col(Job.state) == "pending",
            col(Job.shape).is_(None),
            or_(col(Run.approval).is_(None), col(Run.approval) != "awaiting"),
        )
        .order_by(col(Job.id))
        .limit(limit)
    )
    return [(job, run, branch) for job, run, branch in (await session.exec(stmt)).all()]


async def index_jobs(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Index pending jobs in one executemany: each row has `job_id`, `shape`, `priority`,
    `repo`, `since` and `cap` (max-parallel). A job that left `pending` meanwhile is left
    alone."""
    if not rows:
        return
    table = Job.__table__  # type: ignore[attr-defined]
    stmt = (
        update(table)
        .where(
            table.c.id == bindparam("job_id"),
            table.c.state == "pending",
            table.c.shape.is_(None),
        )
        .values(
            shape=bindparam("shape"),
            priority=bindparam("priority"),
            repository_id=bindparam("repo"),
            pending_since=bindparam("since"),
            max_parallel=bindparam("cap"),
        )
    )
    await session.exec(stmt, params=rows)  # type: ignore[call-overload]


async def pending_summary(session: AsyncSession) -> list[tuple[str, int, int, int]]:
    """(shape, repository, jobs, highest priority) of the indexed pending jobs."""
    stmt = (
        select(Job.shape, Job.repository_id, func.count(), func.max(Job.priority))
        .where(col(Job.state) == "pending", col(Job.shape).is_not(None))
        .group_by(col(Job.shape), col(Job.repository_id))
    )
    return [
        (shape or "", repo or 0, count, top or 0)
        for shape, repo, count, top in (await session.exec(stmt)).all()
    ]


@dataclass(frozen=True)
class QueuedJob:
    """A pending job as the scheduler reads it: the columns, not the row (a pass reads
    hundreds; building ORM objects with their JSON specs would cost most of the pass)."""

    id: int
    run_id: int
    workflow_job: str
    attempt: int
    priority: int
    repository_id: int
    max_parallel: int | None
    concurrency_group: str | None = None
    pending_since: float | None = None


async def groups_at_cap(session: AsyncSession) -> list[tuple[int, str]]:
    """(run, workflow job) of the matrices with as many instances queued or running as their
    `max-parallel`: their pending instances are not worth reading."""
    stmt = (
        select(Job.run_id, Job.workflow_job)
        .where(col(Job.state).in_(["queued", "running"]), col(Job.max_parallel).is_not(None))
        .group_by(col(Job.run_id), col(Job.workflow_job))
        .having(func.count() >= func.max(Job.max_parallel))
    )
    return [(run_id, name) for run_id, name in (await session.exec(stmt)).all()]


async def queue_heads(
    session: AsyncSession,
    wanted: list[tuple[str, int, int]],
    *,
    skip_groups: list[tuple[int, str]] | None = None,
    skip_runs: set[int] | None = None,
    held_groups: set[tuple[int, str]] | None = None,
) -> dict[tuple[str, int], list[QueuedJob]]:
    """For each (shape, repository, limit) of `wanted`, the first `limit` pending jobs of that
    shape and repository, highest priority first, then oldest, leaving out the instances of
    `skip_groups` (matrices at their max-parallel), of `skip_runs` and of the job-level
    `concurrency:` groups of `held_groups` (whose group another member holds): a capped
    sweep at the head of its repository's queue must not hide the jobs behind it. Each part an index range scan; at
    most UNION_PARTS parts a statement (SQLite's limit on a compound SELECT is 500)."""
    found: dict[tuple[str, int], list[QueuedJob]] = {}
    for start in range(0, len(wanted), UNION_PARTS):
        found |= await _heads(
            session,
            wanted[start : start + UNION_PARTS],
            skip_groups or [],
            sorted(skip_runs or ()),
            held_groups or set(),
        )
    for heads in found.values():
        heads.sort(key=lambda j: (-j.priority, j.id))
    return found


UNION_PARTS = 200


async def _heads(
    session: AsyncSession,
    wanted: list[tuple[str, int, int]],
    skip: list[tuple[int, str]],
    skip_runs: list[int],
    held_groups: set[tuple[int, str]],
) -> dict[tuple[str, int], list[QueuedJob]]:
    if not wanted:
        return {}
    capped = [~tuple_(col(Job.run_id), col(Job.workflow_job)).in_(skip)] if skip else []
    if skip_runs:
        capped.append(col(Job.run_id).not_in(skip_runs))

    def free_groups(repository_id: int) -> list[Any]:
        held = sorted(group for repo, group in held_groups if repo == repository_id)
        if not held:
            return []
        return [or_(col(Job.concurrency_group).is_(None), col(Job.concurrency_group).not_in(held))]

    parts = [
        select(
            Job.id,
            Job.run_id,
            Job.workflow_job,
            Job.attempt,
            Job.priority,
            Job.repository_id,
            Job.max_parallel,
            Job.shape,
            Job.concurrency_group,
            Job.pending_since,
        )
        .where(
            col(Job.state) == "pending",
            col(Job.shape) == shape,
            col(Job.repository_id) == repository_id,
            *capped,
            *free_groups(repository_id),
        )
        .order_by(col(Job.priority).desc(), col(Job.id))
        .limit(limit)
        .subquery()
        for shape, repository_id, limit in wanted
    ]
    stmt = union_all(*(select(part) for part in parts))
    found: dict[tuple[str, int], list[QueuedJob]] = {}
    rows = (await session.exec(stmt)).all()  # type: ignore[call-overload]
    for job_id, run_id, name, attempt, priority, repo, cap, shape, group, since in rows:
        job = QueuedJob(job_id or 0, run_id, name, attempt, priority, repo or 0, cap, group, since)
        found.setdefault((shape, repo or 0), []).append(job)
    return found


async def held(
    session: AsyncSession, *, runner_ids: list[int] | None = None
) -> list[tuple[int, list[str], str | None, dict[str, Any] | None]]:
    """(runner, GPU ids, shape, spec) of the queued and running jobs (of `runner_ids`):
    what holds the runners' room. The spec is read only of jobs never indexed (placed
    before the index existed); the shape says the rest."""
    stmt = select(
        Job.runner_id,
        Job.gpu_ids,
        Job.shape,
        case((col(Job.shape).is_(None), col(Job.spec)), else_=None),
    ).where(col(Job.state).in_(["queued", "running"]), col(Job.runner_id).is_not(None))
    if runner_ids is not None:
        stmt = stmt.where(col(Job.runner_id).in_(runner_ids))
    return [
        (runner or 0, gpus or [], shape, spec)
        for runner, gpus, shape, spec in (await session.exec(stmt)).all()
    ]


async def pending_of(session: AsyncSession, ids: list[int]) -> list[Job]:
    """Those of `ids` still pending, in id order."""
    if not ids:
        return []
    stmt = (
        select(Job).where(col(Job.id).in_(ids), col(Job.state) == "pending").order_by(col(Job.id))
    )
    return list((await session.exec(stmt)).all())


async def pending_of_shape(session: AsyncSession, shape: str, *, limit: int = 500) -> list[Job]:
    stmt = (
        select(Job)
        .where(col(Job.state) == "pending", col(Job.shape) == shape)
        .order_by(col(Job.id))
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def active_by_repository(session: AsyncSession) -> dict[int, int]:
    """Queued and running jobs per repository: what a repository's limit counts, and what
    the round robin between repositories evens out."""
    stmt = (
        select(Run.repository_id, func.count())
        .select_from(Job)
        .join(Run, col(Run.id) == col(Job.run_id))
        .where(col(Job.state).in_(["queued", "running"]))
        .group_by(col(Run.repository_id))
    )
    return {repo: count for repo, count in (await session.exec(stmt)).all()}


async def repository_limits(session: AsyncSession, ids: set[int]) -> dict[int, int | None]:
    """Each repository's own job limit (None: the server's)."""
    return {
        repo: limit for repo, (limit, _) in (await repository_queue_facts(session, ids)).items()
    }


async def repository_queue_facts(
    session: AsyncSession, ids: set[int]
) -> dict[int, tuple[int | None, float]]:
    """(job limit, when a job was last placed) of each repository."""
    if not ids:
        return {}
    stmt = select(Repository.id, Repository.max_jobs, Repository.last_placed_at).where(
        col(Repository.id).in_(sorted(ids))
    )
    return {
        repo or 0: (limit, placed or 0.0)
        for repo, limit, placed in (await session.exec(stmt)).all()
    }


async def mark_placed(session: AsyncSession, served: dict[int, float]) -> None:
    """Record when each repository last had a job placed (in id order: no deadlock)."""
    for repo, at in sorted(served.items()):
        await session.exec(  # type: ignore[call-overload]
            update(Repository).where(col(Repository.id) == repo).values(last_placed_at=at)
        )


async def waiting_since_before(
    session: AsyncSession, before: float, *, limit: int = 500
) -> list[Job]:
    """Pending jobs that have waited since before `before` (for `queue_timeout`)."""
    stmt = (
        select(Job)
        .where(col(Job.state) == "pending", col(Job.pending_since) < before)
        .order_by(col(Job.pending_since))
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def lock_runs(session: AsyncSession, ids: set[int]) -> None:
    """Lock the runs' rows, in id order."""
    if ids:
        stmt = select(Run.id).where(col(Run.id).in_(sorted(ids))).order_by(col(Run.id))
        await session.exec(stmt.with_for_update())


async def checkouts_of_runs(session: AsyncSession, ids: set[int]) -> dict[int, tuple[str, str]]:
    """Per run: its repository's clone URL and its commit (a runner's prefetch hint)."""
    if not ids:
        return {}
    stmt = (
        select(Run.id, Repository.clone_url, Run.commit_sha)
        .join(Repository, col(Repository.id) == col(Run.repository_id))
        .where(col(Run.id).in_(sorted(ids)))
    )
    return {run_id or 0: (url, sha) for run_id, url, sha in (await session.exec(stmt)).all()}


async def lock_repositories(session: AsyncSession, ids: set[int]) -> dict[int, int | None]:
    """Lock the repositories' rows (in id order) for a claim: two passes placing jobs of a
    limited repository at once would each count the other's as not there yet. Returns each
    one's own job limit (None: the server's), read under the lock."""
    stmt = (
        select(Repository.id, Repository.max_jobs)
        .where(col(Repository.id).in_(sorted(ids)))
        .order_by(col(Repository.id))
        .with_for_update()
    )
    return {repo or 0: limit for repo, limit in (await session.exec(stmt)).all()}


async def queue_order(
    session: AsyncSession, *, shape: str, min_priority: int, up_to: int
) -> list[tuple[int, int]]:
    """(−priority, id) of the pending jobs of `shape` that go before any job of priority
    ≥ `min_priority` and id ≤ `up_to`, in the scheduler's order: a job's place is its
    index here."""
    stmt = (
        select(Job.priority, Job.id)
        .where(
            col(Job.state) == "pending",
            col(Job.shape) == shape,
            col(Job.priority) >= min_priority,
            or_(col(Job.priority) > min_priority, col(Job.id) <= up_to),
        )
        .order_by(col(Job.priority).desc(), col(Job.id))
    )
    return [(-priority, job_id or 0) for priority, job_id in (await session.exec(stmt)).all()]


async def set_job_limit(session: AsyncSession, *, repository_id: int, limit: int | None) -> None:
    """`labci repos job-limit`: the repository's own limit (None: the server's)."""
    await session.exec(  # type: ignore[call-overload]
        update(Repository).where(col(Repository.id) == repository_id).values(max_jobs=limit)
    )
