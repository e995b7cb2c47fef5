"""A starting worker takes back what a killed one left marked in progress in Redis: the
planning of events (B8) and the bisection pass, whose fixed job id would otherwise turn
every kick into a no-op until arq's mark expired (300 s and more)."""

from __future__ import annotations

import redis as redis_sync

from helpers.server import test_settings
from labci_server.db.migrate import upgrade
from labci_server.workers import make_worker


async def test_a_starting_worker_clears_stale_marks_and_only_those(database_url, redis_url):
    marks = {
        "arq:in-progress:plan-7": True,
        "arq:in-progress:advance-bisections": True,
        "arq:in-progress:job-3-1:labci:runner:gpu-1": False,  # a runner's job: not ours
        "arq:in-progress:deliver_outbox-abc": False,
    }
    client = redis_sync.Redis.from_url(redis_url)
    try:
        for key in marks:
            client.set(key, b"1", px=300_000)
        settings = test_settings(database_url, redis_url)
        await upgrade(settings.database_url)
        worker = make_worker(settings, burst=True)
        try:
            await worker.main()
        finally:
            await worker.on_shutdown(worker.ctx)
            await worker.pool.aclose()
        left = {key: bool(client.exists(key)) for key in marks}
    finally:
        client.close()
    assert left == {key: not cleared for key, cleared in marks.items()}
