"""Schedules (`on.schedule`) and the events their slots fire."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Event, Repository, Schedule
from ._insert import insert_ignore


async def schedules_of(
    session: AsyncSession, repository_id: int, *, for_update: bool = False
) -> list[Schedule]:
    stmt = (
        select(Schedule).where(Schedule.repository_id == repository_id).order_by(col(Schedule.id))
    )
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return list((await session.exec(stmt)).all())


async def due_schedules(session: AsyncSession, now: float) -> list[tuple[Schedule, str]]:
    """Schedules whose next slot has come, with their repository's provider."""
    stmt = (
        select(Schedule, Repository.provider)
        .join(Repository, col(Repository.id) == col(Schedule.repository_id))
        .where(col(Schedule.next_at) <= now)
        .order_by(col(Schedule.next_at))
    )
    return [(schedule, provider) for schedule, provider in (await session.exec(stmt)).all()]


async def store_slot_event(session: AsyncSession, event: Event) -> int | None:
    """The slot's event, unless it was stored already (its delivery id names the slot)."""
    values: dict[str, Any] = event.model_dump(exclude={"id"})
    return await insert_ignore(session, Event, values, unique=["delivery_id"])


async def advance(
    session: AsyncSession, schedule_id: int, *, fired_at: float, next_at: float
) -> None:
    """Move the schedule on to `next_at` (never back: a slower worker's pass changes nothing)."""
    await session.exec(  # type: ignore[call-overload]
        update(Schedule)
        .where(col(Schedule.id) == schedule_id, col(Schedule.next_at) < next_at)
        .values(next_at=next_at, last_fired_at=fired_at)
    )
