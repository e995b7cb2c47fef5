"""The whole loop with real processes: webhook → plan → schedule → runner → status."""

from __future__ import annotations

import concurrent.futures

import httpx

from forge_standin import create_bare_repo, pull_request_payload, push_payload
from helpers.stack import wait_for_statuses

TRAIN = """\
name: train
on:
  push: {branches: [main]}
  pull_request: {branches: [main]}
jobs:
  fit:
    runs-on: [cpu]
    timeout-minutes: 5
    steps:
      - name: prepare
        run: echo "preparing $LABCI_EVENT on $LABCI_BRANCH"
      - name: train
        run: |
          echo "training"
          echo '{"accuracy": 0.912, "loss": 0.231}' > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
"""

FAILING = """\
name: check
on: [push, pull_request]
jobs:
  lint:
    runs-on: cpu
    steps:
      - run: echo "about to fail" && exit 3
      - run: echo "never runs"
"""

BROKEN = "name: broken\non: push\njobs:\n  x:\n    runs-on: cpu\n    steps:\n      - run: echo\n\tbad: tab\n"


def terminal(statuses, context):
    return [s for s in statuses if s["context"] == context and s["state"] != "pending"]


def test_push_and_pull_request_get_statuses_with_metrics(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit(
        {".labci/train.yml": TRAIN, ".labci/check.yml": FAILING, ".labci/broken.yml": BROKEN}
    )
    head = repo.commit({"model.py": "x = 1\n"}, branch="feature")
    github.standin.open_pull_request("octo", "exp", 7, head_ref="feature", base_ref="main")
    stack.start_all()

    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", base)
    assert stack.deliver("push", push, "push-1").status_code == 202
    pr = pull_request_payload(
        "opened", "octo", "exp", repo.clone_url, 7, "feature", head, "main", base
    )
    assert stack.deliver("pull_request", pr, "pr-1").status_code == 202
    redelivered = stack.deliver("pull_request", pr, "pr-1")
    assert redelivered.json() == {"event_id": None, "duplicate": True}

    for sha in (base, head):
        statuses = wait_for_statuses(
            github.standin,
            ("octo", "exp", sha),
            lambda s: terminal(s, "labci/train/fit") and terminal(s, "labci/check/lint"),
            f"final statuses on {sha[:7]}",
        )
        (fit,) = terminal(statuses, "labci/train/fit")
        # Without `compare` nothing waits for the base: whichever finished first decides
        # whether the pull request's status shows the (zero) change.
        assert (fit["state"], fit["description"]) in {
            ("success", "accuracy 0.912 · loss 0.231"),
            ("success", "accuracy 0.912 (±0) · loss 0.231 (±0)"),
        }
        assert fit["target_url"].startswith(stack.url + "/runs/")
        (lint,) = terminal(statuses, "labci/check/lint")
        assert lint["state"] == "failure"
        assert "exit" in lint["description"] or "failed" in lint["description"]
        pendings = [s for s in statuses if s["state"] == "pending"]
        assert {s["context"] for s in pendings} <= {"labci/train/fit", "labci/check/lint"}

    base_statuses = github.standin.statuses[("octo", "exp", base)]
    (broken,) = [s for s in base_statuses if s["context"] == "labci/broken"]
    assert broken["state"] == "error"
    assert broken["description"].startswith(".labci/broken.yml:8:")

    runs = stack.wait_for_runs_finished(head, 3)
    # train, check and the broken file's error run; the redelivery made no second set
    assert sorted(r["run"]["workflow_name"] for r in runs) == ["broken", "check", "train"]
    fit_run = next(r for r in runs if r["run"]["workflow_name"] == "train")
    (job,) = fit_run["jobs"]
    assert job["metrics"] == {"accuracy": 0.912, "loss": 0.231}
    assert [s["status"] for s in job["steps"]] == ["success", "success"]
    texts = [line["text"] for line in job["logs"]]
    assert "preparing pull_request on feature" in texts
    assert "training" in texts
    page = httpx.get(fit["target_url"], timeout=10).text
    assert "accuracy" in page
    assert "preparing pull_request on feature" in page
    lint_run = next(r for r in runs if r["run"]["workflow_name"] == "check")
    assert [s["status"] for s in lint_run["jobs"][0]["steps"]] == ["failure", "skipped"]


def test_one_delivery_sent_fifty_times_and_after_a_restart_runs_once(stack, github):
    """Reliability A4."""
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/train.yml": TRAIN})
    stack.start_server()
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", base)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda _: stack.deliver("push", payload, "same-id"), range(50)))
    assert all(r.status_code == 202 for r in replies)
    assert sum(1 for r in replies if not r.json()["duplicate"]) == 1
    stack.stop("server")
    stack.start_server()
    assert stack.deliver("push", payload, "same-id").json()["duplicate"] is True
    stack.start_worker()
    stack.start_runner()
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "exp", base),
        lambda s: terminal(s, "labci/train/fit"),
        "the final status",
    )
    runs = stack.wait_for_runs_finished(base, 1)
    assert len(runs) == 1
    per_state = [(s["context"], s["state"]) for s in statuses]
    assert sorted(per_state) == sorted(set(per_state))
