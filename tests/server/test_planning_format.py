"""Planning with the whole workflow format: matrix instances, repeats, needs, `if:`,
fail-fast, max-parallel, path filters, pull-request types and manual runs — on real git
repositories (the local forge), the test's real database and real Redis.

Jobs are finished through `finish_job`, the same stage function the runner API calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_planning import push_event

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.models import Job
from labci_server.db.queries import jobs as job_queries
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.runs import get_run, jobs_of_run, runs_for_event
from labci_server.planning.planner import plan_event
from labci_server.results.ingest import finish_job
from labci_server.scheduling.runners import create_registration_token, heartbeat, register_runner
from labci_server.scheduling.scheduler import schedule_jobs
from labci_server.webhooks.dispatch import to_dispatch_event
from labci_server.webhooks.github import NewEvent
from labci_server.webhooks.ingest import store_event

SEEDS = """\
name: train
on: push
jobs:
  fit:
    runs-on: cpu
    strategy:
      matrix: {lr: [0.1, 0.01], seed: [0, 1, 2]}
    steps: [{run: "echo ${{ matrix.lr }} ${{ matrix.seed }}"}]
    metrics: {file: m.json, repeats: seed}
"""

CHAIN = """\
name: bench
on: push
jobs:
  build:
    runs-on: cpu
    steps: [{run: make}]
  bench:
    runs-on: cpu
    needs: build
    steps: [{run: ./bench}]
  report:
    runs-on: cpu
    needs: [bench]
    if: always()
    steps: [{run: ./report}]
  only-on-pr:
    runs-on: cpu
    if: github.event_name == 'pull_request'
    steps: [{run: echo}]
  after-skipped:
    runs-on: cpu
    needs: only-on-pr
    steps: [{run: echo}]
