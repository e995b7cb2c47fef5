"""Recording a job's end, and settling what it sets off in its run.

`finish_job` makes a job terminal once, stores its metrics, then `settle_run` works
through the consequences until nothing changes: the final status of each context whose
jobs are all terminal, fail-fast cancellations of matrix siblings, and waiting jobs whose
`needs` are now decided (`results.dependents`). Last, the run's state and conclusion.

Everything happens in the caller's transaction, with the run's row locked first: jobs of
one run finishing together must not both see the other unfinished. Lock order is run
before job wherever both are locked (completions, the reaper), and heartbeats skip job
rows that are locked rather than wait: cancelling a fail-fast sibling therefore cannot
deadlock with that sibling's own completion or heartbeat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import github_context

from ..bisection.start import note_change_points
from ..db.models import TERMINAL_JOB_STATES, Job, Run
from ..db.queries import jobs as job_queries
from ..db.queries.events import get_event
from ..db.queries.runs import get_run, jobs_of_run
from ..planning.selection import github_event_name
from .dependents import JobRecord, decide_waiting, fail_fast_victims
from .groups import Finished, run_conclusion
from .publish import judge_and_publish, rejudge_awaiting


async def finish_job(
    session: AsyncSession,
    job: Job,
    *,
    outcome: str,
    reason: str | None,
    metrics: dict[str, float] | None,
    run_url: str,
) -> None:
    """Make the job terminal (once) and settle its run; part of the caller's transaction."""
    if job.state in TERMINAL_JOB_STATES:
        return
    run = await get_run(session, job.run_id, for_update=True)
    mark_terminal(job, outcome, reason)
    session.add(job)
    if metrics is not None:
        await job_queries.replace_metrics(
            session, job_id=job.id or 0, attempt=job.attempt, metrics=metrics
        )
    if run is not None:
        await session.flush()
        await settle_run(session, run, [job], run_url=run_url)


def mark_terminal(job: Job, state: str, reason: str | None) -> None:
    job.state = state
    job.reason = reason
    job.finished_at = time.time()
    job.lease_expires_at = None
    if state != "cancelled":
        # A cancelled attempt may still be running: its runner delivers the last log lines
        # (the interruption) with this token, which its completion report then revokes.
        job.job_token_hash = None


async def settle_run(
    session: AsyncSession, run: Run, changed: list[Job], *, run_url: str
) -> list[Job]:
    """Apply what the newly terminal `changed` jobs set off; returns the jobs released to
    `pending`. The run's row must be locked by the caller (or be new).

    Waiting jobs are looked at even when nothing changed: one whose needs have no
    instance at all (an empty matrix) is decided at once rather than never.
    """
    rows = await jobs_of_run(session, run.id or 0)
    state = _Settling(
        records={row.id or 0: _record(row) for row in rows},
        by_id={row.id or 0: row for row in rows},
        github=await _github(session, run),
        queue=[job.id or 0 for job in changed],
    )
    posted: set[str] = set()
    while True:
        while state.queue:
            row = state.by_id[state.queue.pop(0)]
            state.records[row.id or 0] = replace(state.records[row.id or 0], state=row.state)
            if row.context not in posted and await _post_verdict(
                session, run, row.context, rows, run_url
            ):
                posted.add(row.context)
            _fail_fast(state, row)
        if not _decide_waiting(state, session):
            break
    _conclude(run, rows)
    session.add(run)
    return state.released


@dataclass
class _Settling:
    records: dict[int, JobRecord]
    by_id: dict[int, Job]
    github: dict[str, str]
    queue: list[int]
    released: list[Job] = field(default_factory=list)


def _fail_fast(state: _Settling, row: Job) -> None:
    for victim in fail_fast_victims(state.records[row.id or 0], list(state.records.values())):
        mark_terminal(state.by_id[victim.id], "cancelled", f"fail-fast: '{row.job_key}' failed")
        state.records[victim.id] = replace(victim, state="cancelled")
        state.queue.append(victim.id)


def _decide_waiting(state: _Settling, session: AsyncSession) -> bool:
    """Decide every waiting job whose needs are finished; whether any was."""
    decided = False
    for row in state.by_id.values():
        if row.state != "waiting":
            continue
        decision = decide_waiting(
            state.records[row.id or 0], list(state.records.values()), state.github
        )
        if decision is None:
            continue
        decided = True
        if decision.state == "pending":
            row.state = "pending"
            state.released.append(row)
        else:
            mark_terminal(row, decision.state, decision.reason)
            state.queue.append(row.id or 0)
        state.records[row.id or 0] = replace(state.records[row.id or 0], state=row.state)
        session.add(row)
    return decided


def _record(row: Job) -> JobRecord:
    return JobRecord.from_row(
        id=row.id or 0, workflow_job=row.workflow_job, state=row.state, spec=row.spec
    )


async def _github(session: AsyncSession, run: Run) -> dict[str, str]:
    event = await get_event(session, run.event_id)
    return github_context(
        event=github_event_name(run.trigger),
        branch=run.branch,
        base_branch=event.base_branch if event else None,
        sha=run.commit_sha,
        pr_number=run.pr_number,
    )


async def _post_verdict(
    session: AsyncSession, run: Run, context: str, rows: list[Job], run_url: str
) -> bool:
    """Judge and publish the context once all of its jobs are terminal; its result also
    settles the pull requests whose verdicts were waiting for this commit's, and on the
    default branch may reveal a change point to bisect (the worker takes it from there)."""
    members = [row for row in rows if row.context == context]
    if any(row.state not in TERMINAL_JOB_STATES for row in members):
        return False
    await judge_and_publish(session, run, context, members, run_url=run_url)
    await rejudge_awaiting(session, repository_id=run.repository_id, sha=run.commit_sha)
    await note_change_points(session, run, context, members)
    return True


def _conclude(run: Run, rows: list[Job]) -> None:
    if all(row.state in TERMINAL_JOB_STATES for row in rows):
        run.state = "finished"
        run.finished_at = time.time()
        run.conclusion = run_conclusion([Finished.of(row, {}) for row in rows])
    else:
        started = any(row.state not in ("waiting", "pending") for row in rows)
        run.state = "running" if started else "pending"
