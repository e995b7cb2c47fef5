"""Fork pull requests (D1, D2, D3, D13): held for a writer's approval under the
repository's policy, approvals bound to one commit, never placed on a process runner,
and a fork's file may not loosen its container."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_scheduling import registered_runner

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.models import Repository
from labci_server.db.queries import jobs as job_queries
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.runs import runs_for_event
from labci_server.errors import Conflict
from labci_server.planning.approval import approve_commit, approve_run, set_fork_approval
from labci_server.planning.planner import plan_event
from labci_server.scheduling.runners import heartbeat
from labci_server.scheduling.scheduler import schedule_jobs
from labci_server.webhooks.github import NewEvent
from labci_server.webhooks.ingest import store_event

BOXED = """\
name: boxed
on: pull_request
jobs:
  fit:
    runs-on: cpu
    container: {image: lab/busybox:1}
    steps: [{run: "echo fit"}]
"""

LOOSENED = """\
name: loose
on: pull_request
jobs:
  fit:
    runs-on: cpu
    container:
      image: lab/busybox:1
      network: host
      options: --shm-size 1g
    steps: [{run: "true"}]
"""


def fork_pr(repo, sha, delivery, *, association="CONTRIBUTOR", from_fork=True) -> NewEvent:
    return NewEvent(
        delivery_id=delivery,
        provider="git",
        kind="pull_request",
        action="opened",
        repo_full_name=str(repo),
        clone_url=str(repo),
        commit_sha=sha,
        branch="feature",
        base_branch="main",
        pr_number=1,
        from_fork=from_fork,
        author_association=association,
    )


async def _plan(sc, new: NewEvent):
    event_id = await store_event(sc, new)
    await plan_event(sc, event_id or 0)
    async with sc.sessions() as session:
        runs = await runs_for_event(session, event_id or 0)
        jobs = await job_queries.jobs_of_runs(session, [r.id or 0 for r in runs])
    return runs, jobs


async def _statuses(sc, repository_id, sha):
    async with sc.sessions() as session:
        messages = await outbox_queries.messages_for_commit(
            session, repository_id=repository_id, commit_sha=sha
        )
    return [(m.context, m.state, m.description) for m in messages]


async def _runner(sc, name, *, untrusted):
    runner = await registered_runner(sc, ["cpu"], 1)
    capabilities = {"host": True, "container": True, "untrusted": untrusted}
    await heartbeat(
        sc, token=runner["runner_token"], running=[], slots=1, labels=["cpu"],
        capabilities=capabilities,
    )  # fmt: skip
    return runner


async def test_a_contributors_fork_waits_for_approval_of_its_commit(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    repo.commit({".labci/boxed.yml": BOXED})
    head = repo.commit({"model.py": "v1"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        process = await _runner(sc, "proc", untrusted=False)
        boxed = await _runner(sc, "boxed", untrusted=True)
        # D2: a prior CONTRIBUTOR is gated too, under the default policy.
        (run,), jobs = await _plan(sc, fork_pr(repo.bare, head, "d1"))
        assert (run.trusted, run.approval) == (False, "awaiting")
        assert await schedule_jobs(sc) == 0  # D1: nothing is enqueued
        assert [j.state for j in jobs] == ["pending"]
        assert await _statuses(sc, run.repository_id, head) == [
            ("labci/boxed/fit", "pending", "awaiting approval from a maintainer")
        ]
        assert await approve_run(sc, run.id, by="maint", via="api") == [run.id]
        with pytest.raises(Conflict, match="not awaiting approval"):
            await approve_run(sc, run.id, by="maint", via="api")
        assert (await _statuses(sc, run.repository_id, head))[-1] == (
            "labci/boxed/fit",
            "pending",
            "queued",
        )
        # D13: placed on the containers-only runner, though the process runner is free
        # (and would win the tie: it registered first).
        assert await schedule_jobs(sc) == 1
        async with sc.sessions() as session:
            job = await job_queries.get_job(session, jobs[0].id)
        assert job.runner_id == boxed["runner_id"] != process["runner_id"]

        # A new push is a new head: it waits for a new approval.
        newer = repo.commit({"model.py": "v2"}, branch="feature")
        (second,), _ = await _plan(
            sc, replace(fork_pr(repo.bare, newer, "d2"), action="synchronize")
        )
        assert second.approval == "awaiting"
        assert await schedule_jobs(sc) == 0
        # An approval given before the run exists (a comment racing the webhook) counts.
        latest = repo.commit({"model.py": "v3"}, branch="feature")
        await approve_commit(
            sc, repository_id=run.repository_id, commit_sha=latest, pr_number=1, by="@maint",
            via="comment",
        )  # fmt: skip
        (third,), _ = await _plan(
            sc, replace(fork_pr(repo.bare, latest, "d3"), action="synchronize")
        )
        assert (third.approval, third.approved_by) == ("approved", "@maint")
        # The head it was held at is gone: approving that run now is refused.
        with pytest.raises(Conflict, match="has ended"):
            await approve_run(sc, second.id, by="maint", via="api")


@pytest.mark.parametrize(
    ("policy", "association", "held"),
    [
        ("all", "OWNER", True),
        ("all", "CONTRIBUTOR", True),
        ("first-time", "FIRST_TIME_CONTRIBUTOR", True),
        ("first-time", "FIRST_TIMER", True),
        ("first-time", "NONE", True),
        ("first-time", "CONTRIBUTOR", False),
        ("none", "FIRST_TIMER", False),
    ],
)
async def test_the_repository_policy_decides_which_forks_wait(
    tmp_path, database_url, redis_url, policy, association, held
):
    repo = make_repo(tmp_path)
    repo.commit({".labci/boxed.yml": BOXED})
    head = repo.commit({"model.py": "v1"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        # The repository exists once an event named it; the policy is set before the PR.
        await store_event(sc, replace(fork_pr(repo.bare, head, "first"), from_fork=False))
        async with sc.sessions() as session:
            stored = (await session.exec(Repository.__table__.select())).first()
        await set_fork_approval(sc.sessions, Repository(id=stored.id, full_name="x"), policy)
        (run,), _ = await _plan(sc, fork_pr(repo.bare, head, "fork", association=association))
    # Held or not, a fork's code stays untrusted (docker runners only, no secrets).
    assert (run.approval == "awaiting", run.trusted) == (held, False)


async def test_a_fork_may_not_loosen_its_container(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    repo.commit({".labci/loose.yml": LOOSENED})
    head = repo.commit({"model.py": "v1"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        (run,), jobs = await _plan(sc, fork_pr(repo.bare, head, "d1"))
        statuses = await _statuses(sc, run.repository_id, head)
        # The same file from the repository's own branch runs as written.
        (own,), own_jobs = await _plan(
            sc, replace(fork_pr(repo.bare, head, "d2", from_fork=False), pr_number=2)
        )
    assert (run.conclusion, jobs) == ("error", [])  # D3: nothing runs
    ((context, state, description),) = statuses
    assert (context, state) == ("labci/loose", "error")
    assert description.startswith(
        ".labci/loose.yml:8:16: jobs.fit.container.network: a fork's job may not use"
    )
    assert "(+1 more)" in description
    assert "container.options: a fork's job may not set" in run.error
    assert (own.trusted, [j.state for j in own_jobs]) == (True, ["pending"])