"""


async def plan_push(sc, repo_path: Path, sha: str, delivery: str, **extra: Any) -> int:
    event_id = await store_event(sc, push_event(repo_path, sha, delivery, **extra))
    assert event_id is not None
    await plan_event(sc, event_id)
    return event_id


async def jobs_by_key(sc, event_id: int, workflow_path: str) -> dict[str, Job]:
    async with sc.sessions() as session:
        (run,) = [
            r for r in await runs_for_event(session, event_id) if r.workflow_path == workflow_path
        ]
        return {j.job_key: j for j in await jobs_of_run(session, run.id or 0)}


async def statuses(sc, repository_id: int, sha: str) -> dict[tuple[str, str], str]:
    async with sc.sessions() as session:
        messages = await outbox_queries.messages_for_commit(
            session, repository_id=repository_id, commit_sha=sha
        )
    return {(m.context, m.state): m.description for m in messages}


async def finish(sc, job: Job, outcome: str, metrics: dict[str, float] | None = None) -> None:
    async with sc.sessions() as session, session.begin():
        row = await job_queries.get_job(session, job.id or 0, for_update=True)
        assert row is not None
        await finish_job(
            session,
            row,
            outcome=outcome,
            reason=f"it went {outcome}",
            metrics=metrics,
            run_url="http://labci.test/runs/1",
        )


async def test_matrix_instances_share_a_context_per_repeat_group(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/train.yml": SEEDS})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await plan_push(sc, repo.bare, sha, "d-seeds")
        jobs = await jobs_by_key(sc, event_id, ".labci/train.yml")
        assert sorted(jobs) == [
            "fit (0.01, 0)",
            "fit (0.01, 1)",
            "fit (0.01, 2)",
            "fit (0.1, 0)",
            "fit (0.1, 1)",
            "fit (0.1, 2)",
        ]
        assert {j.context for j in jobs.values()} == {
            "labci/train/fit (0.1)",
            "labci/train/fit (0.01)",
        }
        assert (
            jobs["fit (0.1, 2)"].spec["job"]["steps"][0]["run"]
            == "echo ${{ matrix.lr }} ${{ matrix.seed }}"
        )
        assert jobs["fit (0.1, 2)"].spec["matrix"] == {"lr": "0.1", "seed": 2}
        repo_id = (await _run_of(sc, jobs["fit (0.1, 0)"])).repository_id
        assert await statuses(sc, repo_id, sha) == {
            ("labci/train/fit (0.1)", "pending"): "queued",
            ("labci/train/fit (0.01)", "pending"): "queued",
        }
        for seed, acc in ((0, 0.90), (1, 0.92)):
            await finish(sc, jobs[f"fit (0.1, {seed})"], "success", {"acc": acc})
        assert ("labci/train/fit (0.1)", "success") not in await statuses(sc, repo_id, sha)
        await finish(sc, jobs["fit (0.1, 2)"], "success", {"acc": 0.94})
        final = await statuses(sc, repo_id, sha)
        assert final[("labci/train/fit (0.1)", "success")] == "acc 0.92 · mean of 3"


async def _run_of(sc, job: Job):
    async with sc.sessions() as session:
        run = await get_run(session, job.run_id)
    assert run is not None
    return run


async def test_needs_chain_if_and_skips(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/bench.yml": CHAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await plan_push(sc, repo.bare, sha, "d-chain")
        jobs = await jobs_by_key(sc, event_id, ".labci/bench.yml")
        assert {k: j.state for k, j in jobs.items()} == {
            "build": "pending",
            "bench": "waiting",
            "report": "waiting",
            "only-on-pr": "skipped",
            "after-skipped": "skipped",
        }
        repo_id = (await _run_of(sc, jobs["build"])).repository_id
        before = await statuses(sc, repo_id, sha)
        assert before[("labci/bench/bench", "pending")] == "waiting for build"
        assert before[("labci/bench/only-on-pr", "success")] == "skipped: `if` condition is false"
        assert before[("labci/bench/after-skipped", "success")] == (
            "skipped: needed job 'only-on-pr' was skipped"
        )

        await finish(sc, jobs["build"], "failure")
        jobs = await jobs_by_key(sc, event_id, ".labci/bench.yml")
        # bench is blocked by build's failure; report asked for always() and runs anyway.
        assert (jobs["bench"].state, jobs["report"].state) == ("blocked", "pending")
        after = await statuses(sc, repo_id, sha)
        assert after[("labci/bench/bench", "failure")] == "blocked: needed job 'build' failed"

        await finish(sc, jobs["report"], "success")
        run = await _run_of(sc, jobs["report"])
        assert (run.state, run.conclusion) == ("finished", "failure")


async def test_needs_released_in_order_when_each_succeeds(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/bench.yml": CHAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await plan_push(sc, repo.bare, sha, "d-chain-ok")
        order = []
        for name in ("build", "bench", "report"):
            jobs = await jobs_by_key(sc, event_id, ".labci/bench.yml")
            pending = sorted(k for k, j in jobs.items() if j.state == "pending")
            order.append(pending)
            await finish(sc, jobs[name], "success")
        assert order == [["build"], ["bench"], ["report"]]
        run = await _run_of(sc, jobs["report"])
        assert (run.state, run.conclusion) == ("finished", "success")


FAIL_FAST = """\
on: push
jobs:
  sweep:
    runs-on: cpu
    strategy:
      matrix: {seed: [0, 1, 2]}
      fail-fast: {fail_fast}
      max-parallel: 2
    steps: [{run: train}]
"""


@pytest.mark.parametrize(
    ("fail_fast", "expected"),
    [("true", ["failure", "cancelled", "cancelled"]), ("false", ["failure", "pending", "pending"])],
    ids=["fail-fast", "no-fail-fast"],
)
async def test_fail_fast_cancels_unfinished_siblings(
    tmp_path, database_url, redis_url, fail_fast, expected
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/sweep.yml": FAIL_FAST.replace("{fail_fast}", fail_fast)})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await plan_push(sc, repo.bare, sha, "d-ff")
        jobs = await jobs_by_key(sc, event_id, ".labci/sweep.yml")
        await finish(sc, jobs["sweep (0)"], "failure")
        jobs = await jobs_by_key(sc, event_id, ".labci/sweep.yml")
        assert [jobs[f"sweep ({i})"].state for i in range(3)] == expected
        if fail_fast == "true":
            assert jobs["sweep (1)"].reason == "fail-fast: 'sweep (0)' failed"


async def test_max_parallel_caps_queued_instances(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/sweep.yml": FAIL_FAST.replace("{fail_fast}", "false")})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        token = await create_registration_token(sc)
        runner = await register_runner(
            sc, registration_token=token, name="big", labels=["cpu"], slots=8
        )
        await heartbeat(sc, token=runner["runner_token"], running=[], slots=8, labels=["cpu"])
        event_id = await plan_push(sc, repo.bare, sha, "d-mp")
        assert await schedule_jobs(sc) == 2
        jobs = await jobs_by_key(sc, event_id, ".labci/sweep.yml")
        assert sorted(j.state for j in jobs.values()) == ["pending", "queued", "queued"]
        assert await schedule_jobs(sc) == 0  # still two in flight
        queued = [j for j in jobs.values() if j.state == "queued"]
        await finish(sc, queued[0], "success")
        assert await schedule_jobs(sc) == 1


PATHS = """\
name: paths
on:
  push: {paths-ignore: ["docs/**", "*.md"]}
  pull_request: {paths: ["src/**", "!src/**/*.txt"]}
