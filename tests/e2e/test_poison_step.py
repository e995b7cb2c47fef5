"""Reliability B4: a poison step kills its own runner (`kill -9 $PPID`) on every attempt. The
runner is started again after each death, as its service manager would (same runner.json);
after `LABCI_MAX_ATTEMPTS` (3) the job fails for good, "runner lost (3 attempts)" on the
commit status, and is never enqueued again: arq saw each attempt once (retry key 1), no
fourth, and the runner started after the last death survives and runs the next push."""

from __future__ import annotations

import signal

import pytest
import redis

from forge_standin import create_bare_repo, push_payload
from helpers.rows import sql
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

POISON = """\
name: poison
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          echo "attempt $LABCI_ATTEMPT kills its runner"
          kill -9 "$PPID"
"""
HEALTHY = """\
name: healthy
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: echo "still standing"
"""
MAX_ATTEMPTS = 3
# Three deaths, each awaited with its lease, a restart after each and one more push: on a
# loaded machine (two suites at once on 2 cores) that nears pytest's 180 s default.
pytestmark = pytest.mark.timeout(300)


def test_a_step_that_kills_its_runner_fails_after_max_attempts(stack, github):
    stack.extra_env["LABCI_MAX_ATTEMPTS"] = str(MAX_ATTEMPTS)
    repo = create_bare_repo(github.repos_root, "octo", "poison")
    poison = repo.commit({".labci/poison.yml": POISON})
    stack.start_server()
    stack.start_worker()
    stack.start_runner("victim")
    push(stack, repo, poison, "0" * 40, "poison-1")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        runner = stack.procs["victim"]
        wait_until(lambda p=runner: p.poll() is not None, what=f"attempt {attempt} to kill it")
        assert runner.returncode == -signal.SIGKILL
        assert sql(stack.database_url, "SELECT attempt FROM jobs") == [(attempt,)]
        stack.stop("victim")  # (dead already)
        stack.restart_runner("victim")

    statuses = wait_for_statuses(
        github.standin,
        ("octo", "poison", poison),
        lambda s: any(x["state"] != "pending" for x in s),
        "the final status",
    )
    terminal = [(s["state"], s["description"]) for s in statuses if s["state"] != "pending"]
    assert terminal == [("error", f"runner lost ({MAX_ATTEMPTS} attempts)")]
    assert sql(stack.database_url, "SELECT state, attempt, reason FROM jobs") == [
        ("error", MAX_ATTEMPTS, f"runner lost ({MAX_ATTEMPTS} attempts)")
    ]

    # The restarted runner takes the next push and lives: nothing of the poison job was
    # given to it again.
    healthy = repo.commit({".labci/poison.yml": HEALTHY})
    push(stack, repo, healthy, poison, "poison-2")
    (run,) = stack.wait_for_runs_finished(healthy, 1)
    assert run["jobs"][0]["job"]["state"] == "success"
    assert stack.procs["victim"].poll() is None
    (poison_job,) = sql(stack.database_url, "SELECT id FROM jobs WHERE state = 'error'")[0]
    assert arq_tries(stack.redis_url, poison_job) == dict.fromkeys(range(1, MAX_ATTEMPTS + 1), 1)
    assert [
        s for s in github.standin.statuses[("octo", "poison", poison)] if s["state"] != "pending"
    ] == [s for s in statuses if s["state"] != "pending"]


def push(stack, repo, sha: str, before: str, delivery: str) -> None:
    payload = push_payload("octo", "poison", repo.clone_url, "refs/heads/main", before, sha)
    assert stack.deliver("push", payload, delivery).status_code == 202


def arq_tries(redis_url: str, job_id: int) -> dict[int, int]:
    """arq's try count (its retry key) of each attempt of the job ever enqueued, on any
    runner's queue: `arq:retry:<queue>:job-<job>-<attempt>`."""
    client = redis.Redis.from_url(redis_url)
    try:
        tries = {}
        for key in client.scan_iter(match=f"arq:*:job-{job_id}-*"):
            kind, attempt = key.decode().split(":")[1], int(key.decode().rsplit("-", 1)[1])
            if kind == "retry":
                tries[attempt] = int(client.get(key) or 0)
            else:
                tries.setdefault(attempt, 0)  # enqueued, never started
        return tries
    finally:
        client.close()
