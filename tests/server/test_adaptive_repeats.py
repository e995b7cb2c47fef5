"""Adaptive repeats on real git repositories, the test's database and Redis: a verdict that
is worse than the tolerance but not yet significant asks for more seeds on both sides,
waits for them, and decides at a second look; seeds added to a base commit are reused by
the next pull request on that base; a clear verdict adds nothing.

Jobs are finished through `finish_job`, as the runner API does (see test_verdicts)."""

from __future__ import annotations

from test_verdicts import Repo, repo_with

from helpers.server import server_context, test_settings
from labci_server.db.queries.events import unplanned_events
from labci_server.planning.planner import plan_event
from labci_server.results.publish import rejudge_awaiting

ADAPTIVE = """\
name: seeds
on: [push, pull_request]
jobs:
  fit:
    runs-on: cpu
    strategy: {matrix: {seed: [0, 1, 2, 3, 4]}}
    steps: [{run: "python train.py --seed ${{ matrix.seed }}"}]
    metrics:
      file: m.json
      repeats: {axis: seed, max: 10}
      compare:
        acc: {goal: max, tolerance: 0.005}
"""
CONTEXT = "labci/seeds/fit"
BASE = [0.900, 0.910, 0.890, 0.905, 0.895]
BASE_ADDED = [0.902, 0.898, 0.908, 0.892, 0.900]
# 0.015 worse: 0.01 beyond the tolerance, one-sided p 0.04 with 5 v 5 seeds — not
# significant at the first look's 2.5 %, and clearly so with 10 v 10.
WORSE = [v - 0.015 for v in BASE]
WORSE_ADDED = [v - 0.015 for v in BASE_ADDED]


async def finish_seeds(repo: Repo, event_id: int, values: list[float], first: int = 0) -> None:
    jobs = await repo.jobs(event_id, "seeds")
    for seed, acc in enumerate(values, start=first):
        await repo.finish(jobs[f"fit ({seed})"], {"acc": acc})


async def seed_requests(repo: Repo) -> list[int]:
    async with repo.sc.sessions() as session:
        found = await unplanned_events(session, received_before=1e12)
    return [e.id or 0 for e in found if e.kind == "seeds"]


async def test_a_doubtful_regression_gets_more_seeds_on_both_sides_then_a_verdict(
    tmp_path, database_url, redis_url
):
    git, base = repo_with(tmp_path, {".labci/seeds.yml": ADAPTIVE})
    head = git.commit({"model.py": "worse\n"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        pushed = await repo.push(base, "push-base")
        await finish_seeds(repo, pushed, BASE)
        pr = await repo.pull_request(head, base, "pr-doubt")
        await finish_seeds(repo, pr, WORSE)

        state, description = await repo.status(head, CONTEXT)
        assert (state, description) == (
            "pending",
            "acc 0.885 (−0.015) · mean of 5 · adding seeds up to 10 on both sides",
        )
        (acc,) = (await repo.verdict(pr, CONTEXT)).details["metrics"]
        assert acc["verdict"] == "inconclusive"
        assert 0.025 < acc["p_value"] < 0.05  # significant alone, not at the first look

        requests = await seed_requests(repo)
        assert len(requests) == 2  # the head's run and the base's run
        for event_id in requests:
            assert await plan_event(sc, event_id)
        head_jobs, base_jobs = await repo.jobs(pr, "seeds"), await repo.jobs(pushed, "seeds")
        added = [f"fit ({seed})" for seed in range(5, 10)]
        assert sorted(head_jobs) == sorted(base_jobs) == sorted(f"fit ({s})" for s in range(10))
        assert all(head_jobs[key].state == "pending" for key in added)
        # The reconciler's retry of waiting verdicts leaves a context with seeds running.
        async with sc.sessions() as session, session.begin():
            assert await rejudge_awaiting(session, updated_before=1e12) == 0
        assert (await repo.status(head, CONTEXT))[0] == "pending"

        await finish_seeds(repo, pr, WORSE_ADDED, first=5)
        # The head's seeds are in; the base's are not yet.
        state, description = await repo.status(head, CONTEXT)
        assert state == "pending"
        assert description.endswith("waiting for the added seeds")
        assert (await repo.verdict(pr, CONTEXT)).baseline_sha == base

        await finish_seeds(repo, pushed, BASE_ADDED, first=5)
        state, description = await repo.status(head, CONTEXT)
        assert (state, description) == (
            "failure",
            "acc 0.885 (−0.015) · 1 regression · mean of 10",
        )
        verdict = await repo.verdict(pr, CONTEXT)
        (acc,) = verdict.details["metrics"]
        assert (acc["verdict"], acc["base"]["n"], acc["head"]["n"]) == ("regressed", 10, 10)
        assert acc["p_value"] < 0.025
        assert "second, with the added seeds" in verdict.details["decision"]["looks"]
        body = await repo.comment()
        assert body is not None
        assert "Adaptive repeats: decided at the second" in body

        # The next pull request on the same base reuses the base's ten seeds.
        again = git.commit({"model.py": "still worse\n"}, branch="feature")
        pr2 = await repo.pull_request(again, base, "pr-again", action="synchronize")
        await finish_seeds(repo, pr2, WORSE)
        (acc,) = (await repo.verdict(pr2, CONTEXT)).details["metrics"]
        assert acc["base"]["n"] == 10
        requests = await seed_requests(repo)
        for event_id in requests:
            await plan_event(sc, event_id)
        assert len(await repo.jobs(pushed, "seeds")) == 10  # no seed measured twice


async def test_a_clear_verdict_adds_no_seeds(tmp_path, database_url, redis_url):
    git, base = repo_with(tmp_path, {".labci/seeds.yml": ADAPTIVE})
    same = git.commit({"model.py": "same\n"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        pushed = await repo.push(base, "push-base")
        await finish_seeds(repo, pushed, BASE)
        pr = await repo.pull_request(same, base, "pr-same")
        await finish_seeds(repo, pr, [v + 0.001 for v in BASE])

        state, description = await repo.status(same, CONTEXT)
        assert state == "success"
        assert await seed_requests(repo) == []
        verdict = await repo.verdict(pr, CONTEXT)
        assert "decided at the first look" in verdict.details["decision"]["looks"]
