"""Outbox passes are coalesced per worker: a kick is a mark on a wake list, never an arq job,
and the worker's loop runs one pass per mark it takes (workers.on_kicks). Real Redis, the
real loop; the passes here are the test's own, so that it can hold one open and kick it."""

from __future__ import annotations

import asyncio

from test_outbox import github_context, queue, successful_posts

from helpers.server import server_context, test_settings
from helpers.waiting import HANG_GUARD_S
from labci_server.db.queries import outbox as outbox_queries
from labci_server.queue import OUTBOX_WAKE_KEY, SERVER_QUEUE, kick_outbox
from labci_server.workers import on_kicks, outbox_loop

# Longer than any test: a pass here can only come from a kick, never from the interval.
NO_INTERVAL_S = 3600.0


class HeldPasses:
    """Passes that each wait, once started, until the test lets them end."""

    def __init__(self) -> None:
        self.started: list[asyncio.Event] = []
        self.ended: list[asyncio.Event] = []
        self.release: list[asyncio.Event] = []
        self._more = asyncio.Condition()

    async def run(self) -> None:
        n = len(self.started)
        async with self._more:
            self.started.append(asyncio.Event())
            self.ended.append(asyncio.Event())
            self.release.append(asyncio.Event())
            self._more.notify_all()
        self.started[n].set()
        await self.release[n].wait()
        self.ended[n].set()

    async def wait_started(self, n: int) -> None:
        """Until pass `n` (from 0) has started; fails after the hang guard."""

        async def started() -> None:
            async with self._more:
                await self._more.wait_for(lambda: len(self.started) > n)

        await asyncio.wait_for(started(), HANG_GUARD_S)


async def test_kicks_during_a_pass_cost_one_more_pass_and_none_is_lost(database_url, redis_url):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        await sc.redis.delete(OUTBOX_WAKE_KEY)
        passes = HeldPasses()
        loop = asyncio.create_task(
            on_kicks(sc.redis, OUTBOX_WAKE_KEY, passes.run, interval_s=NO_INTERVAL_S, name="t")
        )
        try:
            await kick_outbox(sc.redis)
            await passes.wait_started(0)
            for _ in range(50):  # a burst of plans and completions during the pass
                await kick_outbox(sc.redis)
            marks_during_pass = await sc.redis.llen(OUTBOX_WAKE_KEY)
            passes.release[0].set()
            await passes.wait_started(1)  # the kicks during pass 0 were not lost
            marks_during_second = await sc.redis.llen(OUTBOX_WAKE_KEY)
            # A kick while pass 1 runs, after the 50: pass 2 follows pass 1 all the same.
            await kick_outbox(sc.redis)
            passes.release[1].set()
            await passes.wait_started(2)
            passes.release[2].set()
            await asyncio.wait_for(passes.ended[2].wait(), HANG_GUARD_S)
            # Nothing left to wake the loop: 52 kicks cost three passes, not 52.
            marks_after = await sc.redis.llen(OUTBOX_WAKE_KEY)
            arq_jobs = await sc.redis.zcard(SERVER_QUEUE)
            count = len(passes.started)
        finally:
            await stop(loop)
    assert marks_during_pass == 1
    assert marks_during_second == 0
    assert (marks_after, count) == (0, 3)
    assert arq_jobs == 0  # a kick takes none of the worker's job slots


async def test_a_kick_wakes_the_worker_outbox_loop_to_post(github, database_url, redis_url):
    """The worker's own loop, on the stand-in: a status stored, then kicked, is posted at
    once (the loop's interval is far away: only the kick can have woken it)."""
    async with github_context(github, database_url, redis_url) as sc:
        await sc.redis.delete(OUTBOX_WAKE_KEY)
        loop = asyncio.create_task(outbox_loop(sc, interval_s=NO_INTERVAL_S))
        try:
            await queue(sc, "labci/train/small", "pending")
            await kick_outbox(sc.redis)
            # Until the pass has recorded the message sent: a loop stopped mid-transaction
            # would leave its connection to a database the test is about to drop.
            await asyncio.wait_for(recorded_sent(sc, 1), HANG_GUARD_S)
        finally:
            await stop(loop)
    assert successful_posts(github) == {(sc.test_sha, "labci/train/small", "pending"): 1}


async def recorded_sent(sc, count: int) -> None:
    while True:
        async with sc.sessions() as session:
            if len(await outbox_queries.messages_by_status(session, "sent")) >= count:
                return
        await asyncio.sleep(0.02)


async def stop(loop: asyncio.Task) -> None:
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
