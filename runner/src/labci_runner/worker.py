"""The arq worker on this runner's own queue.

The server enqueues `run_job(job_id, attempt)` with arq job id `<queue>:job-<job_id>-<attempt>`.
arq only delivers the work: retries are the server's decision (a new attempt number),
so `max_tries=1` and `retry_jobs=False`. The job's own `timeout-minutes` is enforced
inside the flow (`asyncio.timeout`); arq's per-function timeout is only a backstop, set
above the longest timeout the spec allows so it never cuts a legal job short.

The worker outlasts Redis outages (redis_outage.py): its commands wait for Redis, running
jobs carry on (their logs and heartbeats go over HTTP), and polling resumes when Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.exceptions
from arq.connections import ArqRedis, create_pool
from arq.worker import func

from labci_runner.errors import ConfigError
from labci_runner.jobs import JobRuntime, execute_job, prefetch_of
from labci_runner.redis_outage import Outage, OutlastingWorker, with_outage
from labci_runner.settings import Settings
from labci_spec.model import MAX_TIMEOUT_MINUTES

RUN_JOB_TIMEOUT_S = MAX_TIMEOUT_MINUTES * 60 + 600
KEEP_RESULT_S = 60


async def run_job(ctx: dict[str, Any], job_id: int, attempt: int, prefetch: object = None) -> str:
    """`prefetch`: the server's hint of what the job checks out (`jobs.prefetch_of`)."""
    runtime: JobRuntime = ctx["runtime"]
    return await execute_job(runtime, int(job_id), int(attempt), prefetch_of(prefetch))


def _serialize(data: dict[str, Any]) -> bytes:
    # JSON, never pickle: whoever can write to the queue must not run code on the runner.
    # default=str: arq also serialises results, and a cancelled job's result is an exception.
    return json.dumps(data, default=str).encode()


@asynccontextmanager
async def redis_pool(
    settings: Settings, queue_name: str, outage: Outage
) -> AsyncIterator[ArqRedis]:
    """The agent's Redis pool, owned here so that it is closed with `aclose()`. Its
    commands wait for Redis while it is away, the first one too."""
    try:
        pool = await create_pool(
            with_outage(settings.redis_url, outage),
            job_serializer=_serialize,
            job_deserializer=json.loads,
            default_queue_name=queue_name,
        )
    except (OSError, redis.exceptions.RedisError) as exc:
        raise ConfigError(f"cannot connect to Redis (LABCI_REDIS_URL): {exc}") from exc
    try:
        yield pool
    finally:
        await pool.aclose()


def build_worker(
    settings: Settings, pool: ArqRedis, queue_name: str, runtime: JobRuntime, *, outage: Outage
) -> OutlastingWorker:
    """A Worker for `queue_name`; signals are handled by the agent, not by arq."""
    return OutlastingWorker(
        functions=[func(run_job, name="run_job", timeout=RUN_JOB_TIMEOUT_S, max_tries=1)],
        queue_name=queue_name,
        redis_pool=pool,
        ctx={"runtime": runtime},
        job_serializer=_serialize,
        job_deserializer=json.loads,
        # labci cancels through heartbeats, never arq's abort set, which all runners share:
        # a runner never reads it, so what one writes there cannot reach another.
        allow_abort_jobs=False,
        max_jobs=settings.slots,
        poll_delay=settings.poll_delay_s,
        max_tries=1,
        retry_jobs=False,
        handle_signals=False,
        keep_result=KEEP_RESULT_S,
        outage=outage,
    )


async def stop_worker(worker: OutlastingWorker) -> None:
    """Stop polling and wait for arq's job tasks; the pool stays open for its owner.

    Not `Worker.close()`: that closes the pool, which its owner does.
    """
    worker.handle_sig(signal.SIGTERM)  # cancels the poll loop and any job task left
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    await worker.forget_health()  # bounded: Redis may be away
