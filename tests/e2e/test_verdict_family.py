"""Five gated metrics and adaptive repeats through the whole loop (real server, worker and
runner, the GitHub stand-in): a pull request with no real change passes and adds no seed;
one with a real regression on one metric is doubtful at the first look, gets seeds added
on both sides, fails naming that metric, and the next pull request on the same base
reuses the base's added seeds.

Each job prints five metrics: 0.9 + a shift (`shift.json`) + Gaussian noise (σ 0.01)
seeded by the seed, the metric and a per-commit salt, so every figure is reproducible."""

from __future__ import annotations

import json

from forge_standin import create_bare_repo, pull_request_payload, push_payload
from helpers.stack import wait_for_statuses

WORKFLOW = """\
name: family
on:
  push: {branches: [main]}
  pull_request: {branches: [main]}
jobs:
  fit:
    runs-on: cpu
    strategy: {matrix: {seed: [0, 1, 2, 3]}}
    steps:
      - run: python3 gen.py ${{ matrix.seed }} > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
      repeats: {axis: seed, max: 8}
      compare:
        m0: {goal: max, tolerance: 0.02}
        m1: {goal: max, tolerance: 0.02}
        m2: {goal: max, tolerance: 0.02}
        m3: {goal: max, tolerance: 0.02}
        m4: {goal: max, tolerance: 0.02}
"""
GEN = """\
import json, random, sys
seed = int(sys.argv[1])
salt = open("salt.txt").read().strip()
shift = json.load(open("shift.json"))
out = {}
for i in range(5):
    draw = random.Random(f"{salt}-{seed}-{i}")
    out[f"m{i}"] = 0.9 + shift.get(f"m{i}", 0.0) + draw.gauss(0, 0.01)
print(json.dumps(out))
"""
CONTEXT = "labci/family/fit"


def final(statuses, context=CONTEXT):
    return [s for s in statuses if s["context"] == context and s["state"] != "pending"]


def job_keys(stack, sha: str) -> list[str]:
    runs = stack.wait_for_runs_finished(sha, 1)
    return sorted(job["job"]["job_key"] for run in runs for job in run["jobs"])


def open_pr(stack, repo, number, head, base, delivery, action="opened"):
    payload = pull_request_payload(
        action, "octo", "exp", repo.clone_url, number, "feature", head, "main", base
    )
    assert stack.deliver("pull_request", payload, delivery).status_code == 202


def test_five_gated_metrics_no_change_passes_and_a_real_regression_fails_after_more_seeds(
    stack, github
):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit(
        {".labci/family.yml": WORKFLOW, "gen.py": GEN, "salt.txt": "base", "shift.json": "{}"}
    )
    same = repo.commit({"salt.txt": "same"}, branch="feature")
    github.standin.open_pull_request("octo", "exp", 21, head_ref="feature", base_ref="main")
    stack.start_all()
    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, base)
    assert stack.deliver("push", push, "push-base").status_code == 202
    wait_for_statuses(github.standin, ("octo", "exp", base), final, "the base's status")

    # No real change: five gated metrics, no false failure, no seed added.
    open_pr(stack, repo, 21, same, base, "pr-same")
    statuses = wait_for_statuses(github.standin, ("octo", "exp", same), final, "no change")
    (fit,) = final(statuses)
    assert fit["state"] == "success", fit
    assert "regression" not in fit["description"]
    assert job_keys(stack, same) == [f"fit ({seed})" for seed in range(4)]
    comments = github.standin.comments("octo", "exp", 21)
    assert "Holm-adjusted across its 5 gated metrics" in comments[0]["body"]

    # A real regression on m2 (0.025 beyond its tolerance): doubtful with 4 seeds at the
    # first look, so 4 more on each side; then it fails, naming m2.
    worse = repo.commit(
        {"salt.txt": "worse", "shift.json": json.dumps({"m2": -0.045})}, branch="feature"
    )
    open_pr(stack, repo, 21, worse, base, "pr-worse", action="synchronize")
    statuses = wait_for_statuses(github.standin, ("octo", "exp", worse), final, "the regression")
    (fit,) = final(statuses)
    assert fit["state"] == "failure", fit
    assert fit["description"].startswith("m2 ")
    assert "1 regression · mean of 8" in fit["description"]
    all_seeds = [f"fit ({seed})" for seed in range(8)]
    assert job_keys(stack, worse) == all_seeds
    assert job_keys(stack, base) == all_seeds  # the base's run got the same seeds
    body = github.standin.comments("octo", "exp", 21)[0]["body"]
    m2_row = next(line for line in body.splitlines() if line.startswith("| `m2`"))
    assert "**regressed**" in m2_row
    assert "(n=8)" in m2_row
    assert "Adaptive repeats: decided at the second" in body

    # The next push to the pull request: the base already has 8 seeds, and keeps them.
    again = repo.commit({"salt.txt": "worse2"}, branch="feature")
    open_pr(stack, repo, 21, again, base, "pr-again", action="synchronize")
    statuses = wait_for_statuses(github.standin, ("octo", "exp", again), final, "the next head")
    (fit,) = final(statuses)
    assert fit["state"] == "failure", fit
    assert job_keys(stack, again) == [f"fit ({seed})" for seed in range(4)]
    assert job_keys(stack, base) == all_seeds
