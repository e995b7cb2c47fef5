"""Automatic bisection on real git repositories (the local forge), the test's database and
Redis: a change point on main between two measured commits with unmeasured commits between
them is bisected to the commit that moved the metric; a result already at a midpoint is
used, not measured again; the budget pauses the search and a larger one resumes it; two
adjacent commits need no search.

Jobs are finished through `finish_job`, as the runner API does (see test_verdicts); the
worker's pass (`advance_bisections`) and the planner are called as the worker would.
"""

from __future__ import annotations

import re

import httpx
import pytest
from test_verdicts import Repo, repo_with

from helpers.people import admin_token, bearer
from helpers.server import server_context, test_settings
from labci_server.app import create_app
from labci_server.bisection.advance import advance_bisections, set_budget
from labci_server.db.models import Bisection, Repository
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.bisections import bisection_runs_since, bisections_of_metric
from labci_server.db.queries.events import unplanned_events
from labci_server.db.queries.repositories import find_repository
from labci_server.forge.outbox import deliver_due
from labci_server.planning.planner import plan_event

TRAIN = """\
name: train
on: [push]
jobs:
  fit:
    runs-on: cpu
    steps: [{run: python train.py}]
    metrics:
      file: m.json
      compare:
        acc: {goal: max, tolerance: 0.005}
"""
CONTEXT = "labci/train/fit"
OLD, NEW = 0.90, 0.85
# A fixed wobble of a run's value around its level.
WOBBLE = (0.0, 0.002, -0.001, 0.001, -0.002, 0.0015)


class Main:
    """main's history: each push measured, at the old level until a regressing commit."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.regressed: set[str] = set()
        self.failing: set[str] = set()  # commits where the job fails
        self.pushes = 0
        self.head = ""

    def value(self, sha: str) -> float:
        """The commit's measured acc: its level, plus a wobble fixed by its sha."""
        level = NEW if sha in self.regressed else OLD
        return level + WOBBLE[int(sha[:8], 16) % len(WOBBLE)]

    def commit(self, name: str, *, regress: bool = False) -> str:
        sha = self.repo.git.commit({f"{name}.txt": f"{name}\n"}, message=name)
        if regress or self.regressed:
            self.regressed.add(sha)
        return sha

    async def push(self, sha: str) -> None:
        """Push main to `sha` and finish its run."""
        self.pushes += 1
        event = await self.repo.push(sha, f"push-{self.pushes}", before=self.head or None)
        self.head = sha
        (job,) = (await self.repo.jobs(event)).values()
        await self.repo.finish(job, {"acc": self.value(sha)})


async def history(main: Main, *, old: int, regression: list[str] | None = None) -> list[str]:
    """`old` pushes at the old level, then one push of the commits `regression` names (the
    one starting with "!" regresses), then three at the new level; returns that push's
    commits, oldest first."""
    for i in range(old):
        await main.push(main.commit(f"old-{i}"))
    batch = []
    for name in regression or ["!bad"]:
        batch.append(main.commit(name.lstrip("!"), regress=name.startswith("!")))
    await main.push(batch[-1])
    for i in range(3):
        await main.push(main.commit(f"new-{i}"))
    return batch


async def bisections(repo: Repo) -> list[Bisection]:
    async with repo.sc.sessions() as session:
        return await bisections_of_metric(
            session, repository_id=await repo.repository_id(), context=CONTEXT, metric="acc"
        )


async def bisection_runs(repo: Repo) -> int:
    """How many bisection runs the repository started (today)."""
    async with repo.sc.sessions() as session:
        return await bisection_runs_since(
            session, repository_id=await repo.repository_id(), since=0.0
        )


async def step(main: Main) -> list[str]:
    """One worker pass, then plan and finish the bisection runs it started; their commits."""
    repo = main.repo
    await advance_bisections(repo.sc)
    async with repo.sc.sessions() as session:
        found = await unplanned_events(session, received_before=1e12)
    measured = []
    for event in found:
        assert event.delivery_id.startswith("bisect:"), event.delivery_id
        assert event.kind == "baseline"
        await plan_event(repo.sc, event.id or 0)
        (job,) = (await repo.jobs(event.id or 0)).values()
        if event.commit_sha in main.failing:
            await repo.finish(job, None, outcome="failure")
        else:
            await repo.finish(job, {"acc": main.value(event.commit_sha)})
        measured.append(event.commit_sha)
    return measured


