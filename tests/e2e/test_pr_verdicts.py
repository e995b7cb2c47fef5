"""Verdicts through the whole loop against the GitHub stand-in: a pull request that lowers
accuracy gets a failing status and one comment showing the regression; a second push
updates that comment; `baseline: auto` measures a base that never ran; bad metrics
(reliability E4) end in "metrics invalid: …" with no comparison and no crash. Every
request labci sends is checked against GitHub's OpenAPI description by the stand-in."""

from __future__ import annotations

import time

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
    runs-on: cpu
    strategy: {matrix: {seed: [0, 1, 2]}}
    steps:
      - run: |
          acc=$(python3 -c "import sys; base=float(open('acc.txt').read()); print(base + 0.001 * ${{ matrix.seed }})")
          echo "{\\"acc\\": $acc, \\"loss\\": 0.231}" > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
      repeats: seed
      compare:
        acc: {goal: max, tolerance: 0.005}
        loss: {goal: min, tolerance: 5%, gate: false}
"""


def final(statuses, context):
    return [s for s in statuses if s["context"] == context and s["state"] != "pending"]


def open_pr(stack, github, repo, number, head_ref, head, base, delivery, action="opened"):
    payload = pull_request_payload(
        action, "octo", "exp", repo.clone_url, number, head_ref, head, "main", base
    )
    assert stack.deliver("pull_request", payload, delivery).status_code == 202


def wait_for_comment(github, number, predicate, what, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        comments = github.standin.comments("octo", "exp", number)
        if comments and predicate(comments):
            return comments
        time.sleep(0.2)
    raise AssertionError(
        f"timed out waiting for {what}: {github.standin.comments('octo', 'exp', number)}"
    )


def test_a_regressing_pull_request_fails_and_one_comment_follows_it(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/train.yml": TRAIN, "acc.txt": "0.910"})
    worse = repo.commit({"acc.txt": "0.850"}, branch="feature")
    github.standin.open_pull_request("octo", "exp", 12, head_ref="feature", base_ref="main")
    stack.start_all()

    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, base)
    assert stack.deliver("push", push, "push-base").status_code == 202
    on_base = wait_for_statuses(
        github.standin, ("octo", "exp", base), lambda s: final(s, "labci/train/fit"), "base"
    )
    assert final(on_base, "labci/train/fit")[0]["description"] == (
        "acc 0.911 · loss 0.231 · mean of 3 · no baseline"
    )

    open_pr(stack, github, repo, 12, "feature", worse, base, "pr-open")
    statuses = wait_for_statuses(
        github.standin, ("octo", "exp", worse), lambda s: final(s, "labci/train/fit"), "head"
    )
    (fit,) = final(statuses, "labci/train/fit")
    assert fit["state"] == "failure"
    assert fit["description"] == "acc 0.851 (−0.06) · loss 0.231 (±0) · 1 regression · mean of 3"
    (comment,) = wait_for_comment(github, 12, lambda c: worse[:7] in c[0]["body"], "the comment")
    body = comment["body"]
    assert body.startswith("<!-- labci:pr-comment -->")
    acc_row = next(line for line in body.splitlines() if line.startswith("| `acc`"))
    assert "**regressed**" in acc_row
    assert "0.911 ± 0.001 (n=3)" in acc_row
    assert "0.851 ± 0.001 (n=3)" in acc_row
    assert "< 0.001" in acc_row  # Welch's t-test on the three seeds
    assert "worse by more than the tolerance 0.005" in acc_row
    assert fit["target_url"] in body

    fixed = repo.commit({"acc.txt": "0.912"}, branch="feature")
    open_pr(stack, github, repo, 12, "feature", fixed, base, "pr-sync", action="synchronize")
    statuses = wait_for_statuses(
        github.standin, ("octo", "exp", fixed), lambda s: final(s, "labci/train/fit"), "fixed"
    )
    (fit,) = final(statuses, "labci/train/fit")
    assert fit["state"] == "success"
    comments = wait_for_comment(
        github, 12, lambda c: fixed[:7] in c[0]["body"], "the updated comment"
    )
    assert len(comments) == 1  # updated in place, never a second comment
    assert comments[0]["id"] == comment["id"]
    assert "regressed" not in comments[0]["body"]


def test_baseline_auto_gives_a_verdict_on_a_base_that_never_ran(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/train.yml": TRAIN, "acc.txt": "0.910"})
    better = repo.commit({"acc.txt": "0.950"}, branch="feature")
    github.standin.open_pull_request("octo", "exp", 3, head_ref="feature", base_ref="main")
    stack.start_all()
    open_pr(stack, github, repo, 3, "feature", better, base, "pr-auto")
    statuses = wait_for_statuses(
        github.standin, ("octo", "exp", better), lambda s: final(s, "labci/train/fit"), "verdict"
    )
    (fit,) = final(statuses, "labci/train/fit")
    assert fit["state"] == "success"
    assert fit["description"] == "acc 0.951 (+0.04) · loss 0.231 (±0) · mean of 3"
    # The base was measured once, as a baseline run of the jobs with metrics.
    runs = stack.wait_for_runs_finished(base, 1)
    assert [r["run"]["trigger"] for r in runs] == ["baseline"]
    (comment,) = wait_for_comment(github, 3, lambda c: "improved" in c[0]["body"], "comment")
    assert f"base commit `{base[:7]}`" in comment["body"]


BAD_METRICS = """\
name: bad
on: push
jobs:
  nan:
    runs-on: cpu
    steps: [{run: "echo '{\\"acc\\": NaN}' > $LABCI_OUTPUT/m.json"}]
    metrics: {file: m.json, compare: {acc: {goal: max}}}
  huge:
    runs-on: cpu
    steps: [{run: "head -c 10485760 /dev/zero | tr '\\\\0' ' ' > $LABCI_OUTPUT/m.json"}]
    metrics: {file: m.json, compare: {acc: {goal: max}}}
  deep:
    runs-on: cpu
    steps:
      - run: python3 -c "print('[' * 100000 + ']' * 100000)" > "$LABCI_OUTPUT/m.json"
    metrics: {file: m.json, compare: {acc: {goal: max}}}
  words:
    runs-on: cpu
    steps: [{run: "echo '{\\"acc\\": \\"high\\"}' > $LABCI_OUTPUT/m.json"}]
    metrics: {file: m.json, compare: {acc: {goal: max}}}
