"""Reliability B12 through the loop: an operator's cancel and a pull request's new head
stop a running job — SIGINT first (the step sees it), its status says why, and nothing
the step started is left running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from forge_standin import create_bare_repo, pull_request_payload, push_payload
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

SLOW = """\
name: slow
on: [push, pull_request]
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          trap 'echo "got SIGINT"; exit 130' INT
          sleep 300 &
          echo $! > "$B12_DIR/$LABCI_JOB_ID.pid"
          echo training
          wait
"""


def child_pid(folder: Path, job_id: int) -> int:
    path = folder / f"{job_id}.pid"
    wait_until(path.exists, what="the step's pid file")
    return int(path.read_text())


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def running_job(stack, sha: str) -> dict:
    def started() -> bool:
        runs = stack.runs_for_commit(sha)
        return bool(runs) and runs[0]["jobs"][0]["state"] == "running"

    wait_until(started, what=f"the job on {sha[:7]} to run")
    return stack.runs_for_commit(sha)[0]["jobs"][0]


def test_an_operator_cancel_interrupts_the_running_step(stack, github, tmp_path):
    stack.extra_env["B12_DIR"] = str(tmp_path)
    stack.extra_env["LABCI_RUNNER_JOB_ENV"] = "B12_DIR"  # the admin passes it to host steps
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/slow.yml": SLOW})
    stack.start_all()
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-slow")
    job = running_job(stack, sha)
    pid = child_pid(tmp_path, job["id"])
    run_id = stack.runs_for_commit(sha)[0]["run"]["id"]
    # bob may write to octo/exp: his personal token (LABCI_API_TOKEN) cancels the run.
    bob = stack.make_user("bob", scope="write")
    stack.cli("repos", "grant", "octo/exp", "bob", "write")
    done = subprocess.run(
        [sys.executable, "-m", "labci_server.cli", "cancel", str(run_id)],
        env=stack.env(LABCI_API_TOKEN=bob),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"run {run_id}: 1 job(s) cancelled")
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "exp", sha),
        lambda s: any(x["state"] == "error" for x in s),
        "the cancelled status",
    )
    (final,) = [s for s in statuses if s["state"] == "error"]
    assert final["description"] == "cancelled: stopped by bob"

    def interrupted() -> bool:
        texts = [line["text"] for line in stack.api(f"/api/v1/runs/{run_id}")["jobs"][0]["logs"]]
        return "got SIGINT" in texts

    wait_until(interrupted, what="the step to see SIGINT")
    wait_until(lambda: gone(pid), what="the step's background child to be gone")
    (run,) = stack.wait_for_runs_finished(sha, 1)
    assert (run["run"]["conclusion"], run["jobs"][0]["job"]["state"]) == ("cancelled", "cancelled")


def test_a_new_head_of_the_pull_request_stops_the_old_one(stack, github, tmp_path):
    stack.extra_env.update(B12_DIR=str(tmp_path), LABCI_RUNNER_JOB_ENV="B12_DIR")
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/slow.yml": SLOW})
    old = repo.commit({"a.txt": "1"}, branch="feature")
    stack.start_all()

    def open_pr(action: str, sha: str, delivery: str) -> None:
        payload = pull_request_payload(
            action, "octo", "exp", repo.clone_url, 5, "feature", sha, "main", base
        )
        stack.deliver("pull_request", payload, delivery)

    open_pr("opened", old, "pr-open")
    job = running_job(stack, old)
    pid = child_pid(tmp_path, job["id"])
    new = repo.commit({"a.txt": "2"}, branch="feature")
    open_pr("synchronize", new, "pr-sync")
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "exp", old),
        lambda s: any(x["state"] == "error" for x in s),
        "the old head's cancelled status",
    )
    (final,) = [s for s in statuses if s["state"] == "error"]
    assert final["description"] == f"cancelled: superseded by {new[:7]}"
    wait_until(lambda: gone(pid), what="the old step's background child to be gone")
    assert running_job(stack, new)["state"] == "running"  # the new head runs


GROUPED = """\
name: ci
on: push
concurrency:
  group: ci-${{ github.ref }}
  cancel-in-progress: true
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          trap 'echo "got SIGINT"; exit 130' INT
          if [ -f slow.txt ]; then
            sleep 300 &
            echo $! > "$B12_DIR/$LABCI_JOB_ID.pid"
            wait
          fi
          echo done
"""


def test_cancel_in_progress_stops_the_pushed_run_it_supersedes(stack, github, tmp_path):
    """Issue 14, item 3, with two real runners (room for both runs): a second push to the
    branch cancels the first's running job (`concurrency.cancel-in-progress`), its step is
    interrupted and its status says why; the second push's run succeeds."""
    stack.extra_env.update(B12_DIR=str(tmp_path), LABCI_RUNNER_JOB_ENV="B12_DIR")
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    old = repo.commit({".labci/ci.yml": GROUPED, "slow.txt": "1"})
    stack.start_all(runners=2)
    stack.deliver(
        "push",
        push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, old),
        "push-old",
    )
    job = running_job(stack, old)
    pid = child_pid(tmp_path, job["id"])
    new = repo.commit({"slow.txt": None})
    stack.deliver(
        "push",
        push_payload("octo", "exp", repo.clone_url, "refs/heads/main", old, new),
        "push-new",
    )
    done = wait_for_statuses(
        github.standin,
        ("octo", "exp", new),
        lambda s: any(x["state"] == "success" for x in s),
        "the new push's success",
    )
    assert [s["state"] for s in done][-1] == "success"
    new_run = stack.runs_for_commit(new)[0]["run"]["id"]
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "exp", old),
        lambda s: any(x["state"] == "error" for x in s),
        "the old push's cancelled status",
    )
    (final,) = [s for s in statuses if s["state"] == "error"]
    assert final["description"] == (
        f"cancelled: superseded by run {new_run} in concurrency group 'ci-refs/heads/main'"
    )
    wait_until(lambda: gone(pid), what="the old step's background child to be gone")
    (run,) = stack.wait_for_runs_finished(old, 1)
    assert run["jobs"][0]["job"]["state"] == "cancelled"
