"""Bisections of change points, and the bisection runs a repository started."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Bisection, Event, Repository
from ._insert import insert_ignore

# Still under way: the forge's listing, the search, or a pause for the budget.
ACTIVE_STATES = ("listing", "searching", "budget")
# Their delivery ids start so (`bisection.probes.delivery_id`): one event per bisection run.
DELIVERY_PREFIX = "bisect:"


async def insert_bisection(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Store a new bisection; None when one exists for its (repository, context, metric,
    good, bad) already."""
    return await insert_ignore(
        session,
        Bisection,
        values,
        unique=["repository_id", "context", "metric", "good_sha", "bad_sha"],
    )


async def get_bisection(
    session: AsyncSession, bisection_id: int, *, for_update: bool = False
) -> Bisection | None:
    if not for_update:
        return await session.get(Bisection, bisection_id)
    stmt = select(Bisection).where(Bisection.id == bisection_id).with_for_update()
    return (await session.exec(stmt.execution_options(populate_existing=True))).first()


async def active_bisections(
    session: AsyncSession, *, repository_id: int | None = None
) -> list[int]:
    """Ids of the bisections still under way, oldest first."""
    stmt = select(Bisection.id).where(col(Bisection.state).in_(ACTIVE_STATES))
    if repository_id is not None:
        stmt = stmt.where(Bisection.repository_id == repository_id)
    return [i for i in (await session.exec(stmt.order_by(col(Bisection.id)))).all() if i]


async def bisections_of_metric(
    session: AsyncSession,
    *,
    repository_id: int,
    context: str,
    metric: str,
    hidden_states: tuple[str, ...] = (),
    limit: int = 20,
) -> list[Bisection]:
    """The metric's bisections, newest first."""
    stmt = (
        select(Bisection)
        .where(
            Bisection.repository_id == repository_id,
            Bisection.context == context,
            Bisection.metric == metric,
            col(Bisection.state).not_in(hidden_states),
        )
        .order_by(col(Bisection.id).desc())
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def bisection_runs_since(session: AsyncSession, *, repository_id: int, since: float) -> int:
    """How many bisection runs the repository asked for since `since` (Unix seconds)."""
    stmt = select(func.count()).where(
        Event.repository_id == repository_id,
        col(Event.delivery_id).startswith(f"{DELIVERY_PREFIX}{repository_id}:", autoescape=True),
        Event.received_at >= since,
    )
    return int((await session.exec(stmt)).one())


async def lock_repository(session: AsyncSession, repository_id: int) -> Repository | None:
    """The repository's row, locked (PostgreSQL) until the transaction ends: bisection steps
    of one repository count and spend its budget one at a time."""
    stmt = select(Repository).where(Repository.id == repository_id).with_for_update()
    return (await session.exec(stmt.execution_options(populate_existing=True))).first()


async def set_bisection_budget(
    session: AsyncSession, *, repository_id: int, runs_per_day: int | None
) -> bool:
    """Whether the repository exists (and now has that budget)."""
    repo = await session.get(Repository, repository_id)
    if repo is None:
        return False
    repo.bisect_runs_per_day = runs_per_day
    session.add(repo)
    return True