"""


def test_bad_metrics_end_as_metrics_invalid_without_a_comparison(stack, github):
    """Reliability E4."""
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/bad.yml": BAD_METRICS})
    stack.start_all()
    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    stack.deliver("push", push, "push-bad")
    contexts = [f"labci/bad/{job}" for job in ("nan", "huge", "deep", "words")]
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "exp", sha),
        lambda s: all(final(s, c) for c in contexts),
        "the four verdicts",
    )
    for context in contexts:
        (status,) = final(statuses, context)
        assert status["state"] == "error", status
        assert status["description"].startswith("metrics invalid: "), status
    (run,) = stack.wait_for_runs_finished(sha, 1)
    assert all(job["metrics"] == {} for job in run["jobs"])
    assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200


NOISY = """\
name: noisy
on:
  push: {branches: [main]}
  pull_request: {branches: [main]}
jobs:
  fit:
    runs-on: cpu
    strategy: {matrix: {seed: [0, 1, 2, 3, 4]}}
    steps:
      - run: |
          acc=$(python3 -c "print(open('acc.txt').read().split(',')[${{ matrix.seed }}])")
          echo "{\\"acc\\": $acc}" > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
      repeats: seed
      compare:
        acc: {goal: max, tolerance: 0.005}
"""


def test_noise_without_a_real_change_is_not_a_regression(stack, github):
    """Five seeds whose mean is 0.01 lower, within their own spread: not `regressed`."""
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/noisy.yml": NOISY, "acc.txt": "0.90,0.93,0.88,0.92,0.89"})
    head = repo.commit({"acc.txt": "0.89,0.93,0.86,0.91,0.88"}, branch="feature")
    github.standin.open_pull_request("octo", "exp", 14, head_ref="feature", base_ref="main")
    stack.start_all()
    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, base)
    assert stack.deliver("push", push, "push-base").status_code == 202
    wait_for_statuses(
        github.standin, ("octo", "exp", base), lambda s: final(s, "labci/noisy/fit"), "base"
    )
    open_pr(stack, github, repo, 14, "feature", head, base, "pr-open")
    statuses = wait_for_statuses(
        github.standin, ("octo", "exp", head), lambda s: final(s, "labci/noisy/fit"), "head"
    )
    (fit,) = final(statuses, "labci/noisy/fit")
    assert fit["state"] == "success"
    assert "regression" not in fit["description"]
    (comment,) = wait_for_comment(github, 14, lambda c: head[:7] in c[0]["body"], "the comment")
    acc_row = next(line for line in comment["body"].splitlines() if line.startswith("| `acc`"))
    cells = [cell.strip() for cell in acc_row.strip(" |").split(" | ")]
    assert cells[5] == "inconclusive (no evidence either way)"
    assert cells[1].startswith("0.904 ± ")
    assert "(n=5)" in cells[1]
    assert float(cells[6]) > 0.05  # the one-sided p of "worse by more than 0.005"
    assert cells[7].startswith("Welch's t-test, n = 5 vs 5; no evidence either way at ±0.005")
