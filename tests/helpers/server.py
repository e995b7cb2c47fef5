"""An in-process ServerContext on the test's real database and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from labci_server.context import ServerContext
from labci_server.db.engine import make_engine, make_sessionmaker
from labci_server.db.migrate import upgrade
from labci_server.forge.gitlocal import GitLocalForge
from labci_server.queue import connect
from labci_server.secrets import generate_key
from labci_server.settings import Settings

TEST_SECRET = "It's a Secret to Everybody"
# Encrypts stored secrets in tests (LABCI_SECRET_KEY); a fresh one per test session.
TEST_SECRET_KEY = generate_key()


def test_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "webhook_secret": TEST_SECRET,
        "session_secret": "test session key, not secret",
        "secret_key": TEST_SECRET_KEY,
        "public_url": "http://labci.test",
        "lease_s": 5.0,
        "reaper_interval_s": 1.0,
        "outbox_min_backoff_s": 0.05,
        "outbox_max_backoff_s": 1.0,
        # Pacing and rate-limit waits scaled down; tests of those set their own.
        "outbox_min_interval_s": 0.0,
        "outbox_rate_limit_wait_s": 0.5,
        **overrides,
    }
    return Settings.model_validate(values)


test_settings.__test__ = False  # type: ignore[attr-defined]


@asynccontextmanager
async def server_context(
    settings: Settings, forges: dict[str, Any] | None = None
) -> AsyncIterator[ServerContext]:
    await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    redis = await connect(settings.redis_url or "")
    all_forges = {"git": GitLocalForge(sessions), **(forges or {})}
    try:
        yield ServerContext(settings, sessions, redis, all_forges)
    finally:
        await redis.aclose()
        await engine.dispose()
