"""Automatic bisection through the whole loop (real server, worker and runner, the GitHub
stand-in): four pushes to main measure the old level; one push of five commits brings a
regression in its middle commit; three more pushes hold the new level, and the change point
shows. labci lists the five commits through GitHub's compare API, runs the job on midpoints
until it has the first commit at the new level, comments on that commit with the effect and
the runs that prove it, and lists the bisection in the metric's history.

Each job prints acc = the level in `level.txt` plus Gaussian noise (σ 0.002) seeded by
`salt.txt`, so every figure is reproducible."""

from __future__ import annotations

from forge_standin import create_bare_repo, push_payload
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

WORKFLOW = """\
name: train
on:
  push: {branches: [main]}
jobs:
  fit:
    runs-on: cpu
    steps:
      - run: python3 gen.py > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
      compare:
        acc: {goal: max, tolerance: 0.005}
"""
GEN = """\
import json, random
level = float(open("level.txt").read())
salt = open("salt.txt").read().strip()
print(json.dumps({"acc": level + random.Random(salt).gauss(0, 0.002)}))
"""
CONTEXT = "labci/train/fit"
ZERO = "0" * 40


def final(statuses):
    return [s for s in statuses if s["context"] == CONTEXT and s["state"] != "pending"]


def test_a_regression_pushed_among_several_commits_is_bisected_to_its_commit(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    files = {".labci/train.yml": WORKFLOW, "gen.py": GEN, "level.txt": "0.90", "salt.txt": "s0"}
    head = repo.commit(files, "the experiment")
    stack.start_all()
    before = ZERO

    def push(after: str, n: int) -> None:
        nonlocal before
        payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", before, after)
        assert stack.deliver("push", payload, f"push-{n}").status_code == 202
        before = after
        wait_for_statuses(github.standin, ("octo", "exp", after), final, f"push {n}'s status")

    push(head, 0)
    for n in range(1, 4):
        good = repo.commit({"salt.txt": f"s{n}"}, f"old {n}")
        push(good, n)
    # One push of five commits; the third lowers the level.
    batch = [
        repo.commit({"salt.txt": "a1"}, "a1"),
        repo.commit({"salt.txt": "a2"}, "a2"),
        repo.commit({"salt.txt": "a3", "level.txt": "0.85"}, "a3: the regression"),
        repo.commit({"salt.txt": "a4"}, "a4"),
        repo.commit({"salt.txt": "a5"}, "a5"),
    ]
    push(batch[-1], 4)
    for n in range(5, 8):
        push(repo.commit({"salt.txt": f"s{n}"}, f"new {n}"), n)

    def commented() -> list[dict]:
        return github.standin.commit_comments("octo", "exp", batch[2])

    wait_until(commented, what="the bisection's comment on the regressing commit")
    (comment,) = commented()
    body = comment["body"]
    assert body.startswith("<!-- labci:bisection-")
    assert "this commit changed `acc`" in body
    assert "**regressed**" in body
    assert f"parent `{batch[1][:7]}`" in body
    # Only that commit got a comment; the others of the push none.
    for sha in (*batch[:2], *batch[3:]):
        assert github.standin.commit_comments("octo", "exp", sha) == []

    history = stack.api("/api/v1/repos/octo/exp/metrics?workflow=train&job=fit&metric=acc")
    (bisection,) = history["bisections"]
    assert (bisection["state"], bisection["commit"], bisection["parent_commit"]) == (
        "found",
        batch[2],
        batch[1],
    )
    assert (bisection["before_commit"], bisection["after_commit"]) == (good, batch[-1])
    assert bisection["commits_between"] == 4
    # Midpoints a2 (old), then a3 (new): two bisection runs, linked from the comment.
    assert [(s["commit"], s["level"]) for s in bisection["steps"]] == [
        (batch[1], "old"),
        (batch[2], "new"),
    ]
    assert bisection["runs_started"] == 2
    effect = bisection["effect"]
    assert effect["verdict"] == "regressed"
    low, high = effect["interval"]
    assert low < effect["delta"] < high < -0.04
    for proof in bisection["runs"]:
        assert f"({proof['url']})" in body
    # The midpoints' runs were `baseline` runs of the fit job, at those commits.
    for step in bisection["steps"]:
        (run,) = stack.runs_for_commit(step["commit"])
        assert (run["run"]["trigger"], run["run"]["branch"]) == ("baseline", "main")
