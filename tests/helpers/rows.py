"""Rows read straight from a stack's database (SQLite or PostgreSQL), for what the API does
not show: leases, heartbeats, every attempt's logs and metrics."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import asyncpg


def sql(database_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of `query` (`$1`-style parameters) on the stack's database."""
    if database_url.startswith("sqlite"):
        for n in range(len(args), 0, -1):
            query = query.replace(f"${n}", "?")
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return [tuple(row) for row in db.execute(query, args)]

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return [tuple(row) for row in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return asyncio.run(fetch())
