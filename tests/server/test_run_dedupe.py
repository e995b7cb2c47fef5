"""One run per (commit, workflow, trigger, branch or pull request), decided by the
database's unique index on `runs.dedupe_key` — on real git repositories (the local forge),
the test's real database (SQLite, or PostgreSQL where two planners truly race) and Redis.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from test_planning import push_event

from helpers.gitrepo import git, make_repo
from helpers.server import server_context, test_settings
from labci_server.context import ServerContext
from labci_server.db.models import Run
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.events import get_event, insert_event
from labci_server.db.queries.runs import jobs_of_run, runs_for_commit, runs_for_event
from labci_server.planning.planner import plan_event
from labci_server.results import autobase
from labci_server.webhooks.dispatch import to_dispatch_event
from labci_server.webhooks.github import NewEvent
from labci_server.webhooks.ingest import store_event

TRAIN = """\
name: train
on: [push, pull_request]
jobs:
  small: {runs-on: cpu, steps: [{run: echo small}]}
  big: {runs-on: gpu, needs: small, steps: [{run: echo big}]}
"""

EVAL = """\
name: eval
on: [push, pull_request]
jobs:
  score:
    runs-on: cpu
    steps: [{run: echo score}]
    metrics: {file: m.json}
"""

BROKEN = """\
name: broken
on: push
jobs:
  x: {runs_on: cpu, steps: [{run: echo}]}
"""

MANUAL = """\
name: manual
on: workflow_dispatch
jobs:
  go: {runs-on: cpu, steps: [{run: echo go}]}
"""

FILES = {".labci/train.yml": TRAIN, ".labci/eval.yml": EVAL}
CONTEXTS = ("labci/eval/score", "labci/train/big", "labci/train/small")


def pull_request(
    repo: Path, sha: str, base_sha: str, delivery: str, *, action: str = "synchronize"
) -> NewEvent:
    return NewEvent(
        delivery_id=delivery,
        provider="git",
        kind="pull_request",
        action=action,
        repo_full_name=str(repo),
        clone_url=str(repo),
        commit_sha=sha,
        branch="feature",
        base_branch="main",
        base_sha=base_sha,
        pr_number=7,
    )


async def store(sc: ServerContext, new: NewEvent) -> int:
    event_id = await store_event(sc, new)
    assert event_id is not None
    return event_id


async def runs_at(sc: ServerContext, sha: str) -> list[Run]:
    async with sc.sessions() as session:
        return await runs_for_commit(session, sha)


async def statuses_at(sc: ServerContext, run: Run) -> Counter[tuple[str, str]]:
    """How many status messages the outbox holds per (context, state) at the run's commit."""
    async with sc.sessions() as session:
        messages = await outbox_queries.messages_for_commit(
            session, repository_id=run.repository_id, commit_sha=run.commit_sha
        )
    return Counter((m.context, m.state) for m in messages if m.kind == "status")


async def job_states(sc: ServerContext, run: Run) -> dict[str, str]:
    async with sc.sessions() as session:
        return {j.job_key: j.state for j in await jobs_of_run(session, run.id or 0)}


