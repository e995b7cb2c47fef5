"""The worker's side of a bisection: list its commits, measure, narrow, conclude.

`advance_bisections` is one pass over every bisection still under way: the server worker
runs it whenever the reconciler (every `LABCI_REAPER_INTERVAL_S`) finds one, so a result
that moves a bisection on is acted upon within that interval, whichever process stored it;
bisection runs take minutes, and the passes are cheap. For each, in order:

1. `listing`: the forge lists the first-parent commits from the good commit to the bad
   one (outside any transaction). Unknown (a force push, a merge's second parent, more than
   `MAX_LISTED_COMMITS`) → `failed`, saying so; the bad commit right after the good one →
   `adjacent`: the change point itself names the commit, nothing to search, nothing shown.
2. `searching`: in one transaction with the bisection's row locked, the next commit to
   look at (`search.next_probe`) is probed: measured → placed at the old or new level and
   the range narrowed, then the next; being measured → wait; cannot be measured → skipped;
   not asked for → a bisection run is started, if the budget allows, and the pass moves on.
3. Nothing left between the two ends → `found` (the effect and the comment, `report`) or,
   when only skipped commits are left, `exhausted`, naming the commits the change is among.

**Budget.** A repository may start `bisect_runs_per_day` bisection runs in any 24 hours
(`labci repos bisect-budget`), else the server's `LABCI_BISECT_RUNS_PER_DAY`; 0 turns
bisection off. A bisection that needs a run beyond it waits in `budget`, saying so, and
resumes by itself once the window has room (or the budget is raised): its work so far is
kept, and stopping it for good would only waste it. Runs are counted under the repository's
row lock, so concurrent passes cannot overspend.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import Bisection, Repository
from ..db.queries.bisections import (
    ACTIVE_STATES,
    active_bisections,
    bisection_runs_since,
    get_bisection,
    lock_repository,
    set_bisection_budget,
)
from ..db.queries.repositories import get_repository
from ..errors import BadRequest, ForgeRejected, ForgeUnavailable, NotFound, PlanError
from ..forge.base import MAX_LISTED_COMMITS
from ..forge.outbox import commit_comment_marker, enqueue_commit_comment
from ..queue import enqueue_plan, kick_bisections, kick_outbox
from . import probes, report
from .search import narrowed, next_probe, place

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0


def runs_per_day(repo: Repository, server_default: int) -> int:
    """The repository's daily budget of bisection runs (0: bisection is off)."""
    return server_default if repo.bisect_runs_per_day is None else repo.bisect_runs_per_day


async def set_budget(
    sessions: async_sessionmaker[AsyncSession], repo: Repository, runs_per_day: int | None
) -> None:
    """`labci repos bisect-budget`: the repository's daily budget (None: the server's).
    Bisections paused for the budget resume at the next pass when it has room."""
    if runs_per_day is not None and runs_per_day < 0:
        raise BadRequest(f"a budget is a number of runs, 0 or more, not {runs_per_day}")
    async with sessions() as session, session.begin():
        if not await set_bisection_budget(
            session, repository_id=repo.id or 0, runs_per_day=runs_per_day
        ):
            raise NotFound(f"repository {repo.full_name} is gone")


async def advance_bisections(sc: ServerContext) -> int:
    """One pass over the bisections under way; returns how many runs it started."""
    async with sc.sessions() as session:
        ids = await active_bisections(session)
    started: list[int] = []
    for bisection_id in ids:
        try:
            started += await advance(sc, bisection_id)
        except ForgeUnavailable as exc:
            log.info("bisection %s waits for the forge: %s", bisection_id, exc)
    for event_id in started:
        await enqueue_plan(sc.redis, event_id)
    return len(started)


async def wake_bisections(sc: ServerContext, *, repository_id: int | None = None) -> bool:
    """Queue a pass (`advance_bisections`) when a bisection is under way (of the repository);
    whether one is."""
    async with sc.sessions() as session:
        waiting = await active_bisections(session, repository_id=repository_id)
    if waiting:
        await kick_bisections(sc.redis)
    return bool(waiting)


async def advance(sc: ServerContext, bisection_id: int) -> list[int]:
    """Take one bisection as far as it goes now; returns the events of the runs it started."""
    async with sc.sessions() as session:
        found = await get_bisection(session, bisection_id)
        repo = await get_repository(session, found.repository_id) if found else None
    if found is None or repo is None or found.state not in ACTIVE_STATES:
        return []
    budget = runs_per_day(repo, sc.settings.bisect_runs_per_day)
    if found.candidates is None:
        if budget == 0:
            async with sc.sessions() as session, session.begin():
                await _pause(session, bisection_id, _budget_note(0))
            return []
        await _list_commits(sc, repo, found)
    async with sc.sessions() as session, session.begin():
        await lock_repository(session, repo.id or 0)
        bisection = await get_bisection(session, bisection_id, for_update=True)
        if bisection is None or bisection.state not in ("searching", "budget"):
            return []
        started, comment = await _search(session, bisection, repo, budget)
        if comment:
            await _queue_comment(sc, session, bisection)
        bisection.updated_at = time.time()
        session.add(bisection)
    if comment:
        await kick_outbox(sc.redis)
    return started


async def _pause(session: AsyncSession, bisection_id: int, note: str) -> None:
    bisection = await get_bisection(session, bisection_id, for_update=True)
    if bisection is not None and bisection.state in ACTIVE_STATES:
        bisection.state, bisection.note, bisection.updated_at = "budget", note, time.time()
        session.add(bisection)


