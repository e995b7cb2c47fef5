"""arq plumbing shared by the API and the server worker.

Jobs are JSON-serialised (runners are other machines; pickle would let Redis run code).
The arq job id is derived from labci's ids so a duplicate enqueue is a no-op; SQL stays
the source of truth and the reconciler re-enqueues what Redis lost.

Every enqueue goes through `enqueue`, which also pushes a wake mark for the queue's idle
workers, who block on it rather than poll (redis_outage.OutlastingWorker).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.exceptions import WatchError

from .redis_outage import REDIS_DOWN, WAKE_MARKS_MAX, Outage, wake_key, with_outage

log = logging.getLogger(__name__)

SERVER_QUEUE = "labci:server"
# Far beyond any job's own timeout: a queued job must never vanish silently. The
# reconciler re-enqueues by id whatever Redis lost anyway.
QUEUED_JOB_EXPIRES_S = 7 * 24 * 3600


def serialize(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def deserialize(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(data)
    return result


async def connect(redis_url: str, *, outage: Outage | None = None) -> ArqRedis:
    """A pool on `redis_url` whose outages are logged once each. Given a patient `outage`
    (the worker's), its commands wait for Redis when it is away; else they fail at once."""
    return await create_pool(
        with_outage(redis_url, outage or Outage(redis_url, patient=False)),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=SERVER_QUEUE,
    )


def run_job_id(job_id: int, attempt: int, queue_name: str) -> str:
    """Prefixed with the runner's queue: arq keys a job as `arq:<kind>:<id>`, so the runner's
    Redis user (scheduling/runner_acl.py) can be limited to `arq:*:<queue>:*`."""
    return f"{queue_name}:job-{job_id}-{attempt}"


async def enqueue(
    redis: ArqRedis,
    function: str,
    *args: Any,
    job_id: str | None = None,
    queue_name: str = SERVER_QUEUE,
    expires_s: float | None = None,
    kwargs: dict[str, Any] | None = None,
) -> bool:
    """arq's `ArqRedis.enqueue_job` (0.28), with a wake mark pushed in the same transaction:
    a worker blocked on the queue's wake list starts the job at once, and neither can be
    written without the other. Whether it was enqueued: a job whose id is queued, running
    or has a result is not queued again (arq's dedupe)."""
    job_id = job_id or uuid4().hex
    job_key = job_key_prefix + job_id
    wake = wake_key(queue_name)
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(job_key)
        if await pipe.exists(job_key, result_key_prefix + job_id):
            await pipe.reset()
            return False
        now_ms = timestamp_ms()
        expires_ms = int(expires_s * 1000) if expires_s else redis.expires_extra_ms
        job = serialize_job(
            function, args, kwargs or {}, None, now_ms, serializer=redis.job_serializer
        )
        pipe.multi()
        pipe.psetex(job_key, expires_ms, job)
        pipe.zadd(queue_name, {job_id: now_ms})
        pipe.lpush(wake, b"1")
        pipe.ltrim(wake, 0, WAKE_MARKS_MAX - 1)
        try:
            await pipe.execute()
        except WatchError:  # enqueued meanwhile under the same id
            return False
    return True


async def enqueue_plan(redis: ArqRedis, event_id: int) -> None:
    await enqueue(redis, "plan_event", event_id, job_id=f"plan-{event_id}")


async def enqueue_run_job(
    redis: ArqRedis,
    *,
    job_id: int,
    attempt: int,
    queue_name: str,
    prefetch: dict[str, str] | None = None,
) -> None:
    """`prefetch` ({clone_url, commit_sha}, for runners that take it: see
    scheduling.runners.takes_prefetch) lets the runner fetch the commit into its mirror
    while it fetches the job; the job it fetches still decides what is checked out."""
    await enqueue(
        redis,
        "run_job",
        job_id,
        attempt,
        job_id=run_job_id(job_id, attempt, queue_name),
        queue_name=queue_name,
        expires_s=QUEUED_JOB_EXPIRES_S,
        kwargs={"prefetch": prefetch} if prefetch else None,
    )


# One bisection pass queued at a time: a kick while one waits is a no-op.
BISECTIONS_JOB_ID = "advance-bisections"


@contextmanager
def unless_redis_is_down(what: str) -> Iterator[None]:
    """For work that only hastens what the worker's loops do anyway (deliver the outbox,
    schedule, plan what is left in `received`): with Redis away it is logged and skipped,
    so a request whose SQL work is committed (a heartbeat, a completion) still succeeds."""
    try:
        yield
    # WatchError: arq's enqueue WATCHes the job's key, and a connection lost meanwhile is
    # reported so (redis-py cannot retry a WATCH).
    except (*REDIS_DOWN, WatchError) as exc:  # the outage itself is logged once
        log.debug("%s skipped, Redis unreachable (%s): the worker catches up", what, exc)


async def kick_bisections(redis: ArqRedis) -> None:
    """One pass over the bisections under way; while one is queued, more kicks are no-ops."""
    with unless_redis_is_down("bisections kick"):
        await enqueue(redis, "advance_bisections", job_id=BISECTIONS_JOB_ID)


# Scheduling and outbox passes are coalesced: a kick leaves one mark on the pass's wake list
# (never more), and a loop in each worker, blocked on it, runs one pass per mark it takes.
# The mark is taken before the pass starts, so a kick during a pass leaves a new one: however
# many kicks arrive meanwhile, one more pass follows, none is lost, none piles up. A pass
# covers everything due, whoever kicked: 200 idle runners heartbeating, or 1,000 plans and
# job completions each asking for their statuses to go out, cost a pass at a time.
SCHEDULE_WAKE_KEY = "labci:wake:schedule"
# The outbox was an arq job per kick: each walked the same due list at the pacing interval
# for many seconds, and under load twenty of them held every job slot of the worker, so
# plans waited in arq's queue. A wake list takes no slot and cannot pile up.
OUTBOX_WAKE_KEY = "labci:wake:outbox"


async def _kick(redis: ArqRedis, *wake_keys: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for wake_key in wake_keys:
            pipe.lpush(wake_key, b"1")
            pipe.ltrim(wake_key, 0, 0)
        await pipe.execute()


async def kick_scheduler(redis: ArqRedis) -> None:
    with unless_redis_is_down("scheduler kick"):
        await _kick(redis, SCHEDULE_WAKE_KEY)


async def kick_outbox(redis: ArqRedis) -> None:
    with unless_redis_is_down("outbox kick"):
        await _kick(redis, OUTBOX_WAKE_KEY)


async def wait_for_kick(redis: ArqRedis, wake_key: str, *, timeout_s: float) -> bool:
    """Block until a kick on `wake_key` (True, the mark taken) or `timeout_s` (False)."""
    return await redis.blpop([wake_key], timeout=timeout_s) is not None


async def wait_for_scheduler_kick(redis: ArqRedis, *, timeout_s: float) -> bool:
    """Block until a kick (True) or `timeout_s` (False): the scheduler loop's wait."""
    return await wait_for_kick(redis, SCHEDULE_WAKE_KEY, timeout_s=timeout_s)


async def withdraw_run_job(redis: ArqRedis, *, job_id: int, attempt: int, queue_name: str) -> None:
    """Take a job attempt off a runner's queue (its runner went silent before starting it,
    and the attempt moved elsewhere): a runner that comes back does not find it there."""
    arq_id = run_job_id(job_id, attempt, queue_name)
    with unless_redis_is_down("withdrawal of a queued job"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zrem(queue_name, arq_id)
            pipe.delete(f"arq:job:{arq_id}")
            await pipe.execute()


async def run_job_known(redis: ArqRedis, job_id: int, attempt: int, queue_name: str) -> bool:
    """Whether Redis still knows the run_job message: queued, in progress, or finished."""
    arq_id = run_job_id(job_id, attempt, queue_name)
    keys = [f"arq:job:{arq_id}", f"arq:in-progress:{arq_id}", f"arq:result:{arq_id}"]
    return bool(await redis.exists(*keys))
