"""Server replicas starting together each upgrade the schema (`labci serve` without
`--no-migrate`): on PostgreSQL they take turns, and every one of them succeeds."""

from __future__ import annotations

import asyncio

from helpers.services import missing_service
from labci_server.db.migrate import current_revision, revisions, upgrade


async def test_replicas_upgrading_at_once_all_succeed(database_url):
    if not database_url.startswith("postgresql"):
        missing_service("postgres", "LABCI_TEST_DATABASE_URL is not set")
    await asyncio.gather(*(upgrade(database_url) for _ in range(3)))
    assert await current_revision(database_url) == revisions()[-1][0]