async def test_thirty_pushes_of_one_commit_make_one_run_per_workflow(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({**FILES, ".labci/broken.yml": BROKEN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        created = []
        for n in range(30):
            event_id = await store(sc, push_event(repo.bare, sha, f"push-{n}"))
            created.append(await plan_event(sc, event_id))
            async with sc.sessions() as session:
                event = await get_event(session, event_id)
            assert event is not None
            assert event.state == "planned"
        runs = await runs_at(sc, sha)
        statuses = await statuses_at(sc, runs[0])
        train = next(r for r in runs if r.workflow_path == ".labci/train.yml")
        assert await job_states(sc, train) == {"small": "pending", "big": "waiting"}
    assert len(created[0]) == 3
    assert created[1:] == [[]] * 29
    assert sorted(r.workflow_path for r in runs) == [
        ".labci/broken.yml",
        ".labci/eval.yml",
        ".labci/train.yml",
    ]
    assert {r.dedupe_key for r in runs} == {
        f"push:{train.repository_id}:branch=main:{sha}:.labci/{name}.yml"
        for name in ("broken", "eval", "train")
    }
    assert statuses == Counter(
        {**{(context, "pending"): 1 for context in CONTEXTS}, ("labci/broken", "error"): 1}
    )


async def test_opened_synchronize_reopened_at_one_head_make_one_run(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    base = repo.commit(FILES)
    head = repo.commit({"a.txt": "1"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        created = []
        for action in ("opened", "synchronize", "reopened"):
            event_id = await store(sc, pull_request(repo.bare, head, base, action, action=action))
            created.append(await plan_event(sc, event_id))
        runs = await runs_at(sc, head)
        statuses = await statuses_at(sc, runs[0])
        states = [await job_states(sc, run) for run in runs]
    assert [len(ids) for ids in created] == [2, 0, 0]
    assert sorted((r.workflow_path, r.trigger, r.pr_number) for r in runs) == [
        (".labci/eval.yml", "pull_request", 7),
        (".labci/train.yml", "pull_request", 7),
    ]
    # The same head's later events never supersede its own run.
    assert sorted(states, key=len) == [
        {"score": "pending"},
        {"small": "pending", "big": "waiting"},
    ]
    assert statuses == Counter({(context, "pending"): 1 for context in CONTEXTS})


@pytest.mark.parametrize("kind", ["push", "pull_request"])
async def test_events_planned_at_once_make_one_run(tmp_path, database_url, redis_url, kind):
    repo = make_repo(tmp_path)
    base = repo.commit(FILES)
    head = repo.commit({"a.txt": "1"}, branch="feature")

    def event(n: int) -> NewEvent:
        if kind == "push":
            return push_event(repo.bare, head, f"race-{n}", branch="feature")
        return pull_request(repo.bare, head, base, f"race-{n}")

    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_ids = [await store(sc, event(n)) for n in range(4)]
        created = await asyncio.gather(*(plan_event(sc, event_id) for event_id in event_ids))
        runs = await runs_at(sc, head)
        statuses = await statuses_at(sc, runs[0])
        states = [await job_states(sc, run) for run in runs]
    assert sorted(run_id for ids in created for run_id in ids) == sorted(r.id for r in runs)
    assert sorted(r.workflow_path for r in runs) == [".labci/eval.yml", ".labci/train.yml"]
    assert {r.trigger for r in runs} == {kind}
    assert sum(len(s) for s in states) == 3  # jobs of one run per workflow, none cancelled
    assert "cancelled" not in {state for s in states for state in s.values()}
    assert statuses == Counter({(context, "pending"): 1 for context in CONTEXTS})


async def test_out_of_order_heads_leave_only_the_newest_running(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    base = repo.commit(FILES)
    old = repo.commit({"a.txt": "1"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        opened = await store(sc, pull_request(repo.bare, old, base, "o", action="opened"))
        assert len(await plan_event(sc, opened)) == 2
        new = repo.commit({"a.txt": "2"}, branch="feature")
        # The old head again (a second delivery), then the new head twice.
        again = await store(sc, pull_request(repo.bare, old, base, "o2", action="reopened"))
        newer = await store(sc, pull_request(repo.bare, new, base, "n"))
        newer_again = await store(sc, pull_request(repo.bare, new, base, "n2"))
        assert len(await plan_event(sc, newer)) == 2
        # Planned late: the old head's event, overtaken, runs nothing; the new head's
        # second event makes nothing new and cancels nothing of its own head.
        assert await plan_event(sc, again) == []
        assert await plan_event(sc, newer_again) == []
        old_runs, new_runs = await runs_at(sc, old), await runs_at(sc, new)
        old_states = [await job_states(sc, run) for run in old_runs]
        new_states = [await job_states(sc, run) for run in new_runs]
        old_statuses = await statuses_at(sc, old_runs[0])
        new_statuses = await statuses_at(sc, new_runs[0])
        async with sc.sessions() as session:
            assert await runs_for_event(session, again) == []
    assert (len(old_runs), len(new_runs)) == (2, 2)
    assert {state for s in old_states for state in s.values()} == {"cancelled"}
    assert {state for s in new_states for state in s.values()} == {"pending", "waiting"}
    assert {r.state for r in old_runs} == {"finished"}
    assert {r.state for r in new_runs} == {"pending"}
    # The old head shows its cancellation; the new head only its own pending statuses.
    assert {key for key in old_statuses if key[1] != "pending"} == {
        (context, "error") for context in CONTEXTS
    }
    assert new_statuses == Counter({(context, "pending"): 1 for context in CONTEXTS})


async def test_a_head_that_comes_back_after_being_superseded_runs_again(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    base = repo.commit(FILES)
    first = repo.commit({"a.txt": "1"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        await plan_event(sc, await store(sc, pull_request(repo.bare, first, base, "a")))
        second = repo.commit({"a.txt": "2"}, branch="feature")
        await plan_event(sc, await store(sc, pull_request(repo.bare, second, base, "b")))
        git(repo.work, "push", "-q", "--force", "origin", f"{first}:refs/heads/feature")
        back = pull_request(repo.bare, first, base, "force-pushed-back")
        await plan_event(sc, await store(sc, back))
        first_runs, second_runs = await runs_at(sc, first), await runs_at(sc, second)
        first_states = [(r.state, r.conclusion, r.dedupe_key is None) for r in first_runs]
    assert [(r.state, r.conclusion) for r in second_runs] == [("finished", "cancelled")] * 2
    # The superseded runs gave their keys up; the head's new runs hold them.
    assert sorted(first_states, key=str) == sorted(
        [("finished", "cancelled", True)] * 2 + [("pending", None, False)] * 2, key=str
    )


async def test_every_manual_run_runs(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/manual.yml": MANUAL})

    def dispatch(delivery: str) -> NewEvent:
        return to_dispatch_event(
            {
                "delivery_id": delivery,
                "provider": "git",
                "repo_full_name": str(repo.bare),
                "clone_url": str(repo.bare),
                "branch": "main",
                "commit_sha": sha,
                "workflow_path": ".labci/manual.yml",
                "inputs": {},
            }
        )

    async with server_context(test_settings(database_url, redis_url)) as sc:
        for delivery in ("m-1", "m-2"):
            assert len(await plan_event(sc, await store(sc, dispatch(delivery)))) == 1
        runs = await runs_at(sc, sha)
    assert [(r.trigger, r.dedupe_key) for r in runs] == [("workflow_dispatch", None)] * 2


async def test_the_same_commit_pushed_to_another_branch_gets_its_own_run(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/train.yml": TRAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        for branch, delivery in (("main", "1"), ("release", "2"), ("main", "3"), ("release", "4")):
            await plan_event(sc, await store(sc, push_event(repo.bare, sha, delivery, branch)))
        runs = await runs_at(sc, sha)
    assert [r.branch for r in runs] == ["main", "release"]


async def test_a_commit_measured_as_a_baseline_is_measured_once(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit(FILES)
    async with server_context(test_settings(database_url, redis_url)) as sc:
        push_id = await store(sc, push_event(repo.bare, sha, "push"))
        async with sc.sessions() as session:
            push = await get_event(session, push_id)
        assert push is not None
        baselines = []
        for delivery in (autobase.delivery_id(push.repository_id, sha, ".labci/eval.yml"), "b2"):
            async with sc.sessions() as session, session.begin():
                baselines.append(
                    await insert_event(
                        session,
                        {
                            "delivery_id": delivery,
                            "provider": "git",
                            "kind": autobase.KIND,
                            "workflow_path": ".labci/eval.yml",
                            "repository_id": push.repository_id,
                            "commit_sha": sha,
                            "branch": "main",
                        },
                    )
                )
        created = [await plan_event(sc, event_id or 0) for event_id in baselines]
        await plan_event(sc, push_id)
        runs = await runs_at(sc, sha)
    assert [len(ids) for ids in created] == [1, 0]
    assert sorted((r.trigger, r.workflow_path) for r in runs) == [
        ("baseline", ".labci/eval.yml"),
        ("push", ".labci/eval.yml"),
        ("push", ".labci/train.yml"),
    ]
