"""What an operator watches, read from the database at scrape time (`/metrics`, `/readyz`).

These are database-wide figures: every server replica answers the same, so dashboards take
`max()` of them across instances, never `sum()`. Each is one aggregate query.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import TERMINAL_JOB_STATES, Event, Job, OutboxMessage, Runner

# Seconds; a job waits from its planning to its start, and runs from its start to its end.
DURATION_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0)


@dataclass
class DurationHistogram:
    """Cumulative bucket counts (as Prometheus wants them), their sum and count."""

    buckets: list[tuple[float, int]]
    total_s: float
    count: int


@dataclass
class OperationsSnapshot:
    pending_by_label: dict[str, int] = field(default_factory=dict)
    queued_by_runner: dict[str, int] = field(default_factory=dict)
    running_by_runner: dict[str, int] = field(default_factory=dict)
    outbox_by_status: dict[tuple[str, str], int] = field(default_factory=dict)
    events_by_state: dict[str, int] = field(default_factory=dict)
    runners_online: int = 0
    runners_registered: int = 0
    job_wait: dict[str, DurationHistogram] = field(default_factory=dict)
    job_run: dict[str, DurationHistogram] = field(default_factory=dict)


async def ping_database(session: AsyncSession) -> None:
    await session.exec(text("SELECT 1"))  # type: ignore[call-overload]


async def operations_snapshot(session: AsyncSession, *, online_since: float) -> OperationsSnapshot:
    snap = OperationsSnapshot()
    labels: Counter[str] = Counter()
    for runs_on in (await session.exec(select(Job.runs_on).where(Job.state == "pending"))).all():
        labels.update(set(runs_on or []))
    snap.pending_by_label = dict(labels)
    by_runner = (
        select(Runner.name, Job.state, func.count())
        .join(Runner, col(Job.runner_id) == col(Runner.id))
        .where(col(Job.state).in_(("queued", "running")))
        .group_by(Runner.name, Job.state)
    )
    for name, state, count in (await session.exec(by_runner)).all():
        target = snap.queued_by_runner if state == "queued" else snap.running_by_runner
        target[name] = target.get(name, 0) + int(count)
    outbox = select(OutboxMessage.kind, OutboxMessage.status, func.count()).group_by(
        OutboxMessage.kind, OutboxMessage.status
    )
    snap.outbox_by_status = {
        (kind, status): int(n) for kind, status, n in (await session.exec(outbox)).all()
    }
    events = select(Event.state, func.count()).group_by(Event.state)
    snap.events_by_state = {state: int(n) for state, n in (await session.exec(events)).all()}
    live = col(Runner.revoked_at).is_(None)
    seen = and_(live, col(Runner.last_heartbeat_at) >= online_since)
    counts = select(func.count(), func.sum(case((seen, 1), else_=0))).where(live)
    registered, online = (await session.exec(counts)).one()
    snap.runners_registered, snap.runners_online = int(registered or 0), int(online or 0)
    snap.job_wait = await _durations(session, col(Job.created_at), col(Job.started_at))
    snap.job_run = await _durations(session, col(Job.started_at), col(Job.finished_at))
    return snap


async def _durations(
    session: AsyncSession, start: object, end: object
) -> dict[str, DurationHistogram]:
    """Per terminal state, the histogram of `end - start` over the jobs that have both."""
    seconds = end - start  # type: ignore[operator]
    columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS_S]
    stmt = (
        select(Job.state, func.count(), func.sum(seconds), *columns)  # type: ignore[call-overload]
        .where(col(Job.state).in_(TERMINAL_JOB_STATES))
        .where(start.isnot(None), end.isnot(None))  # type: ignore[attr-defined]
        .group_by(Job.state)
    )
    found = {}
    for state, count, total, *below in (await session.exec(stmt)).all():
        buckets = [(b, int(n or 0)) for b, n in zip(DURATION_BUCKETS_S, below, strict=True)]
        found[state] = DurationHistogram(
            [*buckets, (float("inf"), int(count))], float(total or 0), int(count)
        )
    return found