async def _list_commits(sc: ServerContext, repo: Repository, bisection: Bisection) -> None:
    """The candidates from the forge, or the reason there are none (`failed`, `adjacent`)."""
    forge = sc.forges[repo.provider]
    good, bad = bisection.good_sha, bisection.bad_sha
    try:
        commits = await forge.commits_between(repo, good, bad)
    except (ForgeRejected, PlanError) as exc:  # refused, or git failed on the repository
        commits, why = None, f"the commits between could not be listed: {exc}"
    else:
        why = (
            f"{bad[:7]} is not {good[:7]}'s descendant on {bisection.branch}'s first-parent "
            f"line (a force push, or a merge), or more than {MAX_LISTED_COMMITS} commits "
            "are between them"
        )
    async with sc.sessions() as session, session.begin():
        row = await get_bisection(session, bisection.id or 0, for_update=True)
        if row is None or row.candidates is not None or row.state not in ACTIVE_STATES:
            return
        now = time.time()
        if commits is None:
            row.state, row.note, row.finished_at = "failed", why, now
        elif len(commits) <= 1:
            row.candidates, row.state, row.finished_at = commits, "adjacent", now
            row.note = f"{bad[:7]} directly follows {good[:7]}: it is the change"
        else:
            row.candidates, row.low, row.high = commits, -1, len(commits) - 1
            row.state, row.note = "searching", None
        row.updated_at = now
        session.add(row)


async def _search(
    session: AsyncSession, bisection: Bisection, repo: Repository, budget: int
) -> tuple[list[int], bool]:
    """Probe and narrow until a run is needed or the search ends; (the events of the runs
    started, whether it found the commit). Part of the caller's transaction."""
    candidates = bisection.candidates or []
    if not candidates:  # a budget pause before the listing: list first
        bisection.state = "listing"
        return [], False
    while True:
        skipped = {i for i, sha in enumerate(candidates) if _was_skipped(bisection, sha)}
        target = next_probe(bisection.low, bisection.high, skipped)
        if target is None:
            return [], await _conclude(session, bisection)
        sha = candidates[target]
        found = await probes.probe(session, bisection, sha)
        if isinstance(found, probes.Measured):
            level = place(
                found.mean, level_before=bisection.level_before, level_after=bisection.level_after
            )
            bisection.low, bisection.high = narrowed(bisection.low, bisection.high, target, level)
            _record(bisection, sha, level, found.run_id, found=found)
        elif isinstance(found, probes.Unmeasurable):
            _record(bisection, sha, "skipped", found.run_id, reason=found.reason)
        elif isinstance(found, probes.Waiting):
            bisection.state, bisection.probing, bisection.note = "searching", sha, None
            return [], False
        else:
            used = await bisection_runs_since(
                session, repository_id=bisection.repository_id, since=time.time() - DAY_S
            )
            if used >= budget:
                bisection.state, bisection.note = "budget", _budget_note(budget)
                return [], False
            event_id = await probes.ask(session, bisection, sha, repo.provider)
            bisection.state, bisection.probing, bisection.note = "searching", sha, None
            return ([event_id] if event_id is not None else []), False


def _was_skipped(bisection: Bisection, sha: str) -> bool:
    return any(s["sha"] == sha and s["level"] == "skipped" for s in bisection.steps)


def _record(
    bisection: Bisection,
    sha: str,
    level: str,
    run_id: int | None,
    *,
    found: probes.Measured | None = None,
    reason: str | None = None,
) -> None:
    step = {
        "sha": sha,
        "level": level,
        "run_id": run_id,
        "mean": found.mean if found else None,
        "n": len(found.values) if found else 0,
        "reason": reason,
        "bisection_run": found.bisection_run if found else False,
    }
    # A new list: the JSON column notices assignment, not changes in place.
    bisection.steps = [*bisection.steps, step]
    bisection.probing = None


async def _conclude(session: AsyncSession, bisection: Bisection) -> bool:
    """`found` with its effect when one commit is left, else `exhausted`; whether found."""
    candidates = bisection.candidates or []
    low, high = bisection.low, bisection.high
    bisection.probing, bisection.finished_at = None, time.time()
    if high != low + 1:
        among = candidates[low + 1 : high + 1]
        unmeasured = [sha[:7] for sha in among[:-1]]
        bisection.state = "exhausted"
        bisection.note = (
            f"the change is one of {', '.join(sha[:7] for sha in among)}: "
            f"{', '.join(unmeasured)} could not be measured"
        )
        return False
    result_sha = candidates[high]
    parent_sha = candidates[low] if low >= 0 else bisection.good_sha
    found = await probes.probe(session, bisection, result_sha)
    parent = await probes.probe(session, bisection, parent_sha)
    if not (isinstance(found, probes.Measured) and isinstance(parent, probes.Measured)):
        bisection.state = "failed"
        bisection.note = f"the results at {parent_sha[:7]} and {result_sha[:7]} are gone"
        return False
    bisection.state, bisection.note = "found", None
    bisection.result_sha, bisection.result_run_id = result_sha, found.run_id
    bisection.parent_sha, bisection.parent_run_id = parent_sha, parent.run_id
    bisection.effect = report.effect_of(bisection, parent, found)
    return True


async def _queue_comment(sc: ServerContext, session: AsyncSession, bisection: Bisection) -> None:
    name = report.comment_name(bisection.id or 0)
    body = report.comment_body(bisection, marker=commit_comment_marker(name), run_url=sc.run_url)
    await enqueue_commit_comment(
        session,
        repository_id=bisection.repository_id,
        commit_sha=bisection.result_sha or "",
        name=name,
        body=body,
    )


def _budget_note(budget: int) -> str:
    if budget == 0:
        return "bisection is off for this repository (a budget of 0 runs a day)"
    return (
        f"paused: the repository's {budget} bisection runs of the last 24 hours are used up; "
        "it resumes when the budget has room"
    )
