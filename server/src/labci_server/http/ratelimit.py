"""Write requests limited per caller: an API token, else a signed-in session, else an
address, over a moving window kept in Redis (shared by every server process).

Routes opt in with `dependencies=[Depends(limit_writes)]`; over the limit they answer 429
with `Retry-After`. Webhooks and runner calls are not limited here: GitHub does not resend
a delivery it saw refused, and a runner's log batches follow its jobs' output.

If Redis cannot be reached the request goes through (logged): the limiter guards against
floods, and the write itself reports the outage when it needs Redis or the database.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from ..auth.principal import SESSION_USER
from ..errors import ConfigError, LabciError

log = logging.getLogger(__name__)

KEY_PREFIX = "labci:writes"


class TooManyRequests(LabciError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def parse_rate(text: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(
            f"LABCI_WRITE_RATE_LIMIT={text!r} is not a rate such as 60/minute or 10/second"
        ) from exc


class WriteLimiter:
    """Counts writes per key. Created on startup, closed on shutdown; safe to share between
    requests (Redis does the counting atomically)."""

    def __init__(self, redis_url: str, rate: RateLimitItem) -> None:
        self.rate = rate
        self._pool = aioredis.ConnectionPool.from_url(redis_url)
        storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            wrap_exceptions=True,
            connection_pool=self._pool,  # type: ignore[arg-type]
        )
        self._window = MovingWindowRateLimiter(storage)

    async def hit(self, key: str) -> None:
        """Count one write by `key`; TooManyRequests once the rate is used up."""
        try:
            if await self._window.hit(self.rate, key):
                return
            stats = await self._window.get_window_stats(self.rate, key)
        except StorageError as exc:
            log.warning("write rate limit not checked, Redis unavailable: %s", exc)
            return
        retry_after_s = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            f"too many writes: at most {self.rate} per caller; retry in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )

    async def aclose(self) -> None:
        await self._pool.disconnect()


def caller_key(request: Request) -> str:
    """Who is writing, without storing a token: its hash, a session's user, or an address."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    user = request.session.get(SESSION_USER) if "session" in request.scope else None
    if isinstance(user, int):
        return f"user:{user}"
    return "address:" + (request.client.host if request.client else "unknown")


async def limit_writes(request: Request) -> None:
    """FastAPI dependency for write routes."""
    limiter: WriteLimiter = request.app.state.write_limiter
    await limiter.hit(caller_key(request))


async def _too_many(_request: Request, exc: Exception) -> JSONResponse:
    retry_after_s = exc.retry_after_s if isinstance(exc, TooManyRequests) else 60
    return JSONResponse(
        {"error": str(exc)}, status_code=429, headers={"Retry-After": str(retry_after_s)}
    )


def install_write_limiter(app: FastAPI, redis_url: str, rate_text: str) -> None:
    """Open a WriteLimiter with the app's lifespan (as `app.state.write_limiter`) and
    answer TooManyRequests as 429 with Retry-After."""
    rate = parse_rate(rate_text)
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        limiter = WriteLimiter(redis_url, rate)
        a.state.write_limiter = limiter
        try:
            async with inner(a) as state:
                yield state
        finally:
            await limiter.aclose()

    app.router.lifespan_context = lifespan
    app.add_exception_handler(TooManyRequests, _too_many)