async def bisect(main: Main, *, passes: int = 10) -> list[str]:
    """Worker passes until the bisection ends; every commit measured for it, in order."""
    measured: list[str] = []
    for _ in range(passes):
        measured += await step(main)
        (found,) = await bisections(main.repo)
        if found.state not in ("listing", "searching"):
            return measured
    pytest.fail(f"the bisection did not end in {passes} passes: {found}")


@pytest.fixture
def main_repo(tmp_path):
    git, _ = repo_with(tmp_path, {".labci/train.yml": TRAIN})
    return git


async def test_a_regression_among_six_pushed_commits_is_found_and_commented(
    main_repo, database_url, redis_url
):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        main = Main(Repo(sc, main_repo))
        batch = await history(main, old=4, regression=["a1", "a2", "!a3", "a4", "a5", "a6"])
        good = main_repo_commits(main)[3]

        (started,) = await bisections(main.repo)
        assert (started.state, started.good_sha, started.bad_sha) == ("listing", good, batch[-1])

        measured = await bisect(main)

        (found,) = await bisections(main.repo)
        assert found.state == "found", found.note
        assert (found.result_sha, found.parent_sha) == (batch[2], batch[1])
        assert found.candidates == batch
        # Binary search: the middle (a3, new), then a1 (old), then a2 (old).
        assert measured == [batch[2], batch[0], batch[1]]
        effect = found.effect or {}
        assert effect["verdict"] == "regressed"
        assert effect["delta"] == pytest.approx(NEW - OLD, abs=0.005)
        low, high = effect["interval"]
        assert low < effect["delta"] < high < 0
        assert effect["p_value"] < 0.001
        assert "noise from" in effect["explanation"]  # one run a side: the segments' spread

        # The comment lands on the commit (a local repository has no merged pull requests).
        await deliver_due(sc.sessions, sc.forges, sc.outbox_policy)
        async with sc.sessions() as session:
            (comment,) = await outbox_queries.commit_comments(
                session, repository_id=await main.repo.repository_id(), commit_sha=batch[2]
            )
        body = comment.body
        assert body.startswith(f"<!-- labci:bisection-{found.id} -->")
        assert "this commit changed `acc`" in body
        assert f"http://labci.test/runs/{found.result_run_id}" in body
        assert f"http://labci.test/runs/{found.parent_run_id}" in body
        assert "**regressed**" in body
        # The two levels, each over the runs of its segment when the change point showed
        # (3 or 4 at the new level: that depends on the noise).
        assert re.search(
            r"from 0\.\d+ \(mean of 4 runs\) up to `\w{7}` to 0\.8\d+ \(mean of [34] runs\)",
            body,
        ), body

        # The next worker pass changes nothing: no run, no second comment.
        assert await advance_bisections(sc) == 0
        await deliver_due(sc.sessions, sc.forges, sc.outbox_policy)
        async with sc.sessions() as session:
            again = await outbox_queries.commit_comments(
                session, repository_id=await main.repo.repository_id(), commit_sha=batch[2]
            )
        assert [c.id for c in again] == [comment.id]

        # The history API lists it with the runs that prove it.
        body_json = await metric_history(sc, main.repo)
        (shown,) = body_json["bisections"]
        assert (shown["state"], shown["commit"], shown["parent_commit"]) == (
            "found",
            batch[2],
            batch[1],
        )
        assert (shown["before_commit"], shown["after_commit"]) == (good, batch[-1])
        assert shown["commits_between"] == 5
        assert shown["runs_started"] == 3
        assert [r["run_id"] for r in shown["runs"]] == [found.parent_run_id, found.result_run_id]
        assert [r["level"] for r in shown["runs"]] == ["old", "new"]
        assert shown["runs"][1]["url"] == f"http://labci.test/runs/{found.result_run_id}"
        assert shown["effect"]["verdict"] == "regressed"
        assert [s["commit"] for s in shown["steps"]] == measured
        (change,) = body_json["change_points"]
        assert (change["before_commit"], change["commit"]) == (good, batch[-1])


