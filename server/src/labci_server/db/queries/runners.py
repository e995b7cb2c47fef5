from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import RegistrationToken, Runner


async def runner_by_token_hash(session: AsyncSession, token_hash: str) -> Runner | None:
    return (await session.exec(select(Runner).where(Runner.token_hash == token_hash))).first()


async def get_runner(session: AsyncSession, runner_id: int) -> Runner | None:
    return await session.get(Runner, runner_id)


async def online_runners(session: AsyncSession, *, seen_after: float) -> list[Runner]:
    stmt = (
        select(Runner)
        .where(
            col(Runner.last_heartbeat_at).is_not(None), col(Runner.last_heartbeat_at) > seen_after
        )
        .order_by(col(Runner.id))
    )
    return list((await session.exec(stmt)).all())


async def all_runners(session: AsyncSession) -> list[Runner]:
    return list((await session.exec(select(Runner).order_by(col(Runner.id)))).all())


async def registration_token_by_hash(
    session: AsyncSession, token_hash: str
) -> RegistrationToken | None:
    stmt = select(RegistrationToken).where(RegistrationToken.token_hash == token_hash)
    return (await session.exec(stmt)).first()
