"""The arq worker on this runner's own queue.

The server enqueues `run_job(job_id, attempt)` with arq job id `job-<job_id>-<attempt>`.
arq only delivers the work: retries are the server's decision (a new attempt number),
so `max_tries=1` and `retry_jobs=False`. The job's own `timeout-minutes` is enforced
inside the flow (`asyncio.timeout`); arq's per-function timeout is only a backstop, set
above the longest timeout the spec allows so it never cuts a legal job short.
"""

from __future__ import annotations

import json
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func

from labci_runner.jobs import JobRuntime, execute_job
from labci_runner.settings import Settings
from labci_spec.model import MAX_TIMEOUT_MINUTES

RUN_JOB_TIMEOUT_S = MAX_TIMEOUT_MINUTES * 60 + 600
KEEP_RESULT_S = 60


async def run_job(ctx: dict[str, Any], job_id: int, attempt: int) -> str:
    runtime: JobRuntime = ctx["runtime"]
    return await execute_job(runtime, int(job_id), int(attempt))


def _serialize(data: dict[str, Any]) -> bytes:
    # JSON, never pickle: whoever can write to the queue must not run code on the runner.
    return json.dumps(data).encode()


def build_worker(settings: Settings, queue_name: str, runtime: JobRuntime) -> Worker:
    """A Worker for `queue_name`; signals are handled by the agent, not by arq."""
    return Worker(
        functions=[func(run_job, name="run_job", timeout=RUN_JOB_TIMEOUT_S, max_tries=1)],
        queue_name=queue_name,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        ctx={"runtime": runtime},
        job_serializer=_serialize,
        job_deserializer=json.loads,
        allow_abort_jobs=True,
        max_jobs=settings.slots,
        poll_delay=settings.poll_delay_s,
        max_tries=1,
        retry_jobs=False,
        handle_signals=False,
        keep_result=KEEP_RESULT_S,
    )
