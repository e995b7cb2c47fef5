"""Planning on real git repositories (the local forge), a real database and real Redis."""

from __future__ import annotations

from pathlib import Path

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.events import get_event
from labci_server.db.queries.runs import jobs_of_run, runs_for_event
from labci_server.planning.planner import plan_event
from labci_server.webhooks.github import NewEvent
from labci_server.webhooks.ingest import store_event

TRAIN = """\
name: train
on:
  push: {branches: [main]}
  pull_request: {branches: [main]}
jobs:
  small:
    runs-on: [cpu]
    timeout-minutes: 5
    steps:
      - run: echo hi
  big:
    runs-on: [gpu]
    steps:
      - run: echo big
"""

BROKEN = """\
name: broken
on: push
jobs:
  x:
    runs_on: [cpu]
    steps:
      - run: echo
"""

ONLY_RELEASE = """\
name: release
on:
  push: {branches: ["release/**"]}
jobs:
  pack:
    runs-on: cpu
    steps: [{run: echo}]
"""


def push_event(repo: Path, sha: str, delivery: str, branch: str = "main") -> NewEvent:
    return NewEvent(
        delivery_id=delivery,
        provider="git",
        kind="push",
        action=None,
        repo_full_name=str(repo),
        clone_url=str(repo),
        commit_sha=sha,
        branch=branch,
    )


async def test_push_plans_matching_workflows_and_reports_broken_files(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit(
        {".labci/train.yml": TRAIN, ".labci/broken.yml": BROKEN, ".labci/release.yml": ONLY_RELEASE}
    )
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await store_event(sc, push_event(repo.bare, sha, "d-1"))
        assert event_id is not None
        run_ids = await plan_event(sc, event_id)
        assert await plan_event(sc, event_id) == []  # planning twice creates nothing
        async with sc.sessions() as session:
            runs = {r.workflow_path: r for r in await runs_for_event(session, event_id)}
            assert sorted(runs) == [".labci/broken.yml", ".labci/train.yml"]
            assert len(run_ids) == 2
            jobs = await jobs_of_run(session, runs[".labci/train.yml"].id)
            assert [(j.job_key, j.state, j.runs_on, j.timeout_s) for j in jobs] == [
                ("small", "pending", ["cpu"], 300),
                ("big", "pending", ["gpu"], 3600),
            ]
            messages = await outbox_queries.messages_for_commit(
                session, repository_id=runs[".labci/train.yml"].repository_id, commit_sha=sha
            )
            event = await get_event(session, event_id)
    assert event is not None
    assert event.state == "planned"
    by_context = {(m.context, m.state): m for m in messages}
    assert set(by_context) == {
        ("labci/train/small", "pending"),
        ("labci/train/big", "pending"),
        ("labci/broken", "error"),
    }
    broken = by_context[("labci/broken", "error")].description
    assert broken.startswith(".labci/broken.yml:5:5: ")
    assert "runs_on" in broken
    assert "runs-on" in broken
    assert len(broken) <= 140
    assert runs[".labci/broken.yml"].conclusion == "error"


async def test_redelivered_event_is_stored_once(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/train.yml": TRAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        first = await store_event(sc, push_event(repo.bare, sha, "same-delivery"))
        second = await store_event(sc, push_event(repo.bare, sha, "same-delivery"))
    assert first is not None
    assert second is None


async def test_push_to_other_branch_plans_nothing(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    repo.commit({".labci/train.yml": TRAIN})
    sha = repo.commit({"notes.txt": "x"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await store_event(sc, push_event(repo.bare, sha, "d-2", branch="feature"))
        assert await plan_event(sc, event_id or 0) == []
        async with sc.sessions() as session:
            assert await runs_for_event(session, event_id or 0) == []
            event = await get_event(session, event_id or 0)
    assert event is not None
    assert event.state == "planned"