jobs:
  t: {runs-on: cpu, steps: [{run: echo}]}
"""


async def test_path_filters_use_the_changed_files(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    base = repo.commit({".labci/paths.yml": PATHS, "src/model.py": "x = 1\n"})
    docs = repo.commit({"docs/guide.txt": "hello\n", "README.md": "# hi\n"})
    code = repo.commit({"src/model.py": "x = 2\n"})
    txt_only = repo.commit({"src/notes.txt": "n\n"}, branch="notes")
    async with server_context(test_settings(database_url, redis_url)) as sc:

        async def planned(new: NewEvent) -> list[str]:
            event_id = await store_event(sc, new)
            await plan_event(sc, event_id or 0)
            async with sc.sessions() as session:
                return [r.workflow_name for r in await runs_for_event(session, event_id or 0)]

        docs_push = push_event(repo.bare, docs, "p-docs")
        assert await planned(_with(docs_push, base_sha=base)) == []
        code_push = push_event(repo.bare, code, "p-code")
        assert await planned(_with(code_push, base_sha=docs)) == ["paths"]
        # A new branch at that commit: no base, so changes unknown, runs.
        new_branch = push_event(repo.bare, code, "p-new", branch="topic")
        assert await planned(new_branch) == ["paths"]
        pr = _pull_request(repo.bare, txt_only, code, "pr-txt", head="notes")
        assert await planned(pr) == []  # only an excluded file changed


def _with(event: NewEvent, **changes: Any) -> NewEvent:
    from dataclasses import replace

    return replace(event, **changes)


def _pull_request(
    repo: Path, sha: str, base_sha: str, delivery: str, *, head: str, action: str = "opened"
) -> NewEvent:
    return NewEvent(
        delivery_id=delivery,
        provider="git",
        kind="pull_request",
        action=action,
        repo_full_name=str(repo),
        clone_url=str(repo),
        commit_sha=sha,
        branch=head,
        base_branch="main",
        base_sha=base_sha,
        pr_number=3,
    )


TYPES = """\
name: ready
on:
  pull_request: {types: [ready_for_review]}
jobs:
  t: {runs-on: cpu, steps: [{run: echo}]}
"""


@pytest.mark.parametrize(
    ("action", "expected"),
    [("opened", []), ("ready_for_review", ["ready"])],
    ids=["opened", "ready"],
)
async def test_pull_request_types(tmp_path, database_url, redis_url, action, expected):
    repo = make_repo(tmp_path)
    base = repo.commit({".labci/ready.yml": TYPES})
    head = repo.commit({"a.txt": "a"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await store_event(
            sc, _pull_request(repo.bare, head, base, f"pr-{action}", head="feature", action=action)
        )
        await plan_event(sc, event_id or 0)
        async with sc.sessions() as session:
            runs = await runs_for_event(session, event_id or 0)
    assert [r.workflow_name for r in runs] == expected


SWEEP = """\
name: sweep
on:
  workflow_dispatch:
    inputs:
      lr: {type: number, required: true}
      opt: {type: choice, options: [adam, sgd], default: adam}
      runner: {default: cpu}
jobs:
  fit:
    name: fit ${{ inputs.opt }}
    runs-on: ${{ inputs.runner }}
    steps: [{run: "train --lr ${{ inputs.lr }}"}]