def main_repo_commits(main: Main) -> list[str]:
    from helpers.gitrepo import git

    return git(main.repo.git.work, "rev-list", "--first-parent", "--reverse", "HEAD").split()[1:]


async def metric_history(sc, repo: Repo) -> dict:  # type: ignore[no-untyped-def]
    """`GET /api/v1/repos/{owner}/{repo}/metrics` of acc, as an administrator."""
    owner, name = repo.git.bare.parent.name, repo.git.bare.name
    auth = bearer(await admin_token(sc.sessions))
    app = create_app(sc.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://labci.test", headers=auth
        ) as c:
            response = await c.get(
                f"/api/v1/repos/{owner}/{name}/metrics",
                params={"workflow": "train", "job": "fit", "metric": "acc"},
            )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_result_already_at_a_midpoint_is_used_not_measured_again(
    main_repo, database_url, redis_url
):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        main = Main(Repo(sc, main_repo))
        for i in range(4):
            await main.push(main.commit(f"old-{i}"))
        batch = [
            main.commit(n.lstrip("!"), regress=n[0] == "!") for n in ("a1", "a2", "!a3", "a4", "a5")
        ]
        # a2, the first midpoint, was measured already: pushed to another branch.
        other = await main.repo.push(batch[1], "push-feature", branch="feature")
        (job,) = (await main.repo.jobs(other)).values()
        await main.repo.finish(job, {"acc": main.value(batch[1])})
        await main.push(batch[-1])
        for i in range(3):
            await main.push(main.commit(f"new-{i}"))

        measured = await bisect(main)

        (found,) = await bisections(main.repo)
        assert (found.state, found.result_sha, found.parent_sha) == ("found", batch[2], batch[1])
        assert measured == [batch[2]]  # a2's result was used; only a3 needed a run
        assert await bisection_runs(main.repo) == 1
        assert [(s["sha"], s["level"], s["run_id"], s["bisection_run"]) for s in found.steps] == [
            (batch[1], "old", job.run_id, False),
            (batch[2], "new", found.result_run_id, True),
        ]
        assert found.parent_run_id == job.run_id


async def test_commits_that_cannot_be_measured_are_skipped_and_may_leave_a_range(
    main_repo, database_url, redis_url
):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        main = Main(Repo(sc, main_repo))
        batch = await history(main, old=4, regression=["a1", "a2", "!a3", "a4", "a5", "a6"])
        main.failing.add(batch[2])  # the change's own commit breaks the job

        measured = await bisect(main)

        # a3 (the middle) failed: skipped; a2 is old, a4 new; only a3 was left between.
        assert measured == [batch[2], batch[1], batch[3]]
        (ended,) = await bisections(main.repo)
        assert ended.state == "exhausted"
        assert ended.note == (
            f"the change is one of {batch[2][:7]}, {batch[3][:7]}: {batch[2][:7]} could not be "
            "measured"
        )
        assert ended.result_sha is None
        skipped = ended.steps[0]
        assert (skipped["sha"], skipped["level"]) == (batch[2], "skipped")
        assert skipped["reason"].startswith("the job did not succeed at this commit (failure)")
        (shown,) = (await metric_history(sc, main.repo))["bisections"]
        assert (shown["state"], shown["commit"], shown["runs"]) == ("exhausted", None, [])
        assert [s["level"] for s in shown["steps"]] == ["skipped", "old", "new"]


