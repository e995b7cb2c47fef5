"""Planning that a killed worker left half done is taken back by the next worker to start.

A worker killed while planning (`kill -9`, an OOM kill, a lost node) leaves nothing behind
in the database: planning is one transaction, which PostgreSQL rolls back with the dead
connection, so the event is still `received`. In Redis, though, arq keeps the planning
message marked in progress for its whole timeout (300 s and more), whether or not the
worker that took it still lives; until then neither a redelivery nor the reconciler can
have the event planned, since both enqueue it under the same job id (`queue.enqueue_plan`).
The bisection pass has one fixed job id too (`queue.kick_bisections`): its stale mark would
make every kick a no-op, and stall bisections, for as long.
"""

from __future__ import annotations

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from ..queue import BISECTIONS_JOB_ID

# The arq job ids of planning messages (`queue.enqueue_plan`): "plan-<event id>".
PLAN_JOB_PREFIX = "plan-"


async def take_back_plans(redis: ArqRedis) -> int:
    """Clear every planning message's in-progress mark, so that this (starting) worker plans
    those events now; returns how many marks it cleared.

    Safe even when another worker is alive and planning one of them: planning is idempotent
    (the event moves from `received` to `planned` once, under its row lock, in the
    transaction that writes its runs), so at worst an event's workflow files are read twice.
    """
    pattern = f"{in_progress_key_prefix}{PLAN_JOB_PREFIX}*"
    keys = [key async for key in redis.scan_iter(match=pattern)]
    return int(await redis.delete(*keys)) if keys else 0


async def take_back_bisections(redis: ArqRedis) -> bool:
    """Clear the bisection pass's in-progress mark; whether there was one. Safe beside a
    live pass: each bisection advances under its repository's lock and its row lock."""
    return bool(await redis.delete(f"{in_progress_key_prefix}{BISECTIONS_JOB_ID}"))
