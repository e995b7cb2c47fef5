"""An arq worker that outlasts Redis outages (the server's `labci worker`, the runner agent).

arq's Worker ends at the first connection error, since its poll loop does not catch it.
A job that finishes while Redis is away loses its completion. Here every command on the
worker's pools waits for Redis instead: `with_outage` gives each connection a redis-py
`Retry` that never gives up and backs off exponentially (with jitter) up to
`RECONNECT_MAX_S`. Each pending command (a poll, a job's start, its finish) resumes when Redis
answers, and running jobs carry on. `OutlastingWorker` covers what the retry cannot: a
WATCH broken by the outage, a failure while a new connection says hello (redis-py does not
retry that), and a shutdown during an outage. It leans on arq's internals (`job_counter`,
`sem`, `finish_job`); `tests/runner/test_redis_outage.py` runs them against a real
redis-server that is killed and restarted.

An outage is logged once when it starts and once when it ends, never on every try. The
API's pool reports to an impatient Outage: its commands fail at once (a request must not
hang), and its outages are logged once too.

Between two polls the worker waits for work rather than sleeping (arq polls every
`poll_delay`): each enqueue also pushes a mark on the queue's wake list (`wake_key`, in the
same transaction: labci_server/queue.py), and the worker blocks on that list (BLPOP). The
wait ends early when the next deferred job falls due, a health record is due, or, with
every slot taken, a job ends; `poll_delay` is only the safety net, the longest wait
without any of these (a mark lost with Redis, an older server that pushes none).

This file has an identical twin: labci_server/redis_outage.py and labci_runner/redis_outage.py
(the runner never imports the server). A test keeps the two the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from arq.connections import RedisSettings, create_pool, log_redis_info
from arq.utils import timestamp_ms
from arq.worker import Worker
from arq.worker import logger as arq_log
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

RECONNECT_FIRST_S = 0.05
# The longest wait between two tries: how late at most a worker notices Redis is back.
RECONNECT_MAX_S = 2.0
# A worker stopped during an outage waits this long for Redis to take its health record.
CLOSE_WAIT_S = 3.0
# What Redis being away looks like through redis-py. A restarted Redis that is still
# reading its append-only file answers LOADING (BusyLoadingError, a ConnectionError).
REDIS_DOWN: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)

# Wake marks kept on a queue's list: N enqueues wake up to N workers sharing the queue, and
# marks left when none waits cost at most this many quick polls (marks carry no job).
WAKE_MARKS_MAX = 64
# A worker whose Redis user may not BLPOP (a runner's, made by an older server) polls this
# often instead, as every worker did before wake-ups.
FALLBACK_POLL_S = 0.02
# A BLPOP still unanswered this long after its own timeout is given up, dropping its
# connection: a TCP path that died without a reset must not hold the worker forever.
WAKE_GRACE_S = 5.0

T = TypeVar("T")


def wake_key(queue_name: str) -> str:
    """The list an enqueue pushes a mark on, that the queue's idle workers block on. Under
    the queue's name, so a runner's Redis user (runner_acl.py, `Q:*`) reaches it."""
    return f"{queue_name}:wake"


class Outage:
    """Whether Redis is away, shared by every connection of a process's pools: the outage
    is logged once when it starts and once when it ends. A patient outage makes commands
    wait for Redis (a worker's); else they fail at once (the API's: a request must not
    hang), as they do after `give_up()` (the process is stopping)."""

    def __init__(self, redis_url: str, *, patient: bool = True) -> None:
        parts = urlsplit(redis_url)  # never the credentials: host, port and database only
        self.where = f"{parts.hostname}:{parts.port or 6379}{parts.path or ''}"
        self.since: float | None = None
        self.patient = patient

    def __deepcopy__(self, memo: dict[int, Any]) -> Outage:
        return self  # redis-py copies the Retry for each connection; the outage stays one

    def failed(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "Redis at %s unreachable (%s); %s",
                self.where,
                error,
                f"waiting for it, retrying at most {RECONNECT_MAX_S:.0f} s apart"
                if self.patient
                else "what needs it fails until it answers",
            )

    def answered(self) -> None:
        if self.since is not None:
            log.warning(
                "Redis at %s answers again after %.1f s", self.where, time.monotonic() - self.since
            )
            self.since = None

    def give_up(self) -> None:
        self.patient = False


class PatientRetry(Retry):
    """redis-py's Retry, retrying for as long as the outage lasts and telling the Outage."""

    __slots__ = ("_outage",)

    def __init__(self, outage: Outage) -> None:
        backoff = EqualJitterBackoff(cap=RECONNECT_MAX_S, base=RECONNECT_FIRST_S)
        super().__init__(backoff, retries=-1, supported_errors=REDIS_DOWN)  # type: ignore[arg-type]
        self._outage = outage

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[Any], Any]
    ) -> T:
        failures = 0
        while True:
            try:
                result = await do()
            except self._supported_errors as error:
                failures += 1
                if failures > 1 or not self._outage.patient:
                    # One failure may be a connection from before Redis restarted; a
                    # second, on a new connection, is an outage.
                    self._outage.failed(error)
                await fail(error)  # disconnects; raises where a retry cannot help (a WATCH)
                if not self._outage.patient:
                    raise
                await asyncio.sleep(self._backoff.compute(failures))
            else:
                self._outage.answered()
                return result