async def test_the_budget_pauses_a_bisection_and_a_larger_one_resumes_it(
    main_repo, database_url, redis_url
):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        main = Main(Repo(sc, main_repo))
        await main.push(main.commit("first"))
        repo_row = await repository_row(main.repo)
        await set_budget(sc.sessions, repo_row, 0)  # bisection off
        batch = await history(main, old=3, regression=["a1", "a2", "!a3", "a4", "a5", "a6"])

        assert await step(main) == []
        (paused,) = await bisections(main.repo)
        assert (paused.state, paused.candidates) == ("budget", None)  # not even listed
        assert paused.note == "bisection is off for this repository (a budget of 0 runs a day)"

        await set_budget(sc.sessions, repo_row, 1)
        assert await step(main) == [batch[2]]  # the first midpoint
        assert await step(main) == []  # the second would be a second run today
        (paused,) = await bisections(main.repo)
        assert paused.state == "budget"
        assert paused.note == (
            "paused: the repository's 1 bisection runs of the last 24 hours are used up; it "
            "resumes when the budget has room"
        )
        assert [s["sha"] for s in paused.steps] == [batch[2]]  # its work so far is kept
        assert await bisection_runs(main.repo) == 1
        shown = (await metric_history(sc, main.repo))["bisections"]
        assert [(b["state"], b["note"]) for b in shown] == [("budget", paused.note)]

        await set_budget(sc.sessions, repo_row, 5)
        assert await bisect(main) == [batch[0], batch[1]]
        (found,) = await bisections(main.repo)
        assert (found.state, found.result_sha) == ("found", batch[2])


async def test_a_change_between_adjacent_commits_needs_no_bisection(
    main_repo, database_url, redis_url
):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        main = Main(Repo(sc, main_repo))
        (bad,) = await history(main, old=4, regression=["!bad"])

        assert await step(main) == []
        (row,) = await bisections(main.repo)
        assert (row.state, row.candidates, row.bad_sha) == ("adjacent", [bad], bad)
        assert await bisection_runs(main.repo) == 0
        body = await metric_history(sc, main.repo)
        assert body["bisections"] == []  # nothing was searched: the change point says it
        (change,) = body["change_points"]
        assert change["commit"] == bad
        await deliver_due(sc.sessions, sc.forges, sc.outbox_policy)
        async with sc.sessions() as session:
            comments = await outbox_queries.commit_comments(
                session, repository_id=await main.repo.repository_id(), commit_sha=bad
            )
        assert comments == []
        # Later pushes at the new level start nothing more.
        await main.push(main.commit("new-3"))
        assert await step(main) == []
        assert len(await bisections(main.repo)) == 1


async def repository_row(repo: Repo) -> Repository:
    async with repo.sc.sessions() as session:
        row = await find_repository(session, provider="git", full_name=str(repo.git.bare))
    assert row is not None
    return row


def test_bisect_budget_command_sets_and_clears_a_repository_budget(database_url):
    import asyncio

    from test_cli import labci

    from labci_server.db.engine import make_engine, make_sessionmaker
    from labci_server.db.migrate import upgrade
    from labci_server.db.queries.repositories import ensure_repository

    async def budget() -> int | None:
        engine = make_engine(database_url)
        async with make_sessionmaker(engine)() as session, session.begin():
            found = await ensure_repository(
                session, provider="github", full_name="octo/exp", clone_url="https://x"
            )
        await engine.dispose()
        return found.bisect_runs_per_day

    asyncio.run(upgrade(database_url))
    assert asyncio.run(budget()) is None
    env = {"PATH": "/usr/bin:/bin", "LABCI_DATABASE_URL": database_url}
    done = labci("repos", "bisect-budget", "octo/exp", "3", env=env)
    assert (done.returncode, done.stdout) == (0, "octo/exp: 3 bisection runs a day\n")
    assert asyncio.run(budget()) == 3
    back = labci("repos", "bisect-budget", "octo/exp", "default", env=env)
    assert back.stdout == "octo/exp: 20 bisection runs a day (the server's)\n"
    assert asyncio.run(budget()) is None
    wrong = labci("repos", "bisect-budget", "octo/exp", "-1", env=env)
    assert wrong.returncode != 0
    assert "the budget is a number of runs a day (0: off) or 'default', not '-1'" in wrong.stderr
    assert "Traceback" not in wrong.stderr
