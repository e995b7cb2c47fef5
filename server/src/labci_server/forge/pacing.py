"""Pacing forge writes per credential, across every worker process (via Redis).

GitHub's secondary rate limits punish bursts of content-creating requests (about 80 a
minute, and concurrent ones): for one credential, labci keeps at most one mutation in
flight and leaves at least `min_interval_s` between the end of one and the start of the
next. The slot is a Redis lock with a lease, so a worker that dies holding it only delays
the others until the lease ends; times come from Redis, so workers on machines with
different clocks agree.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from ..db.models import Repository

# Deletes the lock only if it still holds our token: a lease that ran out and was taken
# by another worker must not be released by us.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return redis.call('del', KEYS[1])
end
return 0
"""


def credential_key(repo: Repository) -> str | None:
    """Which credential a forge write for `repo` spends; None for forges without limits."""
    if repo.provider != "github":
        return None
    if repo.installation_id is not None:
        return f"github:installation:{repo.installation_id}"
    return "github:token"


class Pacer:
    def __init__(
        self,
        redis: Redis,
        *,
        min_interval_s: float,
        lease_s: float = 120.0,
        poll_s: float = 0.05,
    ) -> None:
        self._redis = redis
        self._interval = min_interval_s
        self._lease_ms = int(lease_s * 1000)
        self._poll_s = poll_s

    @asynccontextmanager
    async def slot(self, key: str | None) -> AsyncIterator[None]:
        """Hold the credential's one mutation slot, at least `min_interval_s` after the last."""
        if key is None:
            yield
            return
        lock, last = f"labci:pace:{key}:lock", f"labci:pace:{key}:last"
        token = uuid.uuid4().hex
        # Polling: the holder may be another process, which no asyncio.Event can see.
        while not await self._redis.set(lock, token, nx=True, px=self._lease_ms):  # noqa: ASYNC110
            await asyncio.sleep(self._poll_s)
        try:
            previous = await self._redis.get(last)
            if previous is not None:
                wait = float(previous) + self._interval - await self._now()
                if wait > 0:
                    await asyncio.sleep(wait)
            yield
        finally:
            keep_ms = max(1000, int(self._interval * 1000) * 2)
            await self._redis.eval(  # type: ignore[misc]
                _RELEASE, 2, lock, last, token, repr(await self._now()), keep_ms
            )

    async def _now(self) -> float:
        seconds, micros = await self._redis.time()
        return float(seconds) + micros / 1e6
