"""Workers wait for wake-ups, not for their next poll (issue 14, item 9).

An OutlastingWorker (the server's `labci worker` and the runner agent share it) whose
safety net (`poll_delay`) is an hour, far beyond the hang guard: each job below starts only
because something woke the worker (an enqueue through labci_server.queue, a deferred job
falling due, a slot freeing), never because the net ran out. Without that, each test would
fail on the hang guard. Real Redis throughout: the suite's, or a redis-server of the test's
own where it is killed, given ACL users, or has its command counts read.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from arq import Retry
from arq.connections import ArqRedis
from arq.worker import func

from helpers.redis_process import RedisProcess
from helpers.waiting import HANG_GUARD_S
from labci_server import redis_outage
from labci_server.queue import connect, deserialize, enqueue, enqueue_run_job, serialize
from labci_server.redis_outage import Outage, OutlastingWorker, with_outage
from labci_server.scheduling.runner_acl import create_runner_user

QUEUE = "labci:test-wake"
NET_S = 3600.0  # the safety net: never reached within a test


class Starts:
    """The jobs started, in order, and an event per job name set when it starts."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.events: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}

    def event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    async def work(self, ctx: dict[str, Any], name: str) -> str:
        self.names.append(name)
        self.event(name).set()
        if name in self.release:
            await self.release[name].wait()
        return name

    async def started(self, name: str) -> None:
        await asyncio.wait_for(self.event(name).wait(), HANG_GUARD_S)


async def eventually(predicate: Callable[[], Any], what: str) -> None:
    """Poll without blocking the loop the worker runs on; fail after the hang guard."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def make_worker(
    redis_url: str, functions: list[Any], *, queue: str = QUEUE, **options: Any
) -> OutlastingWorker:
    outage = Outage(redis_url)
    kwargs: dict[str, Any] = {"poll_delay": NET_S, "max_jobs": 2, **options}
    return OutlastingWorker(
        functions=functions,
        queue_name=queue,
        redis_settings=with_outage(redis_url, outage),
        job_serializer=serialize,
        job_deserializer=deserialize,
        handle_signals=False,
        keep_result=60,
        outage=outage,
        **kwargs,
    )


def blocked(worker: OutlastingWorker) -> bool:
    """Whether the worker is waiting on its wake list (its BLPOP under way)."""
    return worker.wake is not None and not worker.wake.done()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own (its ACL users, its command counts)."""
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def killable_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[OutlastingWorker], asyncio.Task[None]]]:
    """Starts workers; stops and closes each at the end of the test."""
    started: list[tuple[OutlastingWorker, asyncio.Task[None]]] = []

    def start(worker: OutlastingWorker) -> asyncio.Task[None]:
        task = asyncio.create_task(worker.async_run())
        started.append((worker, task))
        return task

    yield start
    for worker, task in started:
        await worker.close()  # handle_signals=False: close() stops it (handle_sig) first
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = await connect(redis_url)
    yield client
    await client.aclose()


async def test_an_idle_worker_starts_an_enqueued_job_when_woken(
    redis_url: str, pool: ArqRedis, running: Any
) -> None:
    starts = Starts()
    worker = make_worker(redis_url, [func(starts.work, name="work")])
    running(worker)
    await eventually(lambda: blocked(worker), "the worker to wait on its wake list")

    assert await enqueue(pool, "work", "first", queue_name=QUEUE)
    await starts.started("first")
    await eventually(lambda: blocked(worker), "the worker to wait again")
    assert await enqueue(pool, "work", "second", job_id="second", queue_name=QUEUE)
    assert not await enqueue(pool, "work", "second", job_id="second", queue_name=QUEUE)
    await starts.started("second")
    assert starts.names == ["first", "second"]  # the duplicate id was not queued again


async def test_the_wake_list_stays_bounded(redis_url: str, pool: ArqRedis) -> None:
    for n in range(3 * redis_outage.WAKE_MARKS_MAX):
        await enqueue(pool, "work", n, queue_name=QUEUE)
    marks = await pool.llen(redis_outage.wake_key(QUEUE))
    assert marks == redis_outage.WAKE_MARKS_MAX


async def test_a_deferred_job_starts_when_due(redis_url: str, pool: ArqRedis, running: Any) -> None:
    """Deferred by arq itself (no wake mark): the worker's wait ends when it falls due."""
    starts = Starts()
    await pool.enqueue_job("work", "later", _queue_name=QUEUE, _defer_by=0.3)
    running(make_worker(redis_url, [func(starts.work, name="work")]))
    await starts.started("later")


async def test_a_retried_job_runs_again_when_its_delay_ends(
    redis_url: str, pool: ArqRedis, running: Any
) -> None:
    """arq puts a job that raised Retry back in the queue, deferred: its end makes the
    worker look at the queue again, and the wait ends when the retry is due."""
    tries: list[int] = []
    second_try = asyncio.Event()

    async def flaky(ctx: dict[str, Any]) -> str:
        tries.append(ctx["job_try"])
        if ctx["job_try"] == 1:
            raise Retry(defer=0.3)
        second_try.set()
        return "ok"

    worker = make_worker(redis_url, [func(flaky, name="flaky", max_tries=3)])
    running(worker)
    await eventually(lambda: blocked(worker), "the worker to wait on its wake list")
    await enqueue(pool, "flaky", queue_name=QUEUE)
    await asyncio.wait_for(second_try.wait(), HANG_GUARD_S)
    assert tries == [1, 2]


