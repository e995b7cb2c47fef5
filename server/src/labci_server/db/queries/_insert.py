"""INSERT … ON CONFLICT DO NOTHING for both SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession


async def insert_ignore(
    session: AsyncSession, model: Any, values: dict[str, Any], *, unique: list[str]
) -> int | None:
    """Insert a row unless it collides on `unique`; return the new id, or None on collision."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = (
        module.insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=unique)
        .returning(model.id)
    )
    result = await session.exec(stmt)  # type: ignore[call-overload]
    row = result.first()
    return None if row is None else int(row[0])


async def insert_many_ignore(
    session: AsyncSession, model: Any, rows: list[dict[str, Any]], *, unique: list[str]
) -> None:
    """Insert `rows` (same keys each) in one executemany, skipping those that collide."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(model).on_conflict_do_nothing(index_elements=unique)
    await session.exec(stmt, params=rows)  # type: ignore[call-overload]
