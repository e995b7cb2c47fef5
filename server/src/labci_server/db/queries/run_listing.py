"""The runs list's query: runs of the repositories a caller may read, filtered, newest
first, a page at a time, each with its repository and the event that started it."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import ContextVerdict, Event, Repository, Run

# The outcome filters: a run failed when a job did or a verdict did (a regression).
FAILED_STATES = ("failure", "error")
RUN_STATES = ("pending", "running", "finished", "success", "failure")


@dataclass(frozen=True)
class RunFilters:
    repository_id: int | None = None
    branch: str | None = None
    pr_number: int | None = None
    state: str | None = None  # one of RUN_STATES
    workflow: str | None = None  # the workflow's name


async def listed_runs(
    session: AsyncSession,
    *,
    repository_ids: set[int] | None,
    filters: RunFilters,
    offset: int,
    limit: int,
) -> list[tuple[Run, Repository, Event | None]]:
    """Up to `limit` runs after `offset`, newest first (None: every repository)."""
    if repository_ids is not None and not repository_ids:
        return []
    stmt = (
        select(Run, Repository, Event)
        .join(Repository, col(Repository.id) == col(Run.repository_id))
        .outerjoin(Event, col(Event.id) == col(Run.event_id))
    )
    if repository_ids is not None:
        stmt = stmt.where(col(Run.repository_id).in_(sorted(repository_ids)))
    if filters.repository_id is not None:
        stmt = stmt.where(Run.repository_id == filters.repository_id)
    if filters.branch:
        stmt = stmt.where(Run.branch == filters.branch)
    if filters.pr_number is not None:
        stmt = stmt.where(Run.pr_number == filters.pr_number)
    if filters.workflow:
        stmt = stmt.where(Run.workflow_name == filters.workflow)
    if filters.state:
        stmt = stmt.where(_state_clause(filters.state))
    stmt = stmt.order_by(col(Run.id).desc()).offset(offset).limit(limit)
    return [(run, repo, event) for run, repo, event in (await session.exec(stmt)).all()]


def _state_clause(state: str) -> sa.ColumnElement[bool]:
    failed_verdict = sa.exists().where(
        col(ContextVerdict.run_id) == col(Run.id),
        col(ContextVerdict.state).in_(FAILED_STATES),
    )
    if state in ("pending", "running", "finished"):
        return col(Run.state) == state
    finished = col(Run.state) == "finished"
    if state == "success":
        return sa.and_(finished, col(Run.conclusion) == "success", sa.not_(failed_verdict))
    return sa.and_(  # failure
        finished, sa.or_(col(Run.conclusion) != "success", failed_verdict)
    )


async def workflows_and_branches(
    session: AsyncSession, *, repository_ids: set[int] | None
) -> tuple[list[str], list[str]]:
    """The workflow names and branches the filters offer (of readable repositories)."""
    if repository_ids is not None and not repository_ids:
        return [], []
    found = []
    for column in (Run.workflow_name, Run.branch):
        stmt = select(column).distinct().order_by(column).limit(200)
        if repository_ids is not None:
            stmt = stmt.where(col(Run.repository_id).in_(sorted(repository_ids)))
        found.append([str(v) for v in (await session.exec(stmt)).all()])
    return found[0], found[1]