async def test_a_full_worker_starts_the_queued_job_when_a_slot_frees(
    redis_url: str, pool: ArqRedis, running: Any
) -> None:
    """With every slot taken the worker does not take wake marks (it could start nothing);
    the end of a running job is what starts the next one."""
    starts = Starts()
    starts.release["first"] = asyncio.Event()
    worker = make_worker(redis_url, [func(starts.work, name="work")], max_jobs=1)
    running(worker)
    await enqueue(pool, "work", "first", queue_name=QUEUE)
    await starts.started("first")
    await enqueue(pool, "work", "second", queue_name=QUEUE)
    await eventually(lambda: worker.job_counter == 1 and not blocked(worker), "a full wait")
    assert starts.names == ["first"]

    starts.release["first"].set()
    await starts.started("second")
    assert starts.names == ["first", "second"]


async def test_stopping_a_worker_blocked_on_its_wake_list(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What `handle_sig` (SIGTERM, SIGINT; the runner's stop_worker) does ends the wait:
    main is cancelled out of its BLPOP, long before the net would end it."""
    starts = Starts()
    worker = make_worker(redis_url, [func(starts.work, name="work")])
    main = asyncio.create_task(worker.async_run())
    try:
        await eventually(lambda: blocked(worker), "the worker to wait on its wake list")
        wake = worker.wake
        worker.handle_sig(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(main, return_exceptions=True), HANG_GUARD_S)
        assert main.cancelled()
        assert wake is not None
        assert wake.cancelled()
    finally:
        await worker.close()
    assert worker._pool is None  # closed: on_shutdown ran, the pool is gone


async def test_idle_workers_cost_a_few_commands_per_safety_net(own_redis: RedisProcess) -> None:
    """An idle worker's commands per safety-net interval: a poll, a look at the next
    deferred job, a BLPOP. Polling every 20 ms would be 25 polls per half second."""
    server = own_redis
    admin = redis.asyncio.Redis(port=server.port)
    net_s = 0.5
    worker = make_worker(server.url, [func(Starts().work, name="work")], poll_delay=net_s)
    main = asyncio.create_task(worker.async_run())
    try:
        await eventually(lambda: blocked(worker), "the worker to wait on its wake list")
        await admin.config_resetstat()
        since = time.monotonic()
        blpops = 0
        while blpops < 4:  # four nets gone by
            stats = await admin.info("commandstats")
            blpops = stats.get("cmdstat_blpop", {}).get("calls", 0)
            await asyncio.sleep(net_s / 5)
        elapsed_s = time.monotonic() - since
        stats = await admin.info("commandstats")
    finally:
        await worker.close()
        await asyncio.gather(main, return_exceptions=True)
        await admin.aclose()
    ours = ("cmdstat_info", "cmdstat_config")  # the test's own
    calls = {name: s["calls"] for name, s in stats.items() if not name.startswith(ours)}
    nets = elapsed_s / net_s
    assert sum(calls.values()) <= 3 * (nets + 1), calls
    assert set(calls) <= {"cmdstat_zrangebyscore", "cmdstat_blpop"}, calls


async def test_a_worker_blocked_on_its_wake_list_outlasts_a_redis_restart(
    killable_redis: RedisProcess, running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=redis_outage.__name__)
    starts = Starts()
    worker = make_worker(killable_redis.url, [func(starts.work, name="work")])
    main = running(worker)
    await eventually(lambda: blocked(worker), "the worker to wait on its wake list")

    killable_redis.kill()
    await eventually(lambda: worker.outage.since is not None, "the worker to notice")
    await asyncio.to_thread(killable_redis.start)  # the same port and append-only file
    client = await connect(killable_redis.url)
    try:
        await eventually(lambda: worker.outage.since is None, "the worker to reconnect")
        await enqueue(client, "work", "after", queue_name=QUEUE)
        await starts.started("after")
    finally:
        await client.aclose()
    assert not main.done()
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "unreachable" in m]) == 1
    assert len([m for m in said if "answers again" in m]) == 1


@pytest.mark.parametrize("may_blpop", [True, False], ids=["current-user", "older-user"])
async def test_a_runner_user_waits_for_wake_ups_or_polls_if_it_may_not(
    own_redis: RedisProcess, running: Any, caplog: pytest.LogCaptureFixture, may_blpop: bool
) -> None:
    """A runner's Redis user (runner_acl.py) may BLPOP its queue's wake list. One made by an
    older server may not: the worker says so once, and polls instead."""
    caplog.set_level(logging.WARNING, logger=redis_outage.__name__)
    server = own_redis
    admin = await connect(server.url)
    try:
        queue = "labci:runner:7"
        user = await create_runner_user(admin, queue)
        if not may_blpop:  # the rules before wake-ups
            await admin.execute_command("ACL", "SETUSER", user.username, "-blpop")
        url = f"redis://{user.username}:{user.password}@127.0.0.1:{server.port}/0"
        starts = Starts()

        async def run_job(ctx: dict[str, Any], job_id: int, attempt: int) -> str:
            return await starts.work(ctx, f"job-{job_id}-{attempt}")

        worker = make_worker(url, [func(run_job, name="run_job")], queue=queue)
        running(worker)
        for job_id in (1, 2):
            if may_blpop:
                await eventually(lambda: blocked(worker), "the worker to wait on its wake list")
            else:
                await eventually(lambda: worker.wake_refused, "the worker to be refused BLPOP")
            await enqueue_run_job(admin, job_id=job_id, attempt=1, queue_name=queue)
            await starts.started(f"job-{job_id}-1")
        assert worker.wake_refused is not may_blpop
    finally:
        await admin.aclose()
    said = [r.getMessage() for r in caplog.records if "may not wait for wake-ups" in r.getMessage()]
    assert len(said) == (0 if may_blpop else 1), said
    if not may_blpop:
        assert "labci-runner register" in said[0]
        assert "+blpop" in said[0]
