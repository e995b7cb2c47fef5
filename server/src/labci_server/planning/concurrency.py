"""`concurrency:` groups at planning: a new member cancels the older ones waiting.

As in GitHub Actions, a group (per repository) has at most one member in progress and one
waiting: a run (workflow-level `concurrency:`) or job (job-level) that joins a group
cancels the older members that have not started, and, with `cancel-in-progress`, the one in
progress too. The scheduler keeps the rest: it starts no member while another is in
progress (scheduling/scheduler.py).

Unlike GitHub Actions, the jobs of one run never cancel each other (the instances of a
matrix whose group does not name `matrix`): they run one at a time. GitHub would cancel
all but the first and the last, a well-known surprise.

Baseline measurements and extra seeds are labci's own runs and jobs: they join no group,
so that measuring a pull request's base never cancels a push's run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec.concurrency import Group

from ..db.models import TERMINAL_JOB_STATES, Job, Run
from ..db.queries import concurrency as queries
from ..db.queries.runs import get_run
from ..results.cancel import cancel_jobs, cancel_run


def superseded_reason(run_id: int, group: str) -> str:
    return f"superseded by run {run_id} in concurrency group '{group}'"


async def join_groups(
    session: AsyncSession,
    run: Run,
    *,
    run_group: Group | None,
    job_groups: Mapping[str, Group],
    run_url: Callable[[int | None], str],
) -> list[int]:
    """Cancel what the new `run` (its own group, and its jobs' by job-level group name)
    supersedes; returns the ids of the runs touched. Older runs only: a redelivery
    planned late never cancels a newer member."""
    touched: set[int] = set()
    run_id, repo = run.id or 0, run.repository_id
    if run_group is not None:
        older = await queries.unfinished_runs_in_group(
            session, repository_id=repo, group=run_group.name, before_run=run_id
        )
        for other_id, in_progress in older:
            if in_progress and not run_group.cancel_in_progress:
                continue  # it finishes first; this run waits for it (the scheduler)
            other = await get_run(session, other_id, for_update=True)
            if other is None or other.state == "finished":
                continue
            other.dedupe_key = None  # its commit may come back: then it is planned again
            session.add(other)
            reason = superseded_reason(run_id, run_group.name)
            if await cancel_run(session, other, reason=reason, run_url=run_url(other.id)):
                touched.add(other_id)
    for name, group in sorted(job_groups.items()):
        found = await queries.unfinished_jobs_in_group(
            session, repository_id=repo, group=name, before_run=run_id
        )
        # Lock order: each run before its jobs, runs in id order (as claims and completions).
        by_run: dict[int, list[int]] = defaultdict(list)
        for job in found:
            by_run[job.run_id].append(job.id or 0)
        for other_id in sorted(by_run):
            other = await get_run(session, other_id, for_update=True)
            if other is None or other.state == "finished":
                continue
            rows = [
                job
                for job in await queries.unfinished_jobs_in_group(
                    session, repository_id=repo, group=name, before_run=run_id
                )
                if job.run_id == other_id and _superseded(job, group)
            ]
            reason = superseded_reason(run_id, name)
            if await cancel_jobs(session, other, rows, reason=reason, run_url=run_url(other.id)):
                touched.add(other_id)
    return sorted(touched)


def _superseded(job: Job, group: Group) -> bool:
    if job.state in TERMINAL_JOB_STATES:
        return False
    if job.state in queries.ACTIVE_JOB_STATES:
        return group.cancel_in_progress
    return True  # waiting for its needs, or pending: it has not started
