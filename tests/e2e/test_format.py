"""The workflow format through the whole loop, with real processes and the GitHub stand-in:
path filters, a `needs` chain, broken files next to valid ones (E1, D7), metrics from CSV
files and `::metric` lines, and a manual run started with `labci dispatch`."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from forge_standin import create_bare_repo, pull_request_payload, push_payload
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until
from labci_server.db.engine import make_engine, make_sessionmaker
from labci_server.db.queries.events import get_event

PATHS = """\
name: train
on:
  push: {branches: [main]}
  pull_request: {paths-ignore: ["docs/**", "*.md"]}
jobs:
  fit:
    runs-on: cpu
    steps:
      - run: |
          echo "epoch,loss,acc" > "$LABCI_OUTPUT/log.csv"
          echo "1,0.9,0.5" >> "$LABCI_OUTPUT/log.csv"
          echo "2,0.4,0.8" >> "$LABCI_OUTPUT/log.csv"
          echo "::metric name=throughput::123"
    metrics:
      file: log.csv
"""

CHAIN = """\
name: bench
on: push
jobs:
  build:
    runs-on: cpu
    steps: [{run: "sleep 0.3 && echo built"}]
  bench:
    runs-on: cpu
    needs: build
    steps: [{run: "echo '::metric name=ops::42'"}]
  report:
    runs-on: cpu
    needs: [build, bench]
    if: always()
    steps: [{run: "echo report"}]
"""


def terminal(statuses, context):
    return [s for s in statuses if s["context"] == context and s["state"] != "pending"]


async def _event_state(database_url: str, event_id: int) -> str | None:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            event = await get_event(session, event_id)
            return event.state if event else None
    finally:
        await engine.dispose()


def test_pull_request_touching_only_ignored_paths_starts_nothing(stack, github, database_url):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/train.yml": PATHS, "train.py": "print(1)\n"})
    docs = repo.commit({"docs/guide.md": "# guide\n", "README.md": "# readme\n"}, branch="docs")
    code = repo.commit({"train.py": "print(2)\n"}, branch="code")
    github.standin.open_pull_request("octo", "exp", 1, head_ref="docs", base_ref="main")
    github.standin.open_pull_request("octo", "exp", 2, head_ref="code", base_ref="main")
    stack.start_all()

    def pr(number: int, head: str, sha: str) -> dict:
        return pull_request_payload(
            "opened", "octo", "exp", repo.clone_url, number, head, sha, "main", base
        )

    docs_reply = stack.deliver("pull_request", pr(1, "docs", docs), "pr-docs").json()
    stack.deliver("pull_request", pr(2, "code", code), "pr-code")
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "exp", code),
        lambda s: terminal(s, "labci/train/fit"),
        "the code pull request's status",
    )
    (fit,) = terminal(statuses, "labci/train/fit")
    assert (fit["state"], fit["description"]) == (
        "success",
        "acc 0.8 · epoch 2 · loss 0.4 · throughput 123",
    )
    wait_until(
        lambda: asyncio.run(_event_state(database_url, docs_reply["event_id"])) == "planned",
        what="the docs pull request to be planned",
    )
    assert stack.runs_for_commit(docs) == []
    assert github.standin.statuses.get(("octo", "exp", docs), []) == []


def test_needs_chain_runs_in_order(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/bench.yml": CHAIN})
    stack.start_all(runners=2)  # two runners: only `needs` keeps the jobs apart
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-chain")
    (run,) = stack.wait_for_runs_finished(sha, 1)
    jobs = {j["job"]["job_key"]: j for j in run["jobs"]}
    build, bench, report = (jobs[k]["job"] for k in ("build", "bench", "report"))
    assert [build["state"], bench["state"], report["state"]] == ["success"] * 3
    assert bench["started_at"] >= build["finished_at"]
    assert report["started_at"] >= bench["finished_at"]
    assert jobs["bench"]["metrics"] == {"ops": 42.0}
    statuses = github.standin.statuses[("octo", "exp", sha)]
    pending = [
        s for s in statuses if s["context"] == "labci/bench/report" and s["state"] == "pending"
    ]
    assert [s["description"] for s in pending] == ["waiting for build, bench"]


BROKEN = {
    ".labci/tabs.yml": "on: push\njobs:\n  a:\n\truns-on: cpu\n",
    ".labci/quote.yml": "on: push\njobs:\n  a:\n    runs-on: 'cpu\n    steps: [{run: x}]\n",
    ".labci/dup.yml": "on: push\njobs:\n  a:\n    runs-on: cpu\n    runs-on: gpu\n    steps: [{run: x}]\n",
    ".labci/types.yml": "on: push\njobs:\n  a:\n    runs-on: cpu\n    timeout-minutes: soon\n    steps: [{run: x}]\n",
    ".labci/unknown.yml": "on: push\njobs:\n  a:\n    runs-on: cpu\n    step: [{run: x}]\n",
    ".labci/inject.yml": (
        "on: push\njobs:\n  a:\n    runs-on: cpu\n    steps:\n"
        '      - run: touch "$LABCI_OUTPUT/ran"\n'
        '      - run: echo "${{ github.event.head_commit.message }}"\n'
    ),
}
EXPECTED = {
    "labci/tabs": ".labci/tabs.yml:4:1: invalid YAML: ",
    "labci/quote": ".labci/quote.yml:4:14: invalid YAML: this quoted string is never closed",
    "labci/dup": ".labci/dup.yml:5:5: duplicate key 'runs-on' (first defined on line 4)",
    "labci/types": ".labci/types.yml:5:22: jobs.a.timeout-minutes: expected an integer",
    "labci/unknown": ".labci/unknown.yml:5:5: jobs.a: unknown key 'step' (did you mean 'steps'?)",
    "labci/inject": ".labci/inject.yml:7:24: jobs.a.steps[1].run: `github.event.head_commit.message`",
}
GOOD = "name: good\non: push\njobs:\n  ok:\n    runs-on: cpu\n    steps: [{run: echo fine}]\n"


def test_broken_files_get_located_error_statuses_and_siblings_still_run(stack, github):
    """Reliability E1 and D7 through the loop."""
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({**BROKEN, ".labci/good.yml": GOOD})
    stack.start_all()
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-broken")
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "exp", sha),
        lambda s: terminal(s, "labci/good/ok") and all(terminal(s, c) for c in EXPECTED),
        "a status for every file",
    )
    for context, prefix in EXPECTED.items():
        (status,) = terminal(statuses, context)
        assert status["state"] == "error"
        assert status["description"].startswith(prefix), status["description"]
        assert len(status["description"]) <= 140
    (good,) = terminal(statuses, "labci/good/ok")
    assert good["state"] == "success"
    runs = stack.wait_for_runs_finished(sha, len(BROKEN) + 1)
    inject = next(r for r in runs if r["run"]["workflow_path"] == ".labci/inject.yml")
    assert inject["jobs"] == []  # nothing of the refused workflow ran

    fixed = repo.commit({path: GOOD.replace("good", path.split("/")[1][:-4]) for path in BROKEN})
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", sha, fixed)
    stack.deliver("push", payload, "push-fixed")
    after = wait_for_statuses(
        github.standin,
        ("octo", "exp", fixed),
        lambda s: all(terminal(s, f"{c}/ok") for c in EXPECTED),
        "the fixed files' statuses",
    )
    assert {s["state"] for s in after if s["state"] != "pending"} == {"success"}


SWEEP = """\
name: sweep
on:
  workflow_dispatch:
    inputs:
      lr: {type: number, required: true}
      opt: {type: choice, options: [adam, sgd], default: sgd}
