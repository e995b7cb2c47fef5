"""`concurrency:` groups at planning: a new member cancels the older ones waiting.

As in GitHub Actions, a group (per repository) has at most one member in progress and one
waiting: a run (workflow-level `concurrency:`) or job (job-level) that joins a group
cancels the older members that have not started, and, with `cancel-in-progress`, the one in
progress too. The scheduler keeps the rest: it starts no member while another is in
progress (scheduling/scheduler.py).

A job takes its place in its job-level group when it is planned pending; one skipped by
its `if:` never does, and one waiting for its needs is held in the group when released
but cancels nothing (so a newer run's deploy that may never run does not cancel an older
run's). Unlike GitHub Actions, the jobs of one run never cancel each other (the instances
of a matrix whose group does not name `matrix`): they run one at a time. GitHub would
cancel all but the first and the last, a well-known surprise.

Baseline measurements are labci's own runs: they join no group, so that measuring a pull
request's base never cancels a push's run. Extra seeds join no job-level group; they run
within their run, which holds its workflow-level group while they do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec.concurrency import Group

from ..db.models import TERMINAL_JOB_STATES, Job, Run
from ..db.queries import concurrency as queries
from ..db.queries.queue import lock_runs
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
    """Cancel what the new `run` (its own group, and its pending jobs' by job-level group
    name) supersedes; returns the ids of the runs touched. Older runs only: a redelivery
    planned late never cancels a newer member."""
    run_id, repo = run.id or 0, run.repository_id
    # The older members' runs are locked together, in id order (as claims and completions
    # lock runs), and only then read again and judged: a claim or a completion committed
    # meanwhile is seen.
    seen = {i for i, _ in await _older_runs(session, run, run_group)}
    for name in job_groups:
        found = await queries.unfinished_jobs_in_group(
            session, repository_id=repo, group=name, before_run=run_id
        )
        seen |= {job.run_id for job in found}
    await lock_runs(session, seen)
    touched: set[int] = set()
    if run_group is not None:
        for other_id, in_progress in await _older_runs(session, run, run_group):
            if other_id not in seen or (in_progress and not run_group.cancel_in_progress):
                continue  # in progress: it finishes first, this run waits (the scheduler)
            other = await get_run(session, other_id, for_update=True)
            if other is None or other.state == "finished":
                continue
            other.dedupe_key = None  # its commit may come back: then it is planned again
            session.add(other)
            reason = superseded_reason(run_id, run_group.name)
            if await cancel_run(session, other, reason=reason, run_url=run_url(other.id)):
                touched.add(other_id)
    for name, group in sorted(job_groups.items()):
        by_run: dict[int, list[Job]] = defaultdict(list)
        for job in await queries.unfinished_jobs_in_group(
            session, repository_id=repo, group=name, before_run=run_id
        ):
            if job.run_id in seen and _superseded(job, group):
                by_run[job.run_id].append(job)
        for other_id, rows in sorted(by_run.items()):
            other = await get_run(session, other_id, for_update=True)
            if other is None or other.state == "finished":
                continue
            reason = superseded_reason(run_id, name)
            if await cancel_jobs(session, other, rows, reason=reason, run_url=run_url(other.id)):
                touched.add(other_id)
    return sorted(touched)


async def _older_runs(
    session: AsyncSession, run: Run, group: Group | None
) -> list[tuple[int, bool]]:
    if group is None:
        return []
    return await queries.unfinished_runs_in_group(
        session, repository_id=run.repository_id, group=group.name, before_run=run.id or 0
    )


def _superseded(job: Job, group: Group) -> bool:
    if job.state in TERMINAL_JOB_STATES:
        return False
    if job.state in queries.ACTIVE_JOB_STATES:
        return group.cancel_in_progress
    return True  # waiting for its needs, or pending: it has not started
