"""OutlastingWorker against a real redis-server killed with -9 and restarted: the worker
does not exit, the job that was running finishes and its end is written once Redis is
back, polling resumes, and the outage is logged once when it starts and once when it ends."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job, JobStatus
from arq.worker import func

from helpers.redis_process import RedisProcess
from helpers.waiting import HANG_GUARD_S
from labci_runner import redis_outage
from labci_runner.redis_outage import Outage, OutlastingWorker, with_outage

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "labci:test-outage"


def test_the_server_and_the_runner_share_one_implementation() -> None:
    server_copy = ROOT / "server/src/labci_server/redis_outage.py"
    assert server_copy.read_text() == Path(redis_outage.__file__).read_text()


async def eventually(predicate: Callable[[], Any], what: str) -> None:
    """Poll without blocking the loop the worker runs on; fail after the hang guard."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def killable_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def enqueuer(killable_redis: RedisProcess) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(
        RedisSettings.from_dsn(killable_redis.url),
        job_serializer=lambda d: json.dumps(d).encode(),
        job_deserializer=json.loads,
        default_queue_name=QUEUE,
    )
    yield pool
    await pool.aclose()


async def test_a_worker_outlasts_redis_killed_mid_job(
    killable_redis: RedisProcess, enqueuer: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=redis_outage.__name__)
    runs: list[str] = []
    release = asyncio.Event()

    async def work(ctx: dict[str, Any], name: str) -> str:
        runs.append(name)
        if name == "long":
            await release.wait()
        return f"done {name}"

    outage = Outage(killable_redis.url)
    worker = OutlastingWorker(
        functions=[func(work, name="work")],
        queue_name=QUEUE,
        redis_settings=with_outage(killable_redis.url, outage),
        job_serializer=lambda d: json.dumps(d, default=str).encode(),
        job_deserializer=json.loads,
        handle_signals=False,
        poll_delay=0.05,
        max_jobs=2,
        max_tries=1,
        keep_result=60,
        outage=outage,
    )
    main = asyncio.create_task(worker.async_run())
    try:
        await enqueuer.enqueue_job("work", "long", _job_id="long")
        await eventually(lambda: runs == ["long"], "the long job to start")

        killable_redis.kill()
        await eventually(lambda: outage.since is not None, "the worker to notice the outage")
        release.set()  # the job ends while Redis is away
        await eventually(lambda: "long" not in worker.job_tasks, "the job's function to end")
        await asyncio.sleep(3 * redis_outage.RECONNECT_MAX_S)  # the outage goes on a while
        assert not worker.tasks["long"].done()  # its end waits to be written
        assert not main.done()

        await asyncio.to_thread(killable_redis.start)  # the same port and append-only file
        await enqueuer.enqueue_job("work", "after", _job_id="after")
        await eventually(lambda: runs == ["long", "after"], "polling to resume")
        long_job = Job("long", enqueuer, _queue_name=QUEUE, _deserializer=json.loads)
        assert await long_job.result(timeout=HANG_GUARD_S, poll_delay=0.05) == "done long"
        assert await long_job.status() == JobStatus.complete
    finally:
        await worker.close()
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "unreachable" in m]) == 1
    assert len([m for m in said if "answers again" in m]) == 1
    assert runs == ["long", "after"]  # neither job ran twice
