"""Readiness: does this server reach what it needs to work (the database and Redis)?

`/healthz` says the process is alive and touches nothing; `/readyz` asks both, each within
`READY_TIMEOUT_S`, and names what failed, so that a load balancer takes a replica out
while its database or Redis is away and an operator reads why.
"""

from __future__ import annotations

import asyncio
import time

from ..context import ServerContext
from ..db.queries.operations import OperationsSnapshot, operations_snapshot, ping_database

READY_TIMEOUT_S = 2.0


async def readiness(sc: ServerContext) -> dict[str, str]:
    """Each dependency's answer: "ok", or what went wrong."""
    checks = {"database": _database(sc), "redis": _redis(sc)}
    answers = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await check
            answers[name] = "ok"
        except TimeoutError:
            answers[name] = f"no answer within {READY_TIMEOUT_S:g}s"
        except Exception as exc:  # noqa: BLE001 — any failure is the answer, named
            answers[name] = f"{type(exc).__name__}: {exc}"[:300]
    return answers


async def _database(sc: ServerContext) -> None:
    async with sc.sessions() as session:
        await ping_database(session)


async def _redis(sc: ServerContext) -> None:
    await sc.redis.ping()


async def database_snapshot(sc: ServerContext) -> OperationsSnapshot | None:
    """The database's figures for `/metrics`; None when it does not answer in time (the
    process's own metrics are still served)."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S * 5), sc.sessions() as session:
            return await operations_snapshot(
                session, online_since=time.time() - sc.settings.lease_s
            )
    except Exception:  # noqa: BLE001 — labci_up says so; the scrape still answers
        return None