"""


async def test_manual_run_renders_inputs_and_bad_inputs_give_an_error_status(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/sweep.yml": SWEEP, ".labci/other.yml": CHAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:

        def dispatch(delivery: str, inputs: dict[str, Any]) -> NewEvent:
            return to_dispatch_event(
                {
                    "delivery_id": delivery,
                    "provider": "git",
                    "repo_full_name": str(repo.bare),
                    "clone_url": str(repo.bare),
                    "branch": "main",
                    "commit_sha": sha,
                    "workflow_path": ".labci/sweep.yml",
                    "inputs": inputs,
                }
            )

        good = await store_event(sc, dispatch("m-1", {"lr": "0.5"}))
        await plan_event(sc, good or 0)
        jobs = await jobs_by_key(sc, good or 0, ".labci/sweep.yml")
        (job,) = jobs.values()
        assert (job.runs_on, job.spec["job"]["name"]) == (["cpu"], "fit adam")
        assert job.spec["inputs"] == {"lr": 0.5, "opt": "adam", "runner": "cpu"}
        async with sc.sessions() as session:
            assert len(await runs_for_event(session, good or 0)) == 1  # only the dispatched file

        bad = await store_event(sc, dispatch("m-2", {"lr": "fast", "typo": "1"}))
        await plan_event(sc, bad or 0)
        async with sc.sessions() as session:
            (run,) = await runs_for_event(session, bad or 0)
        assert run.conclusion == "error"
        assert run.error == (
            ".labci/sweep.yml:1:1: inputs: unknown input 'typo'; input 'lr': 'fast' is not a number"
        )


async def test_workflow_files_refused_by_the_caps_get_error_statuses(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    big = "# " + "x" * (1024 * 1024 + 10) + "\n"
    sha = repo.commit({".labci/big.yml": big, ".labci/ok.yml": CHAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await plan_push(sc, repo.bare, sha, "d-big")
        async with sc.sessions() as session:
            runs = {r.workflow_path: r for r in await runs_for_event(session, event_id)}
        assert runs[".labci/big.yml"].conclusion == "error"
        assert "over the 1 MiB limit" in (runs[".labci/big.yml"].error or "")
        jobs = await jobs_by_key(sc, event_id, ".labci/ok.yml")
        assert jobs["build"].state == "pending"  # its sibling still runs


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"commit_sha": "HEAD"}, "commit_sha must be a full 40-character hexadecimal sha"),
        (
            {"clone_url": "/somewhere/else.git"},
            "a local repository's clone_url is its path: it must equal its name",
        ),
        ({"inputs": {"a": [1]}}, "input values must be strings, numbers or booleans"),
        ({"provider": "gitlab"}, "provider must be one of github, git"),
    ],
    ids=["not-a-sha", "clone-url-elsewhere", "nested-input", "unknown-provider"],
)
def test_dispatch_bodies_are_checked(changes: dict[str, Any], message: str) -> None:
    from labci_server.errors import BadRequest

    body = {
        "delivery_id": "d",
        "provider": "git",
        "repo_full_name": "/srv/r.git",
        "clone_url": "/srv/r.git",
        "branch": "main",
        "commit_sha": "a" * 40,
        "workflow_path": ".labci/x.yml",
        "inputs": {},
        **changes,
    }
    with pytest.raises(BadRequest) as caught:
        to_dispatch_event(body)
    assert str(caught.value) == message


async def test_dispatch_for_an_unknown_github_repository_is_refused(database_url, redis_url):
    from labci_server.errors import BadRequest
    from labci_server.webhooks.dispatch import store_dispatch

    new = NewEvent(
        delivery_id="x",
        provider="github",
        kind="workflow_dispatch",
        action=None,
        repo_full_name="octo/unknown",
        clone_url="/tmp/evil",
        commit_sha="a" * 40,
        branch="main",
        workflow_path=".labci/x.yml",
        inputs={},
    )
    async with server_context(test_settings(database_url, redis_url)) as sc:
        with pytest.raises(BadRequest, match="'octo/unknown' is not known to labci"):
            await store_dispatch(sc, new)


JSON_MATRIX = """\
name: json
on: push
jobs:
  a:
    runs-on: cpu
    strategy: {matrix: {c: ["not json"]}}
    env: {N: "${{ fromJSON(matrix.c) }}"}
    steps: [{run: echo}]
