"""Fork pull requests: who must approve, what an approval binds to, and releasing held runs.

Code from a fork runs only after a writer approves it, under the repository's policy
(`fork_approval`): "all" forks (the default — GitHub's own "contributor" mark is no
guarantee: one merged typo fix earns it), only "first-time" contributors, or "none".
A run held for approval is planned like any other — its jobs exist, its workflows show a
`pending` "awaiting approval from a maintainer" status — but the scheduler places none of
its jobs. An approval names one commit: the head that was approved. A new push is a new
head and waits again.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Event, Repository, Run
from ..db.queries.approvals import approval_of, held_runs, record_approval
from ..db.queries.runs import jobs_of_run
from ..errors import BadRequest, Conflict, NotFound
from ..queue import kick_outbox, kick_scheduler
from .statuses import AWAITING, queued_statuses

log = logging.getLogger(__name__)

POLICIES: Final = ("all", "first-time", "none")
# GitHub's author_association values of someone with no merged contribution here.
FIRST_TIMERS: Final = frozenset({"FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER", "NONE"})
APPROVED: Final = "approved"


def approval_required(policy: str, event: Event) -> bool:
    """Whether this event's code waits for a writer's approval before anything runs."""
    if not event.from_fork or policy == "none":
        return False
    if policy == "first-time":
        return (event.author_association or "NONE").upper() in FIRST_TIMERS
    return True  # "all", and anything unknown: the safe side


async def held_for_approval(
    session: AsyncSession, repo: Repository, event: Event
) -> tuple[str | None, str | None]:
    """(approval, approved_by) for the runs an event creates: None when no approval is
    needed; "approved" when this very commit was approved already; else "awaiting"."""
    if not approval_required(repo.fork_approval, event):
        return None, None
    found = await approval_of(session, repo.id or 0, event.commit_sha)
    return (APPROVED, found.approved_by) if found else (AWAITING, None)


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise BadRequest(f"fork approval policy must be one of {', '.join(POLICIES)}")
    return policy


async def approve_commit(
    sc: ServerContext,
    *,
    repository_id: int,
    commit_sha: str,
    pr_number: int | None,
    by: str,
    via: str,
) -> list[int]:
    """Approve one commit's code: record it (a run planned later for the same commit
    starts approved) and release the runs held for it; returns the released run ids."""
    released: list[int] = []
    async with sc.sessions() as session, session.begin():
        await record_approval(
            session,
            repository_id=repository_id,
            commit_sha=commit_sha,
            pr_number=pr_number,
            by=by,
            via=via,
        )
        for run in await held_runs(session, repository_id=repository_id, sha=commit_sha):
            run.approval, run.approved_by = APPROVED, by
            session.add(run)
            rows = await jobs_of_run(session, run.id or 0)
            await queued_statuses(session, run, rows, run_url=sc.run_url(run.id))
            released.append(run.id or 0)
    if released:
        log.info("runs %s approved by %s (%s) at %s", released, by, via, commit_sha[:7])
        await kick_outbox(sc.redis)
        await kick_scheduler(sc.redis)
    return released


async def approve_run(sc: ServerContext, run_id: int, *, by: str, via: str) -> list[int]:
    """Approve the commit of a held run (every workflow held at that commit starts)."""
    async with sc.sessions() as session:
        run = await session.get(Run, run_id)
    if run is None or run.approval != AWAITING:
        raise Conflict(f"run {run_id} is not awaiting approval")
    if run.state == "finished":
        raise Conflict(f"run {run_id} has ended (a newer push superseded it?): nothing to approve")
    return await approve_commit(
        sc,
        repository_id=run.repository_id,
        commit_sha=run.commit_sha,
        pr_number=run.pr_number,
        by=by,
        via=via,
    )


async def set_fork_approval(sessions: Any, repo: Repository, policy: str) -> None:
    """`labci repos fork-approval`: applies to pull request events received from now on."""
    check_policy(policy)
    async with sessions() as session, session.begin():
        stored = await session.get(Repository, repo.id)
        if stored is None:
            raise NotFound(f"repository {repo.full_name} is gone")
        stored.fork_approval = policy
        session.add(stored)
