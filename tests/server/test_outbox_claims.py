"""Several workers claim outbox messages at once (issue 12: two or more worker replicas).

A claim is one conditional `UPDATE … WHERE status = 'pending' AND the claim is free …
RETURNING attempts`: PostgreSQL locks the row and checks the condition again on the row as
the first claimer left it, so a second claimer matches nothing; SQLite runs one writer at a
time. Either way each message goes to exactly one claimer, which these tests check with
claimers on separate engines (separate pools, as separate processes have).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from labci_server.db.engine import make_engine, make_sessionmaker
from labci_server.db.migrate import upgrade
from labci_server.db.queries import outbox as queries
from labci_server.db.queries.repositories import ensure_repository

MESSAGES = 30
CLAIMERS_PER_ENGINE = 3


async def claim_every_message(sessions, ids: list[int]) -> list[int]:
    won = []
    for message_id in ids:
        now = time.time()
        async with sessions() as session, session.begin():
            tries = await queries.claim_message(
                session, message_id=message_id, now=now, until=now + 60
            )
        if tries is not None:
            won.append(message_id)
        await asyncio.sleep(0)
    return won


@pytest.fixture(params=["sqlite_url", "database_url"], ids=["sqlite", "default"])
def url(request) -> str:
    """SQLite, and the suite's database (PostgreSQL when LABCI_TEST_DATABASE_URL is set)."""
    return str(request.getfixturevalue(request.param))


async def test_each_message_is_claimed_by_one_of_two_engines(url):
    await upgrade(url)
    engines = [make_engine(url), make_engine(url)]
    try:
        first = make_sessionmaker(engines[0])
        async with first() as session, session.begin():
            repo = await ensure_repository(
                session, provider="github", full_name="octo/exp", clone_url="x"
            )
            ids = [
                await queries.insert_message(
                    session,
                    {
                        "repository_id": repo.id,
                        "commit_sha": "a" * 40,
                        "context": f"labci/train/job{i}",
                        "state": "success",
                        "description": "ok",
                    },
                )
                for i in range(MESSAGES)
            ]
        claimers = [
            claim_every_message(make_sessionmaker(engine), ids)
            for engine in engines
            for _ in range(CLAIMERS_PER_ENGINE)
        ]
        won = [mid for claimed in await asyncio.gather(*claimers) for mid in claimed]
        async with first() as session:
            rows = await queries.messages_by_status(session, "pending")
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(won) == sorted(ids)  # every message once, none twice
    assert {row.attempts for row in rows} == {1}
