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

This file has an identical twin: labci_server/redis_outage.py and labci_runner/redis_outage.py
(the runner never imports the server). A test keeps the two the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from arq.connections import RedisSettings
from arq.worker import Worker
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

log = logging.getLogger(__name__)

RECONNECT_FIRST_S = 0.05
# The longest wait between two tries: how late at most a worker notices Redis is back.
RECONNECT_MAX_S = 2.0
# A worker stopped during an outage waits this long for Redis to take its health record.
CLOSE_WAIT_S = 3.0
# What Redis being away looks like through redis-py. A restarted Redis that is still
# reading its append-only file answers LOADING (BusyLoadingError, a ConnectionError).
REDIS_DOWN: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)

T = TypeVar("T")


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

    async def _poll_iteration(self) -> None:
        # An error that got past the retry would end arq's poll loop: poll again instead.
        try:
            await super()._poll_iteration()
        except REDIS_DOWN as exc:
            self.outage.failed(exc)

    async def start_jobs(self, job_ids: Sequence[bytes]) -> None:
        """arq's, one job at a time. arq catches a broken WATCH only at EXEC; when it breaks
        sooner, arq has taken a slot for the job but started no task, so the slot is given
        back here. The job stays queued for the next poll."""
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