def with_outage(redis_url: str, outage: Outage) -> RedisSettings:
    """arq's RedisSettings for `redis_url`, each connection reporting to `outage`. With a
    patient one every command waits out an outage, the first connection's too: a worker
    started before Redis waits for it."""
    return dataclasses.replace(
        RedisSettings.from_dsn(redis_url),
        retry=PatientRetry(outage),
        retry_on_error=list(REDIS_DOWN),
    )


class OutlastingWorker(Worker):
    """An arq Worker, on a pool made with `with_outage`, that outlasts outages."""

    def __init__(self, *args: Any, outage: Outage, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = outage
        self.wake_key = wake_key(self.queue_name)
        # Set when a poll should follow at once: a job ended (a slot freed, or arq put it
        # back in the queue to retry), or a start was given back.
        self.poll_again = asyncio.Event()
        # The BLPOP under way. A wait that ends otherwise leaves it blocked for the next
        # one: cancelling it would cost a connection (redis-py drops it) and maybe a mark.
        self.wake: asyncio.Task[Any] | None = None
        self.wake_ends_s = 0.0  # when its timeout ends it (the event loop's clock)
        self.wake_refused = False  # the Redis user may not BLPOP: poll instead

    async def main(self) -> None:
        """arq's main loop, waiting for work between polls instead of sleeping `poll_delay`.
        In burst mode arq's own loop runs: it returns once the queue is empty. Stopping
        the worker cancels this (arq's `handle_sig` cancels `main_task`), BLPOP included."""
        if self.burst:
            return await super().main()
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        arq_log.info(
            "Starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions)
        )
        await log_redis_info(self.pool, arq_log.info)
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        try:
            while True:
                self.poll_again.clear()  # what happens from here on, this poll sees
                await self._poll_iteration()
                await self.wait_for_work()
        finally:
            if self.wake is not None:  # redis-py closes a connection cancelled mid-command
                self.wake.cancel()
                await asyncio.gather(self.wake, return_exceptions=True)

    async def wait_for_work(self) -> None:
        """Until a job may start: a wake mark (a job enqueued), the next deferred job due,
        a job's end, the health record due, or else the safety net (`poll_delay`)."""
        if self.poll_again.is_set():
            return
        try:
            if self.job_counter >= self.max_jobs:
                # No job can start before a slot frees: a wake mark would be wasted.
                await self._until(self._longest_wait_s())
            elif self.wake_refused:
                await self._until(min(FALLBACK_POLL_S, self._longest_wait_s()))
            else:
                await self._until_woken()
        except NoPermissionError as exc:
            self.wake_refused = True
            log.warning(
                "Redis user may not wait for wake-ups (%s): polling every %.2f s instead. Its "
                "rules predate this version: re-register the runner (labci-runner register) "
                "or add +blpop to the user (ACL SETUSER <user> +blpop, then ACL SAVE)",
                exc,
                FALLBACK_POLL_S,
            )
        except REDIS_DOWN as exc:  # past the retry (a failed hello): a pause, not a spin
            self.outage.failed(exc)
            await asyncio.sleep(RECONNECT_MAX_S)

    async def _until_woken(self) -> None:
        now_ms = timestamp_ms()
        # The next job deferred (or retried) to a later time. Due ones are running, here or
        # elsewhere, or were started by the poll just done.
        ahead = await self.pool.zrangebyscore(
            self.queue_name, f"({now_ms}", "+inf", start=0, num=1, withscores=True
        )
        timeout_s = self._longest_wait_s()
        if ahead:
            timeout_s = min(timeout_s, (ahead[0][1] - now_ms) / 1000)
        if timeout_s <= 0:
            return
        now_s = asyncio.get_running_loop().time()
        if self.wake is None:
            self.wake = asyncio.create_task(self._take_wake_mark(timeout_s))
            self.wake_ends_s = now_s + timeout_s
        # A BLPOP begun in an earlier wait may block past this one's end. Else its own
        # timeout ends the wait: a timer here would fire a hair sooner, costing two polls.
        late = self.wake_ends_s > now_s + timeout_s
        await self._until(timeout_s if late else None, self.wake)
        if self.wake.done():
            done, self.wake = self.wake, None
            done.result()  # its error, if any, is the caller's

    async def _take_wake_mark(self, timeout_s: float) -> None:
        # Redis counts BLPOP's timeout in whole milliseconds, and 0 would block forever.
        timeout_s = math.ceil(timeout_s * 1000) / 1000
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s + WAKE_GRACE_S):
                await self.pool.blpop([self.wake_key], timeout=timeout_s)  # type: ignore[arg-type]

    async def _until(self, timeout_s: float | None, wake: asyncio.Task[Any] | None = None) -> None:
        """Wait at most `timeout_s` (None: no limit) for `poll_again`, or for `wake` to end."""
        again = asyncio.ensure_future(self.poll_again.wait())
        try:
            await asyncio.wait(
                {again} if wake is None else {again, wake},
                timeout=timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            again.cancel()

    def _longest_wait_s(self) -> float:
        """The safety net (`poll_delay`), or less when the health record is due sooner
        (arq writes it from the poll loop, and `labci worker --check` reads it)."""
        health_due_s = self._last_health_check + self.health_check_interval - time.time()
        return max(0.0, min(self.poll_delay_s, health_due_s))

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        # A job ended: a job queued behind full slots may start, a retried one may be due.
        self.poll_again.set()

    async def _poll_iteration(self) -> None:
        # An error that got past the retry would end arq's poll loop: poll again instead.
        try:
            await super()._poll_iteration()
        except REDIS_DOWN as exc:
            self.outage.failed(exc)

    async def start_jobs(self, job_ids: Sequence[bytes]) -> None:
        """arq's, one job at a time. arq catches a broken WATCH only at EXEC; when it breaks
        sooner, arq has taken a slot for the job but started no task, so the slot is given
        back here. The job stays queued, and the next poll follows at once (`poll_again`)."""
        for job_id in job_ids:
            if self.job_counter >= self.max_jobs:
                return
            try:
                await super().start_jobs([job_id])
            except WatchError:  # its connection broke, maybe one from before a restart
                self._release_sem_dec_counter_on_complete()
            except REDIS_DOWN as exc:
                self.outage.failed(exc)
                self._release_sem_dec_counter_on_complete()

    async def finish_job(self, *args: Any, **kwargs: Any) -> None:
        await self._until_written(super().finish_job, *args, **kwargs)

    async def finish_failed_job(self, *args: Any, **kwargs: Any) -> None:
        await self._until_written(super().finish_failed_job, *args, **kwargs)

    async def _until_written(
        self, write: Callable[..., Awaitable[None]], *args: Any, **kwargs: Any
    ) -> None:
        """A job's end is written to Redis whatever happens to the connection (the write is
        idempotent: keys set and deleted, queue members removed)."""
        while True:
            try:
                return await write(*args, **kwargs)
            except REDIS_DOWN as exc:
                self.outage.failed(exc)
                if not self.outage.patient:
                    raise
                await asyncio.sleep(RECONNECT_MAX_S)

    async def forget_health(self) -> None:
        """Remove the health record, waiting at most CLOSE_WAIT_S (it expires anyway)."""
        self.outage.give_up()
        with contextlib.suppress(*REDIS_DOWN):
            await asyncio.wait_for(self.pool.delete(self.health_check_key), CLOSE_WAIT_S)

    async def close(self) -> None:
        """arq's close, except that a worker stopped during an outage neither waits for
        Redis forever nor skips `on_shutdown`."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.forget_health()
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose()
        self._pool = None
