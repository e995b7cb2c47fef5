from __future__ import annotations

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

KNOWN_TABLES = {
    "events",
    "runs",
    "jobs",
    "steps",
    "log_lines",
    "metrics",
    "outbox",
    "repositories",
    "runners",
}


async def count_rows(session: AsyncSession, tables: list[str]) -> dict[str, int]:
    """Row counts by table, for the API's health figures and the tests' invariants."""
    counts = {}
    for table in tables:
        if table not in KNOWN_TABLES:
            raise ValueError(f"unknown table {table!r}")
        counts[table] = int((await session.exec(text(f"SELECT count(*) FROM {table}"))).one()[0])  # noqa: S608
    return counts
