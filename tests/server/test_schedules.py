"""Scheduled runs (issue 14, item 5): `on.schedule` read from the default branch, each slot
fired exactly once — by racing workers, and by a worker started again after slots were
missed — as a run of the default branch's newest commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from test_planning import push_event

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.models import Repository, Run
from labci_server.db.queries.runs import runs_for_commit
from labci_server.db.queries.schedules import schedules_of
from labci_server.planning.planner import plan_event
from labci_server.scheduling.cron_runs import fire_due_schedules
from labci_server.webhooks.ingest import store_event

NIGHTLY = """\
name: nightly
on:
  push: {branches: [main]}
  schedule:
    - cron: "*/5 * * * *"
    - cron: "0 3 * * MON"
jobs:
  bench: {runs-on: cpu, steps: [{run: "true"}]}
"""
PLAIN = """\
name: plain
on: push
jobs:
  unit: {runs-on: cpu, steps: [{run: "true"}]}
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


async def planned_push(sc, repo, sha: str, delivery: str, branch: str = "main") -> list[int]:
    event_id = await store_event(sc, push_event(repo.bare, sha, delivery, branch=branch)) or 0
    async with sc.sessions() as session, session.begin():
        # Its default branch, as `labci hook install` records it (GitHub's facts, for GitHub).
        stored = await session.get(Repository, 1)
        stored.default_branch = "main"
        session.add(stored)
    return await plan_event(sc, event_id)


async def test_a_schedule_fires_once_per_slot_on_the_default_branch(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/nightly.yml": NIGHTLY, ".labci/plain.yml": PLAIN})
    settings = test_settings(database_url, redis_url)
    async with server_context(settings) as sc:
        await planned_push(sc, repo, sha, "d-1")
        async with sc.sessions() as session:
            rows = await schedules_of(session, 1)
        assert sorted(r.cron for r in rows) == ["*/5 * * * *", "0 3 * * MON"]
        assert {(r.workflow_path, r.branch, r.commit_sha) for r in rows} == {
            (".labci/nightly.yml", "main", sha)
        }
        five = next(r for r in rows if r.cron == "*/5 * * * *")
        assert datetime.fromtimestamp(five.next_at, UTC).minute % 5 == 0
        # The slot comes; two workers look at once: one event, one run.
        now = five.next_at + 1
        fired = await asyncio.gather(fire_due_schedules(sc, now), fire_due_schedules(sc, now))
        assert sorted(len(f) for f in fired) == [0, 1]
        (event_id,) = fired[0] or fired[1]
        assert await fire_due_schedules(sc, now) == []  # the same slot again: nothing
        run_ids = await plan_event(sc, event_id)
        async with sc.sessions() as session:
            runs = [await session.get(Run, i) for i in run_ids]
    assert [(r.workflow_path, r.trigger, r.branch, r.commit_sha) for r in runs] == [
        (".labci/nightly.yml", "schedule", "main", sha)
    ]


async def test_a_restarted_worker_fires_the_newest_missed_slot_once(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/nightly.yml": NIGHTLY})
    settings = test_settings(database_url, redis_url)
    async with server_context(settings) as sc:
        await planned_push(sc, repo, sha, "d-1")
        async with sc.sessions() as session:
            five = next(r for r in await schedules_of(session, 1) if r.cron == "*/5 * * * *")
        first = five.next_at
    # The server is down for 17 minutes past the first slot: slots at +0, +5, +10, +15 pass.
    async with server_context(settings) as sc:
        (event_id,) = await fire_due_schedules(sc, first + 17 * 60)
        assert await fire_due_schedules(sc, first + 17 * 60 + 30) == []
        await plan_event(sc, event_id)
        async with sc.sessions() as session:
            five = next(r for r in await schedules_of(session, 1) if r.cron == "*/5 * * * *")
            (run,) = [r for r in await runs_for_commit(session, sha) if r.trigger == "schedule"]
    assert five.last_fired_at == first + 15 * 60  # the newest missed slot, once
    assert five.next_at == first + 20 * 60
    assert run.workflow_path == ".labci/nightly.yml"


async def test_schedules_follow_the_default_branch_only(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/nightly.yml": NIGHTLY})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        await planned_push(sc, repo, sha, "d-1")
        # A branch's files change nothing; the default branch's next commit drops the cron.
        other = repo.commit({".labci/nightly.yml": PLAIN}, branch="try")
        await planned_push(sc, repo, other, "d-2", branch="try")
        async with sc.sessions() as session:
            assert len(await schedules_of(session, 1)) == 2
        newer = repo.commit(
            {".labci/nightly.yml": NIGHTLY.replace('    - cron: "0 3 * * MON"\n', "")}
        )
        await planned_push(sc, repo, newer, "d-3")
        async with sc.sessions() as session:
            rows = await schedules_of(session, 1)
    assert [(r.cron, r.commit_sha) for r in rows] == [("*/5 * * * *", newer)]