"""


async def test_an_expression_failing_at_planning_breaks_only_its_file(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/json.yml": JSON_MATRIX, ".labci/ok.yml": CHAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await plan_push(sc, repo.bare, sha, "d-json")
        async with sc.sessions() as session:
            runs = {r.workflow_path: r for r in await runs_for_event(session, event_id)}
    assert runs[".labci/json.yml"].conclusion == "error"
    assert "an expression cannot be evaluated" in (runs[".labci/json.yml"].error or "")
    assert runs[".labci/ok.yml"].conclusion is None  # planned, its jobs waiting to run


async def test_a_failure_outranks_the_cancellations_it_causes(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    seeds = (
        "name: train\non: push\njobs:\n  fit:\n    runs-on: cpu\n"
        "    strategy: {matrix: {seed: [0, 1, 2]}}\n    steps: [{run: train}]\n"
        "    metrics: {repeats: seed}\n"
    )
    sha = repo.commit({".labci/train.yml": seeds})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await plan_push(sc, repo.bare, sha, "d-ff-rank")
        jobs = await jobs_by_key(sc, event_id, ".labci/train.yml")
        await finish(sc, jobs["fit (1)"], "failure")
        run = await _run_of(sc, jobs["fit (1)"])
        final = await statuses(sc, run.repository_id, sha)
    assert (run.state, run.conclusion) == ("finished", "failure")
    assert final[("labci/train/fit", "failure")] == ("3 of 3 repeats not passed: it went failure")


SLOW = """\
name: slow
on: [push, pull_request]
jobs:
  a: {runs-on: cpu, steps: [{run: sleep 60}]}
  b: {runs-on: cpu, needs: a, steps: [{run: echo}]}
"""


async def test_an_operator_cancel_stops_every_unfinished_job(tmp_path, database_url, redis_url):
    from labci_server.results.cancel import cancel_run_by_id

    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/slow.yml": SLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        token = await create_registration_token(sc)
        runner = await register_runner(
            sc, registration_token=token, name="r", labels=["cpu"], slots=1
        )
        await heartbeat(sc, token=runner["runner_token"], running=[], slots=1, labels=["cpu"])
        event_id = await plan_push(sc, repo.bare, sha, "d-slow")
        await schedule_jobs(sc)
        jobs = await jobs_by_key(sc, event_id, ".labci/slow.yml")
        assert (jobs["a"].state, jobs["b"].state) == ("queued", "waiting")
        assert await cancel_run_by_id(sc, jobs["a"].run_id, reason="cancelled by alice") == 2
        jobs = await jobs_by_key(sc, event_id, ".labci/slow.yml")
        assert [(j.state, j.reason) for j in jobs.values()] == [
            ("cancelled", "cancelled by alice")
        ] * 2
        answer = await heartbeat(
            sc, token=runner["runner_token"], running=[(jobs["a"].id, 1)], slots=1, labels=["cpu"]
        )
        assert answer["cancel"] == [{"job_id": jobs["a"].id, "attempt": 1}]
        run = await _run_of(sc, jobs["a"])
        final = await statuses(sc, run.repository_id, sha)
    assert run.conclusion == "cancelled"
    assert final[("labci/slow/a", "error")] == "cancelled: cancelled by alice"
    assert final[("labci/slow/b", "error")] == "cancelled: cancelled by alice"


async def test_a_new_head_supersedes_the_old_and_a_late_old_head_runs_nothing(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    base = repo.commit({".labci/slow.yml": SLOW})
    old = repo.commit({"a.txt": "1"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:

        async def deliver(sha: str, delivery: str) -> int:
            event_id = await store_event(
                sc, _pull_request(repo.bare, sha, base, delivery, head="feature")
            )
            return event_id or 0

        first = await deliver(old, "pr-old")
        await plan_event(sc, first)
        new = repo.commit({"a.txt": "2"}, branch="feature")
        second = await deliver(new, "pr-new")
        await plan_event(sc, second)
        old_jobs = await jobs_by_key(sc, first, ".labci/slow.yml")
        assert {j.reason for j in old_jobs.values()} == {f"superseded by {new[:7]}"}
        assert {j.state for j in old_jobs.values()} == {"cancelled"}
        assert {j.state for j in (await jobs_by_key(sc, second, ".labci/slow.yml")).values()} == {
            "pending",
            "waiting",
        }
        # Planned out of order (the worker took the newer event first): the older head,
        # overtaken by a later event of the pull request, runs nothing.
        older = await deliver(old, "pr-3-old")
        newer = await deliver(new, "pr-3-new")
        await plan_event(sc, newer)
        assert await plan_event(sc, older) == []
        async with sc.sessions() as session:
            assert await runs_for_event(session, older) == []
