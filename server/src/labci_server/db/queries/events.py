from __future__ import annotations

import time
from typing import Any

from sqlmodel import col, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Event
from ._insert import insert_ignore


async def insert_event(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Store an event; None when its delivery id was seen before (a redelivery)."""
    return await insert_ignore(session, Event, values, unique=["delivery_id"])


async def get_event(session: AsyncSession, event_id: int) -> Event | None:
    return await session.get(Event, event_id)


async def event_by_delivery(session: AsyncSession, delivery_id: str) -> Event | None:
    return (await session.exec(select(Event).where(Event.delivery_id == delivery_id))).first()


async def unplanned_events(session: AsyncSession, *, received_before: float) -> list[Event]:
    stmt = select(Event).where(Event.state == "received", Event.received_at < received_before)
    return list((await session.exec(stmt.order_by(col(Event.id)))).all())


async def pull_request_number(
    session: AsyncSession, *, repository_id: int, head_branch: str, base_branch: str
) -> int:
    """The local forge's PR number for a head/base pair: reused if known, else the next one."""
    known = (
        await session.exec(
            select(Event.pr_number).where(
                Event.repository_id == repository_id,
                Event.kind == "pull_request",
                Event.branch == head_branch,
                Event.base_branch == base_branch,
            )
        )
    ).first()
    if known is not None:
        return known
    highest = (
        await session.exec(
            select(func.max(Event.pr_number)).where(Event.repository_id == repository_id)
        )
    ).one()
    return (highest or 0) + 1


async def mark_event(
    session: AsyncSession, event_id: int, *, from_state: str, to_state: str
) -> bool:
    """Move an event between states; False if it was not in `from_state` (someone else did it)."""
    stmt = (
        update(Event)
        .where(col(Event.id) == event_id, col(Event.state) == from_state)
        .values(state=to_state, planned_at=time.time())
    )
    result = await session.exec(stmt)  # type: ignore[call-overload]
    return bool(result.rowcount == 1)


async def newer_head_of_pull_request(
    session: AsyncSession, *, repository_id: int, pr_number: int, event_id: int, sha: str
) -> Event | None:
    """A later event of the same pull request at another commit, if one was received."""
    stmt = select(Event).where(
        Event.repository_id == repository_id,
        Event.kind == "pull_request",
        Event.pr_number == pr_number,
        col(Event.id) > event_id,
        Event.commit_sha != sha,
    )
    return (await session.exec(stmt.order_by(col(Event.id).desc()))).first()


async def first_reopen_after(
    session: AsyncSession, *, repository_id: int, pr_number: int, after: float
) -> float | None:
    """When the first `reopened` delivery of the pull request received after `after` was
    received; None if none was."""
    stmt = select(func.min(Event.received_at)).where(
        Event.repository_id == repository_id,
        Event.kind == "pull_request",
        Event.pr_number == pr_number,
        Event.action == "reopened",
        col(Event.received_at) > after,
    )
    found = (await session.exec(stmt)).one()
    return float(found) if found is not None else None


async def unplanned_events_of(
    session: AsyncSession,
    *,
    repository_id: int,
    pr_number: int | None = None,
    branch: str | None = None,
    received_before: float | None = None,
) -> list[Event]:
    """Events of a pull request (or pushes to a branch) not planned yet (received before
    `received_before`)."""
    stmt = select(Event).where(Event.repository_id == repository_id, Event.state == "received")
    if received_before is not None:
        stmt = stmt.where(col(Event.received_at) < received_before)
    if pr_number is not None:
        stmt = stmt.where(Event.kind == "pull_request", Event.pr_number == pr_number)
    else:
        stmt = stmt.where(Event.kind == "push", Event.branch == branch)
    return list((await session.exec(stmt)).all())
