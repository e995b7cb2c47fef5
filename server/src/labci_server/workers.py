"""The server's arq worker (`labci worker`): planning, scheduling, outbox delivery, repair.

Worker functions are thin: load arguments, call a stage function, return.
Besides queued work, loops run while the worker lives: scheduling and outbox delivery (on
kicks, coalesced, and at an interval), the reconciler (every `reaper_interval_s`), its
SQL-only lease repairs on their own (the same interval, so that they go on while Redis is
away) and scheduled runs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from arq import Retry, func
from arq.connections import ArqRedis
from redis.asyncio import Redis

from .bisection.advance import advance_bisections
from .context import ServerContext
from .db.engine import make_engine, make_sessionmaker
from .db.queries.events import mark_event
from .errors import ForgeRejected, ForgeUnavailable, PlanError
from .forge.facts import refresh_facts
from .forge.outbox import deliver_due
from .forge.registry import build_forges
from .planning.orphans import take_back_bisections, take_back_plans
from .planning.planner import load_event, plan_event
from .queue import (
    OUTBOX_WAKE_KEY,
    SCHEDULE_WAKE_KEY,
    SERVER_QUEUE,
    connect,
    deserialize,
    kick_outbox,
    kick_scheduler,
    serialize,
    wait_for_kick,
)
from .redis_outage import REDIS_DOWN, Outage, OutlastingWorker, with_outage
from .scheduling.cron_runs import CHECK_INTERVAL_S, fire_due_schedules
from .scheduling.reconciler import reconcile, repair_leases
from .scheduling.scheduler import schedule_jobs
from .settings import Settings

log = logging.getLogger(__name__)

OUTBOX_INTERVAL_S = 1.0
# Each worker writes its health record (arq's) this often; arq lets it expire a second after
# the next write was due, so `labci worker --check` finds it only while the worker works.
HEALTH_INTERVAL_S = 10
CHECK_TIMEOUT_S = 3.0


def health_key() -> str:
    """This host's worker's health record: one per container or pod, so that each replica
    is checked on its own."""
    return f"{SERVER_QUEUE}:health-check:{socket.gethostname()}"


async def check_worker(settings: Settings) -> tuple[bool, str]:
    """Whether this host's worker wrote its health record lately, and what to print.

    With Redis away the record cannot be read, and the worker is waiting for Redis as it
    should (`redis_outage`): the check passes, saying so, since a restart would not help
    and would only lose the work the worker is holding on to."""
    url = settings.redis_url or ""
    # A plain client with short timeouts: a probe must answer within its own timeout,
    # where arq's pool would retry its connection for seconds.
    redis = Redis.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S
    )
    try:
        record = await redis.get(health_key())
    except REDIS_DOWN as exc:
        where = Outage(url).where
        return True, f"Redis at {where} unreachable ({exc}): the worker waits for it"
    finally:
        await redis.aclose()
    if record is None:
        return False, f"no fresh health record at {health_key()}: no worker is working here"
    return True, f"worker alive: {record.decode(errors='replace')}"


class SchedulingPasses:
    """This worker's scheduling passes, one at a time: the loop's, and the one a plan runs
    itself when no pass is under way here. A plan that finds a pass under way kicks the
    loop instead (that pass may have read the queue before the plan's jobs were in it), so
    a burst of plans costs one more pass, not one each. Running the pass in the plan's own
    task saves the hop through Redis, and the plan's statuses go to the outbox after it,
    not while it runs: both are on the way from webhook to first step."""

    def __init__(self, sc: ServerContext) -> None:
        self.sc = sc
        self._running = asyncio.Lock()

    async def run(self) -> int:
        async with self._running:
            return await schedule_jobs(self.sc)

    async def now_or_kick(self) -> None:
        if self._running.locked():
            await kick_scheduler(self.sc.redis)
        else:
            await self.run()


async def on_kicks(
    redis: ArqRedis,
    wake_key: str,
    action: Callable[[], Awaitable[Any]],
    *,
    interval_s: float,
    name: str,
) -> None:
    """Run `action` once per kick on `wake_key` (queue.py: kicks coalesce into one mark),
    else every `interval_s` as a safety net, one pass at a time, for as long as the worker
    lives. Kicks during a pass cost one more pass, never one each."""
    while True:
        try:
            await wait_for_kick(redis, wake_key, timeout_s=interval_s)
            await action()
        except REDIS_DOWN as exc:  # rare: the worker's pools wait for Redis (redis_outage.py)
            log.warning("%s pass stopped: Redis unreachable (%s)", name, exc)
            await asyncio.sleep(1.0)
        except Exception:  # noqa: BLE001 — a failed pass is logged; the next one retries
            log.exception("%s pass failed", name)
            await asyncio.sleep(1.0)


async def scheduler_loop(passes: SchedulingPasses) -> None:
    """Scheduling passes, each woken by a kick (queue.kick_scheduler: a job pending, a
    slot freed, a runner joined), else every reaper interval as a safety net: 200 idle
    runners heartbeating cannot queue up passes faster than they run."""
    await on_kicks(
        passes.sc.redis,
        SCHEDULE_WAKE_KEY,
        passes.run,
        interval_s=passes.sc.settings.reaper_interval_s,
        name="scheduling",
    )


async def outbox_loop(sc: ServerContext, *, interval_s: float = OUTBOX_INTERVAL_S) -> None:
    """Outbox passes, each woken by a kick (queue.kick_outbox: statuses stored by a plan,
    a finished job, a cancel), else every `interval_s` for retries coming due.

    One loop per worker rather than an arq job per kick: a pass walks every due message at
    the pacing interval, often for seconds, so passes queued per kick each walked the same
    list again and, under load, held all of the worker's job slots while plans waited."""
    await on_kicks(
        sc.redis,
        OUTBOX_WAKE_KEY,
        lambda: deliver_due(sc.sessions, sc.forges, sc.outbox_policy, sc.pacer),
        interval_s=interval_s,
        name="outbox",
    )


async def plan_event_task(ctx: dict[str, Any], event_id: int) -> int:
    sc: ServerContext = ctx["labci"]
    try:
        loaded = await load_event(sc, event_id)
        if loaded is None:
            return 0
        # Clone URL, visibility and installation come from the forge's API, never a delivery.
        if await refresh_facts(sc, loaded[1]):
            loaded = await load_event(sc, event_id)  # with the facts just stored
        run_ids = await plan_event(sc, event_id, loaded=loaded) if loaded else []
    except ForgeUnavailable as exc:
        raise Retry(defer=exc.retry_after_s or 2 * ctx["job_try"]) from exc
    except (ForgeRejected, PlanError) as exc:
        log.error("event %s cannot be planned: %s", event_id, exc)
        async with sc.sessions() as session, session.begin():
            await mark_event(session, event_id, from_state="received", to_state="failed")
        return 0
    if run_ids:
        try:
            await ctx["passes"].now_or_kick()
        except Exception:  # noqa: BLE001 — the plan stands; the loop's next pass places it
            log.exception("scheduling pass after planning event %s failed", event_id)
            await kick_scheduler(sc.redis)
        await kick_outbox(sc.redis)
    return len(run_ids)


async def schedule_jobs_task(ctx: dict[str, Any]) -> int:
    """A scheduling request queued by an older server: now a kick of the scheduler loop."""
    await kick_scheduler(ctx["labci"].redis)
    return 0


async def advance_bisections_task(ctx: dict[str, Any]) -> int:
    return await advance_bisections(ctx["labci"])


async def deliver_outbox_task(ctx: dict[str, Any]) -> int:
    """An outbox pass queued by an older server: now a kick of the outbox loop."""
    await kick_outbox(ctx["labci"].redis)
    return 0


async def _every(interval_s: float, action: Callable[[], Awaitable[Any]], name: str) -> None:
    while True:
        try:
            await action()
        except REDIS_DOWN as exc:  # rare: the worker's pools wait for Redis (redis_outage.py)
            log.warning("%s pass stopped: Redis unreachable (%s)", name, exc)
        except Exception:  # noqa: BLE001 — a failed pass is logged; the next one retries
            log.exception("%s pass failed", name)
        await asyncio.sleep(interval_s)


def make_worker(settings: Settings, *, burst: bool = False) -> OutlastingWorker:
    """The server's arq worker. It outlasts Redis outages: its pools wait for Redis, and
    the reconciler re-enqueues what Redis lost once it is back."""
    if settings.redis_url is None:
        raise PlanError("LABCI_REDIS_URL is not set")
    outage = Outage(settings.redis_url)  # one per process: each outage is logged once

    async def startup(ctx: dict[str, Any]) -> None:
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        http = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        redis = await connect(settings.redis_url or "", outage=outage)
        sc = ServerContext(settings, sessions, redis, build_forges(settings, sessions, http))
        ctx.update(labci=sc, engine=engine, http=http, labci_redis=redis)
        ctx["passes"] = passes = SchedulingPasses(sc)
        if taken := await take_back_plans(redis):
            log.warning("planning %d event(s) a stopped worker left in progress", taken)
        if await take_back_bisections(redis):  # the reconciler queues the next pass
            log.warning("took back the bisection pass a stopped worker left in progress")
        if not burst:
            ctx["loops"] = [
                asyncio.create_task(scheduler_loop(passes)),
                asyncio.create_task(
                    _every(CHECK_INTERVAL_S, lambda: fire_due_schedules(sc), "schedules")
                ),
                asyncio.create_task(
                    _every(settings.reaper_interval_s, lambda: reconcile(sc), "reconcile")
                ),
                asyncio.create_task(
                    _every(settings.reaper_interval_s, lambda: repair_leases(sc), "leases")
                ),
                asyncio.create_task(outbox_loop(sc)),
            ]

    async def shutdown(ctx: dict[str, Any]) -> None:
        for task in ctx.get("loops", []):
            task.cancel()
        await asyncio.gather(*ctx.get("loops", []), return_exceptions=True)
        await ctx["http"].aclose()
        await ctx["labci_redis"].aclose()
        await ctx["engine"].dispose()

    return OutlastingWorker(
        functions=[
            func(plan_event_task, name="plan_event", max_tries=20),
            func(schedule_jobs_task, name="schedule_jobs"),
            func(deliver_outbox_task, name="deliver_outbox"),
            func(advance_bisections_task, name="advance_bisections"),
        ],
        queue_name=SERVER_QUEUE,
        redis_settings=with_outage(settings.redis_url, outage),
        outage=outage,
        on_startup=startup,
        on_shutdown=shutdown,
        job_serializer=serialize,
        job_deserializer=deserialize,
        poll_delay=settings.poll_delay_s,
        max_jobs=20,
        keep_result=0,
        burst=burst,
        handle_signals=not burst,
        health_check_interval=HEALTH_INTERVAL_S,
        health_check_key=health_key(),
    )
