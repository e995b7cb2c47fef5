"""Stopping runs: by an operator (`labci cancel`), superseded by a pull request's new head,
or moot because their pull request was closed or their branch deleted.

Every unfinished job of the run becomes `cancelled` at once, with the reason, and the run
is settled in one go, so dependents read "cancelled" too rather than "blocked". A job a
runner is running learns it at its next heartbeat (its attempt is no longer current): the
runner interrupts its step (SIGINT, then SIGTERM, then SIGKILL) and whatever it reports
after that is ignored. The caller holds the run's row lock.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import TERMINAL_JOB_STATES, Job, Run
from ..db.queries.events import first_reopen_after, mark_event, unplanned_events_of
from ..db.queries.repositories import find_repository
from ..db.queries.runs import get_run, jobs_of_run, unfinished_runs_of
from ..errors import NotFound
from ..queue import kick_outbox, kick_scheduler
from .ingest import mark_terminal, settle_run


async def cancel_run(session: AsyncSession, run: Run, *, reason: str, run_url: str) -> int:
    """Cancel what is unfinished in `run`; returns how many jobs were."""
    rows = await jobs_of_run(session, run.id or 0)
    return await cancel_jobs(session, run, rows, reason=reason, run_url=run_url)


async def cancel_jobs(
    session: AsyncSession, run: Run, rows: list[Job], *, reason: str, run_url: str
) -> int:
    """Cancel what is unfinished of `rows`, jobs of `run` (a `concurrency:` group cancels
    single jobs), and settle the run; returns how many were."""
    unfinished = [row for row in rows if row.state not in TERMINAL_JOB_STATES]
    for row in unfinished:
        mark_terminal(row, "cancelled", reason)
        session.add(row)
    if unfinished:
        await session.flush()
        await settle_run(session, run, unfinished, run_url=run_url)
    return len(unfinished)


async def cancel_run_by_id(sc: ServerContext, run_id: int, *, reason: str) -> int:
    """An operator's cancel (`labci cancel`); how many jobs were stopped."""
    async with sc.sessions() as session, session.begin():
        run = await get_run(session, run_id, for_update=True)
        if run is None:
            raise NotFound(f"run {run_id} does not exist")
        stopped = await cancel_run(session, run, reason=reason, run_url=sc.run_url(run_id))
    await kick_outbox(sc.redis)
    await kick_scheduler(sc.redis)
    return stopped


async def cancel_moot_runs(
    sc: ServerContext,
    *,
    provider: str,
    repo_full_name: str,
    reason: str,
    pr_number: int | None = None,
    branch: str | None = None,
    before: float | None = None,
) -> list[int]:
    """A pull request closed (`pr_number`) or a branch deleted (`branch`): its unfinished
    runs are cancelled with `reason` (each status says it), and its events not planned
    yet never will be. Returns the runs cancelled; a delivery seen again finds none.
    `before`: when the forge says it was closed. If the pull request was reopened since
    (a `reopened` delivery received after that), the close arrived late: only what was
    received before the reopen ends. The boundary is this server's own clock; the forge's
    decides only whether the reopen came after the close."""
    cancelled = []
    async with sc.sessions() as session, session.begin():
        repo = await find_repository(session, provider=provider, full_name=repo_full_name)
        if repo is None:
            return []
        reopened = None
        if before is not None and pr_number is not None:
            reopened = await first_reopen_after(
                session, repository_id=repo.id or 0, pr_number=pr_number, after=before
            )
        scope = {
            "repository_id": repo.id or 0,
            "pr_number": pr_number,
            "branch": branch,
            "received_before": reopened,
        }
        for event in await unplanned_events_of(session, **scope):
            if await mark_event(
                session, event.id or 0, from_state="received", to_state="superseded"
            ):
                event.error = reason
                session.add(event)
        for found in await unfinished_runs_of(session, **scope):
            run = await get_run(session, found.id or 0, for_update=True)
            if run is None or run.state == "finished":
                continue
            run.dedupe_key = None  # a reopened pull request is planned again
            session.add(run)
            await cancel_run(session, run, reason=reason, run_url=sc.run_url(run.id))
            cancelled.append(run.id or 0)
    if cancelled:
        await kick_outbox(sc.redis)
        await kick_scheduler(sc.redis)
    return cancelled
