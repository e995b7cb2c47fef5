"""Pacing forge writes per credential, across every worker process (via Redis).

GitHub's secondary rate limits punish bursts of content-creating requests (about 80 a
minute, and concurrent ones): for one credential, labci keeps at most one mutation in
flight and leaves at least `min_interval_s` between the end of one and the start of the
next. When GitHub says a credential is rate limited, the credential is paused: no request
with it until the pause ends, whichever message it is for.

The slot is a Redis lock with a lease, so a worker that dies holding it only delays the
others until the lease ends; times come from Redis, so workers on machines with different
clocks agree. Only a slot that was used for a request moves the interval on: a worker that
takes the slot and finds its message already claimed by another worker costs nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from ..db.models import Repository

# Releases the lock only if it still holds our token (a lease that ran out and was taken by
# another worker must not be released by us); records the end of a request that was made,
# and a pause, never shortening a longer pause already set.
_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '1' then
  redis.call('set', KEYS[2], ARGV[3], 'PX', ARGV[4])
end
local pause_ms = tonumber(ARGV[5])
if pause_ms > 0 and redis.call('pttl', KEYS[3]) < pause_ms then
  redis.call('set', KEYS[3], '1', 'PX', pause_ms)
end
return redis.call('del', KEYS[1])
"""


class CredentialPaused(Exception):  # noqa: N818 - a state, not an error
    """The forge asked labci to stop using this credential for `remaining_s` more seconds."""

    def __init__(self, key: str, remaining_s: float) -> None:
        super().__init__(f"{key} is rate limited for {remaining_s:.1f} s more")
        self.key = key
        self.remaining_s = remaining_s


def credential_key(repo: Repository) -> str | None:
    """Which credential a forge write for `repo` spends; None for forges without limits."""
    if repo.provider != "github":
        return None
    if repo.installation_id is not None:
        return f"github:installation:{repo.installation_id}"
    return "github:token"


class Slot:
    """One credential's turn: `ready()` before the request, `pause()` after a rate limit."""

    def __init__(self, pacer: Pacer | None, key: str | None) -> None:
        self._pacer = pacer
        self._key = key
        self.used = False
        self.pause_s = 0.0

    async def ready(self) -> None:
        """Wait until the credential's minimum interval since its last request has passed."""
        self.used = True
        if self._pacer is not None and self._key is not None:
            await self._pacer._wait_interval(self._key)

    def pause(self, seconds: float) -> None:
        self.pause_s = max(self.pause_s, seconds)


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
    async def slot(self, key: str | None) -> AsyncIterator[Slot]:
        """Hold the credential's one mutation slot; raises `CredentialPaused` while the
        forge's rate limit for it lasts."""
        slot = Slot(self, key)
        if key is None:
            yield slot
            return
        lock, last, paused = self._keys(key)
        token = uuid.uuid4().hex
        # Polling: the holder may be another process, which no asyncio.Event can see.
        while not await self._redis.set(lock, token, nx=True, px=self._lease_ms):  # noqa: ASYNC110
            await asyncio.sleep(self._poll_s)
        try:
            # Pauses are only set by a slot's holder, so one check under the lock suffices.
            remaining_ms = await self._redis.pttl(paused)
            if remaining_ms > 0:
                raise CredentialPaused(key, remaining_ms / 1000)
            yield slot
        finally:
            keep_ms = max(1000, int(self._interval * 1000) * 2)
            await self._redis.eval(  # type: ignore[misc]
                _RELEASE,
                3,
                lock,
                last,
                paused,
                token,
                "1" if slot.used else "0",
                repr(await self._now()),
                keep_ms,
                int(slot.pause_s * 1000),
            )

    async def _wait_interval(self, key: str) -> None:
        previous = await self._redis.get(self._keys(key)[1])
        if previous is not None:
            wait = float(previous) + self._interval - await self._now()
            if wait > 0:
                await asyncio.sleep(wait)

    @staticmethod
    def _keys(key: str) -> tuple[str, str, str]:
        base = f"labci:pace:{key}"
        return f"{base}:lock", f"{base}:last", f"{base}:paused"

    async def _now(self) -> float:
        seconds, micros = await self._redis.time()
        return float(seconds) + micros / 1e6


@asynccontextmanager
async def unpaced() -> AsyncIterator[Slot]:
    """A slot without pacing, for forges that have no limits to respect."""
    yield Slot(None, None)
