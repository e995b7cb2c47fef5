"""The long-lived clients a stage function needs, created once per process and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from .forge.base import Forge
from .forge.outbox import OutboxPolicy
from .forge.pacing import Pacer
from .settings import Settings


@dataclass
class ServerContext:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    forges: dict[str, Forge]

    @property
    def outbox_policy(self) -> OutboxPolicy:
        return OutboxPolicy(
            min_backoff_s=self.settings.outbox_min_backoff_s,
            max_backoff_s=self.settings.outbox_max_backoff_s,
            max_attempts=self.settings.outbox_max_attempts,
            rate_limit_wait_s=self.settings.outbox_rate_limit_wait_s,
        )

    @property
    def pacer(self) -> Pacer:
        return Pacer(self.redis, min_interval_s=self.settings.outbox_min_interval_s)

    def run_url(self, run_id: int | None) -> str:
        return f"{self.settings.public_url.rstrip('/')}/runs/{run_id}"
