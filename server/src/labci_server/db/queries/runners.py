from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import RegistrationToken, Runner


async def runner_by_token_hash(session: AsyncSession, token_hash: str) -> Runner | None:
    return (await session.exec(select(Runner).where(Runner.token_hash == token_hash))).first()


async def runners_named(session: AsyncSession, name: str) -> list[Runner]:
    stmt = select(Runner).where(Runner.name == name).order_by(col(Runner.id)).with_for_update()
    return list((await session.exec(stmt.execution_options(populate_existing=True))).all())


async def get_runner(
    session: AsyncSession, runner_id: int, *, for_update: bool = False
) -> Runner | None:
    if not for_update:
        return await session.get(Runner, runner_id)
    stmt = select(Runner).where(Runner.id == runner_id).with_for_update()
    return (await session.exec(stmt.execution_options(populate_existing=True))).first()


async def lock_runners(session: AsyncSession, ids: list[int]) -> list[Runner]:
    """The runners `ids`, their rows locked in id order (no deadlock between two passes)."""
    if not ids:
        return []
    stmt = (
        select(Runner)
        .where(col(Runner.id).in_(sorted(ids)))
        .order_by(col(Runner.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.exec(stmt)).all())


async def online_runners(session: AsyncSession, *, seen_after: float) -> list[Runner]:
    stmt = (
        select(Runner)
        .where(
            col(Runner.last_heartbeat_at).is_not(None), col(Runner.last_heartbeat_at) > seen_after
        )
        .order_by(col(Runner.id))
    )
    return list((await session.exec(stmt)).all())


async def registration_token_by_hash(
    session: AsyncSession, token_hash: str
) -> RegistrationToken | None:
    stmt = (
        select(RegistrationToken)
        .where(RegistrationToken.token_hash == token_hash)
        .with_for_update()  # a single-use token must not be used twice concurrently
        .execution_options(populate_existing=True)
    )
    return (await session.exec(stmt)).first()


async def all_runners(session: AsyncSession) -> list[Runner]:
    """Every registered runner but the removed ones, revoked ones last, then by name."""
    stmt = (
        select(Runner)
        .where(col(Runner.removed_at).is_(None))
        .order_by(col(Runner.revoked_at).is_not(None), col(Runner.name))
    )
    return list((await session.exec(stmt)).all())


async def names_of_runners(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    """The names of the runners `ids`, in one query."""
    if not ids:
        return {}
    stmt = select(Runner.id, Runner.name).where(col(Runner.id).in_(sorted(ids)))
    return {runner_id: name for runner_id, name in (await session.exec(stmt)).all()}
