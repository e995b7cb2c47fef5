"""Reliability B3: SIGTERM drains a runner. It takes no new job; a job that ends within
LABCI_RUNNER_DRAIN_GRACE_S finishes there and is reported once; a longer one is stopped,
handed back, and completes on another runner as attempt 2, with one final status."""

from __future__ import annotations

import signal
from pathlib import Path

from forge_standin import create_bare_repo, push_payload
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

SHORT = """\
name: short
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          echo started
          while [ ! -e "$LABCI_OUTPUT/../../go" ]; do sleep 0.05; done
          echo "finished on attempt $LABCI_ATTEMPT"
"""
LONG = """\
name: long
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          echo "started attempt $LABCI_ATTEMPT"
          if [ "$LABCI_ATTEMPT" = 1 ]; then sleep 613; fi
          echo "finished on attempt $LABCI_ATTEMPT"
"""


def start_job(stack, github, workflow: str, name: str) -> tuple[str, object]:
    repo = create_bare_repo(github.repos_root, "octo", name)
    sha = repo.commit({f".labci/{name}.yml": workflow})
    payload = push_payload("octo", name, repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, f"drain-{name}").status_code == 202

    def job():
        runs = stack.runs_for_commit(sha)
        return stack.api(f"/api/v1/runs/{runs[0]['run']['id']}")["jobs"][0] if runs else None

    wait_until(
        lambda: (j := job()) and any(line["text"].startswith("started") for line in j["logs"]),
        what="the step to start",
    )
    return sha, job


def sleeping_steps() -> list[str]:
    """Processes running LONG's attempt-1 step."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == b"sleep\x00613\x00":
                found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


def terminal(statuses: list[dict]) -> list[str]:
    return [s["state"] for s in statuses if s["state"] != "pending"]


def test_a_job_within_the_grace_finishes_and_is_reported_once(stack, github):
    stack.start_server()
    stack.start_worker()
    stack.start_runner("leaving", LABCI_RUNNER_DRAIN_GRACE_S="120")
    sha, job = start_job(stack, github, SHORT, "short")
    runner = stack.procs["leaving"]
    runner.send_signal(signal.SIGTERM)
    wait_until(lambda: "draining" in stack.log("leaving"), what="the runner to drain")
    (stack.root / "leaving" / "jobs" / "go").touch()  # the step ends only now, mid-drain
    assert runner.wait(timeout=120) == 0
    statuses = wait_for_statuses(
        github.standin, ("octo", "short", sha), terminal, "the final status"
    )
    final = job()
    assert terminal(statuses) == ["success"]
    assert (final["job"]["state"], final["job"]["attempt"]) == ("success", 1)
    assert "finished on attempt 1" in [line["text"] for line in final["logs"]]


def test_a_longer_job_is_handed_back_and_completes_elsewhere(stack, github):
    stack.start_server()
    stack.start_worker()
    stack.start_runner("leaving", LABCI_RUNNER_DRAIN_GRACE_S="1", LABCI_RUNNER_KILL_GRACE_S="1")
    sha, job = start_job(stack, github, LONG, "long")
    stack.start_runner("staying")
    runner = stack.procs["leaving"]
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=120) == 0
    assert "handed back: the runner was stopped before the job finished" in stack.log("leaving")
    statuses = wait_for_statuses(
        github.standin, ("octo", "long", sha), terminal, "the final status"
    )
    final = job()
    assert terminal(statuses) == ["success"]
    assert (final["job"]["state"], final["job"]["attempt"]) == ("success", 2)
    texts = [line["text"] for line in final["logs"]]
    assert "finished on attempt 2" in texts
    assert not sleeping_steps()  # attempt 1's step went with the drained runner
