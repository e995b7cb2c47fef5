"""Scheduled runs (`on.schedule`): each cron fires at its times, on the default branch,
exactly once per slot — across server restarts and however many workers watch.

What is scheduled is read, as on GitHub, from the default branch: each push to it that
labci plans replaces the repository's schedules with those of the workflow files at that
commit, and a scheduled run runs that commit (the newest labci has seen).

Firing: a worker's loop looks for schedules whose next slot has come. For each, it stores
an event whose delivery id names the schedule and the slot; the id is unique, so a second
worker (or the same one after a restart) firing the same slot stores nothing and plans
nothing. Slots missed while no worker ran are not made up one by one: the newest missed
slot fires once, as cron does after a machine was off (after more than LOOK_BACK_S away,
the first missed slot, so that it still fires once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import Workflow
from labci_spec.cron import parse_cron
from labci_spec.errors import CronError

from ..context import ServerContext
from ..db.models import Event, Schedule
from ..db.queries import schedules as schedule_queries
from ..queue import enqueue_plan

log = logging.getLogger(__name__)

# How often a worker looks for slots that have come: a scheduled run starts at most this
# late. Cron's own resolution is a minute.
CHECK_INTERVAL_S = 15.0
# The newest missed slot is looked for this far back at most (a week and a day: a weekly
# cron's); after a longer stop, the slot it was waiting for fires instead.
LOOK_BACK_S = 8 * 24 * 3600.0


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def next_slot(cron: str, after: float) -> float | None:
    """The first slot of `cron` strictly after `after` (None: it never fires)."""
    try:
        return parse_cron(cron).next_after(_at(after)).timestamp()
    except CronError:
        return None


def newest_slot(cron: str, since: float, now: float) -> float | None:
    """The newest slot of `cron` in (`since`, `now`], or None."""
    start = max(since, now - LOOK_BACK_S)
    found = None
    slot = next_slot(cron, start)
    while slot is not None and slot <= now:
        found = slot
        slot = next_slot(cron, slot)
    return found


async def learn_schedules(
    session: AsyncSession,
    *,
    repository_id: int,
    branch: str,
    commit_sha: str,
    seen_at: float,
    workflows: Mapping[str, Workflow],
) -> None:
    """The repository's schedules become those of `workflows` (every workflow file that
    loaded at the default branch's commit `commit_sha`, seen at `seen_at`). A slot already
    due keeps its time; a new cron waits for its first slot from now."""
    wanted = {
        (path, entry.cron)
        for path, workflow in workflows.items()
        for entry in workflow.on.schedule or []
    }
    existing = await schedule_queries.schedules_of(session, repository_id, for_update=True)
    if any(row.updated_at > seen_at for row in existing):
        return  # a newer push was planned first: its files are the ones that count
    kept = set()
    for row in existing:
        if (row.workflow_path, row.cron) not in wanted:
            await session.delete(row)
            continue
        kept.add((row.workflow_path, row.cron))
        row.branch, row.commit_sha, row.updated_at = branch, commit_sha, seen_at
        session.add(row)
    now = time.time()
    for path, cron in sorted(wanted - kept):
        first = next_slot(cron, now)
        if first is None:
            continue  # validation refuses such a cron; nothing to fire
        session.add(
            Schedule(
                repository_id=repository_id,
                workflow_path=path,
                cron=cron,
                branch=branch,
                commit_sha=commit_sha,
                next_at=first,
                updated_at=seen_at,
            )
        )


async def fire_due_schedules(sc: ServerContext, now: float | None = None) -> list[int]:
    """Store and plan an event for each schedule whose slot has come; the new events' ids."""
    now = time.time() if now is None else now
    async with sc.sessions() as session:
        due = await schedule_queries.due_schedules(session, now)
    fired: list[int] = []
    for schedule, provider in due:
        # The slot it was waiting for, or the newest one since (found within LOOK_BACK_S).
        slot = newest_slot(schedule.cron, schedule.next_at - 1, now) or schedule.next_at
        following = next_slot(schedule.cron, now)
        if following is None:
            continue
        event = Event(
            delivery_id=f"schedule:{schedule.id}:{int(slot)}",
            provider=provider,
            kind="schedule",
            workflow_path=schedule.workflow_path,
            repository_id=schedule.repository_id,
            commit_sha=schedule.commit_sha,
            branch=schedule.branch,
            sender="schedule",
            title=f"schedule {schedule.cron} at {_at(slot):%Y-%m-%d %H:%M} UTC",
        )
        async with sc.sessions() as session, session.begin():
            event_id = await schedule_queries.store_slot_event(session, event)
            await schedule_queries.advance(
                session, schedule.id or 0, fired_at=slot, next_at=following
            )
        if event_id is not None:
            log.info(
                "schedule %r of %s fired for %s", schedule.cron, schedule.workflow_path, _at(slot)
            )
            fired.append(event_id)
    for event_id in fired:
        await enqueue_plan(sc.redis, event_id)
    return fired
