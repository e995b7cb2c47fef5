"""The agent as a whole: a real arq worker on real Redis, JSON jobs, clean shutdown.

No labci server runs here (that is the e2e suite's job): the server URL points at a closed
port, which also exercises "heartbeat failures never crash the agent".
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool

from labci_runner import agent
from labci_runner import client as client_module
from labci_runner.agent import RunnerIdentity, save_identity
from labci_runner.jobs import RunningJobs
from labci_runner.settings import Settings

CLOSED_PORT_URL = "http://127.0.0.1:9"


@pytest.fixture
async def redis_pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    """The suite's real Redis (the CI service, or an embedded redis-server)."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=lambda d: json.dumps(d).encode(),
        job_deserializer=json.loads,
    )
    yield pool
    await pool.aclose()


async def test_worker_runs_json_jobs_from_its_queue_and_stops_cleanly(
    tmp_path: Path, redis_pool: ArqRedis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_FIRST_S", 0.001)
    queue = f"labci:test:{uuid.uuid4().hex}"
    save_identity(tmp_path / "runner.json", RunnerIdentity(CLOSED_PORT_URL, 1, "tok", queue))
    settings = Settings(
        workdir=tmp_path, redis_url=redis_url, heartbeat_interval_s=0.05, poll_delay_s=0.01
    )
    stop = asyncio.Event()
    agent_task = asyncio.create_task(agent.start(settings, stop=stop))

    job_id = uuid.uuid4().int % 10**9
    job = await redis_pool.enqueue_job(
        "run_job", job_id, 1, _job_id=f"job-{job_id}-1", _queue_name=queue
    )
    assert job is not None
    # The server is unreachable, so the flow gives up at the fetch, without a job token.
    assert await job.result(timeout=20, poll_delay=0.02) == "fetch failed"
    assert not agent_task.done()  # failed heartbeats did not take the agent down

    stop.set()
    await asyncio.wait_for(agent_task, 10)
    assert agent_task.result() is None


async def test_running_jobs_cancel_with_a_reason() -> None:
    running = RunningJobs()
    started = asyncio.Event()

    async def job() -> None:
        with running.track(7, 2):
            started.set()
            await asyncio.sleep(300)

    task = asyncio.create_task(job())
    await started.wait()
    assert running.keys() == [(7, 2)]
    assert running.stop((7, 2), "cancelled")
    assert not running.stop((8, 1), "cancelled")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert running.keys() == []
    assert await running.wait_idle(1)