jobs:
  fit:
    runs-on: cpu
    steps:
      - run: echo "lr=${{ inputs.lr }} opt=${{ inputs.opt }}"
"""


def dispatch(stack, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labci_server.cli", "dispatch", "--repo", "octo/exp", *args],
        env=stack.env(LABCI_API_TOKEN=token or stack.admin_token),
        capture_output=True,
        text=True,
        check=False,
    )


def test_manual_run_with_inputs(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/sweep.yml": SWEEP, ".labci/good.yml": GOOD})
    stack.start_all()
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-known")  # labci learns the repository from a webhook
    wait_for_statuses(
        github.standin, ("octo", "exp", sha), lambda s: terminal(s, "labci/good/ok"), "the push"
    )

    bad = dispatch(stack, "--workflow", "sweep.yml", "-i", "lr=fast")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "labci dispatch: sweep.yml: input 'lr': 'fast' is not a number"
    missing = dispatch(stack, "--workflow", "nope.yml")
    assert missing.returncode == 2
    assert "no .labci/nope.yml at main" in missing.stderr

    # A reader may not start runs; a writer may (dispatch needs write on the repository).
    reader = stack.make_user("reader", scope="write")
    stack.cli("repos", "grant", "octo/exp", "reader", "read")
    refused = dispatch(stack, "--workflow", "sweep.yml", "-i", "lr=0.5", token=reader)
    assert refused.returncode == 2
    assert "reader has read permission on octo/exp, not write" in refused.stderr
    done = dispatch(stack, "--workflow", "sweep.yml", "-i", "lr=0.5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"dispatched .labci/sweep.yml (sweep) at main ({sha[:7]}) with lr=0.5, opt=sgd → event "
    )
    statuses = wait_for_statuses(
        github.standin, ("octo", "exp", sha), lambda s: terminal(s, "labci/sweep/fit"), "the run"
    )
    assert terminal(statuses, "labci/sweep/fit")[0]["state"] == "success"
    runs = stack.wait_for_runs_finished(sha, 2)
    sweep = next(r for r in runs if r["run"]["workflow_name"] == "sweep")
    assert sweep["run"]["trigger"] == "workflow_dispatch"
    texts = [line["text"] for line in sweep["jobs"][0]["logs"]]
    assert "lr=0.5 opt=sgd" in texts


CACHED = """\
name: data
on: push
jobs:
  prep:
    runs-on: cpu
    cache:
      paths: [data]
      key: ds-${{ hashFiles('requirements.txt') }}
    steps:
      - run: |
          if [ -f data/ds.txt ]; then echo "dataset from cache"; else
            mkdir -p data && echo rows > data/ds.txt && echo "dataset downloaded"; fi
"""


def test_cache_keeps_a_dataset_between_pushes(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    first = repo.commit({".labci/data.yml": CACHED, "requirements.txt": "numpy\n"})
    second = repo.commit({"train.py": "print(1)\n"})
    stack.start_all()
    for before, sha, delivery in (("0" * 39 + "1", first, "c-1"), (first, second, "c-2")):
        payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", before, sha)
        stack.deliver("push", payload, delivery)
        stack.wait_for_runs_finished(sha, 1)
    logs = {}
    for sha in (first, second):
        (run,) = stack.wait_for_runs_finished(sha, 1)
        logs[sha] = [line["text"] for line in run["jobs"][0]["logs"]]
    assert "dataset downloaded" in logs[first]
    assert any(t.startswith("cache miss: key 'ds-") for t in logs[first])
    assert any(t.startswith("cache saved: key 'ds-") for t in logs[first])
    assert "dataset from cache" in logs[second]
    assert any(t.startswith("cache restored: key 'ds-") for t in logs[second])
