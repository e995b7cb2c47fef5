"""Reliability B1 — leases in the real loop: a runner killed with `kill -9` mid-step, with the
process executor and with the docker executor. The job is reaped no later than lease +
reaper interval after the runner's last recorded heartbeat (the worker's log records the
reap), runs again as attempt 2, and the commit gets exactly one final status. The docker
runner's attempt-1 container outlives it and is removed when the runner starts again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
from datetime import UTC, datetime

import docker
import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.processes import pid_alive
from helpers.rows import sql
from helpers.stack import Stack, wait_for_statuses
from helpers.waiting import wait_until

# Two runner starts (registered through the CLI) and a lease to run out: on a loaded
# machine (two suites at once on 2 cores) that nears pytest's 180 s default.
pytestmark = pytest.mark.timeout(300)

WORKFLOW = """\
name: long
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          echo "started attempt $LABCI_ATTEMPT"
          if [ "$LABCI_ATTEMPT" = 1 ]; then echo $$ > PIDFILE; exec sleep 600; fi
          echo "finished on attempt $LABCI_ATTEMPT"
"""
BOXED = """\
name: long
on: push
jobs:
  train:
    runs-on: cpu
    container: {image: labci-test/busybox:1}
    steps:
      - run: |
          echo "started attempt $LABCI_ATTEMPT"
          if [ "$LABCI_ATTEMPT" = 1 ]; then sleep 600; fi
          echo "finished on attempt $LABCI_ATTEMPT"
"""


def test_killed_runner_loses_its_job_to_a_second_attempt(stack, github, tmp_path):
    pid = tmp_path / "step.pid"  # attempt 1's step, orphaned by the kill: ended by the test
    sha = start_and_push(stack, github, WORKFLOW.replace("PIDFILE", str(pid)))
    stack.start_runner("doomed")
    try:
        job = running_job(stack, sha)
        stack.stop("doomed", signal.SIGKILL)
        assert_reaped_in_time(stack, job["id"], "doomed")
        stack.start_runner("rescuer")
        final = finished_once(stack, github, sha)
    finally:
        if pid.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid.read_text()), signal.SIGKILL)
    assert (final["job"]["state"], final["job"]["attempt"], final["runner"]) == (
        "success",
        2,
        "rescuer",
    )
    assert "finished on attempt 2" in [line["text"] for line in final["logs"]]


def test_killed_runner_kills_its_orphaned_step_when_it_restarts(stack, github, tmp_path):
    """I4 for the process executor: attempt 1's step (its own process group) outlives the
    `kill -9`; the runner, started again by its service manager, kills it before anything
    else, then runs attempt 2."""
    pid_file = tmp_path / "step.pid"
    sha = start_and_push(stack, github, WORKFLOW.replace("PIDFILE", str(pid_file)))
    stack.start_runner("doomed")
    step_pid = 0
    try:
        running_job(stack, sha)
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the pid")
        step_pid = int(pid_file.read_text())
        stack.stop("doomed", signal.SIGKILL)
        assert pid_alive(step_pid)  # orphaned: nothing stopped it
        stack.restart_runner("doomed")
        wait_until(lambda: not pid_alive(step_pid), what="the leftover step killed")
        assert f"killed the leftover steps' process groups {step_pid}" in stack.log("doomed")
        final = finished_once(stack, github, sha)
    finally:
        if step_pid and pid_alive(step_pid):
            os.kill(step_pid, signal.SIGKILL)
    assert (final["job"]["state"], final["job"]["attempt"]) == ("success", 2)


def test_killed_docker_runner_removes_its_container_when_it_restarts(
    stack, github, docker_host, test_images
):
    # A name of its own: runners of other test runs on this engine remove their own
    # name's leftovers when they start, and must not find this one's.
    name = f"b1-{uuid.uuid4().hex[:8]}"
    stack.extra_env.update(
        {"LABCI_RUNNER_DOCKER_HOST": docker_host, "LABCI_RUNNER_PULL_POLICY": "never"}
    )
    sha = start_and_push(stack, github, BOXED)
    stack.start_runner(name, LABCI_RUNNER_EXECUTOR="docker")
    engine = docker.DockerClient(base_url=docker_host, version="1.41")
    try:
        job = running_job(stack, sha)

        def containers(*labels: str) -> list:
            wanted = [f"dev.labci.runner={name}", *labels]
            return engine.containers.list(all=True, filters={"label": wanted})

        (box,) = containers(f"dev.labci.job={job['id']}", "dev.labci.attempt=1")
        stack.stop(name, signal.SIGKILL)
        assert_reaped_in_time(stack, job["id"], name)
        box.reload()
        assert box.status == "running"  # nothing removed it: its runner is gone
        stack.restart_runner(name)
        wait_until(lambda: not containers("dev.labci.attempt=1"), what="the leftover removed")
        assert f"removed leftover containers {box.short_id}" in stack.log(name)
        final = finished_once(stack, github, sha)
        assert containers() == []  # attempt 2's container went with its job
    finally:
        engine.close()
    assert (final["job"]["state"], final["job"]["attempt"]) == ("success", 2)
    assert "finished on attempt 2" in [line["text"] for line in final["logs"]]


def start_and_push(stack: Stack, github, workflow: str) -> str:
    """Server, a worker logging JSON (its reaper's line carries the recorded time), a push."""
    stack.start_server()
    stack.spawn("worker", "labci_server.cli", "worker", env=stack.env(LABCI_LOG_FORMAT="json"))
    repo = create_bare_repo(github.repos_root, "octo", "long")
    sha = repo.commit({".labci/long.yml": workflow})
    payload = push_payload("octo", "long", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, "loss-1").status_code == 202
    return sha


def running_job(stack: Stack, sha: str) -> dict:
    """Attempt 1 once its step runs and a heartbeat renewed its lease after the start (the
    start sets the lease too: the last renewal before the kill is then a heartbeat)."""

    def started() -> dict | None:
        runs = stack.runs_for_commit(sha)
        if not runs:
            return None
        job = stack.api(f"/api/v1/runs/{runs[0]['run']['id']}")["jobs"][0]
        texts = [line["text"] for line in job["logs"]]
        return job["job"] if "started attempt 1" in texts else None

    wait_until(started, what="attempt 1's step to run")
    job = started()
    assert job is not None
    beat_after_start = (
        "SELECT count(*) FROM runners JOIN jobs ON jobs.runner_id = runners.id"
        " WHERE jobs.id = $1 AND runners.last_heartbeat_at > jobs.started_at"
    )
    wait_until(
        lambda: sql(stack.database_url, beat_after_start, job["id"])[0][0] == 1,
        what="a heartbeat after the step started",
    )
    return job


def assert_reaped_in_time(stack: Stack, job_id: int, runner: str) -> None:
    """Recorded reap time − the runner's last recorded heartbeat ≤ lease + reaper interval."""
    reaped = f"reaper: job {job_id} lost its runner; retrying as attempt 2"
    wait_until(lambda: reap_time(stack, reaped) is not None, what="the reaper to retry the job")
    (last_beat,) = sql(
        stack.database_url, "SELECT last_heartbeat_at FROM runners WHERE name = $1", runner
    )[0]
    lease_s = float(stack.env()["LABCI_LEASE_S"])
    interval_s = float(stack.env()["LABCI_REAPER_INTERVAL_S"])
    delay_s = reap_time(stack, reaped) - last_beat  # type: ignore[operator]
    assert lease_s <= delay_s <= lease_s + interval_s, f"reaped {delay_s:.2f}s after"
    print(f"reaped {delay_s:.2f}s after the last heartbeat (lease {lease_s}, every {interval_s})")


def reap_time(stack: Stack, message: str) -> float | None:
    for line in stack.log("worker").splitlines():
        if line.startswith("{") and (entry := json.loads(line))["message"] == message:
            when = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            return when.replace(tzinfo=UTC).timestamp()
    return None


def finished_once(stack: Stack, github, sha: str) -> dict:
    """The job once its final status is posted and the outbox is empty: one final status."""
    wait_for_statuses(
        github.standin,
        ("octo", "long", sha),
        lambda s: any(x["state"] != "pending" for x in s),
        "the final status",
    )
    wait_until(
        lambda: (
            sql(stack.database_url, "SELECT count(*) FROM outbox WHERE status = 'pending'")
            == [(0,)]
        ),
        what="the outbox to drain",
    )
    statuses = github.standin.statuses[("octo", "long", sha)]
    assert [s["state"] for s in statuses if s["state"] != "pending"] == ["success"]
    (run,) = stack.runs_for_commit(sha)
    return stack.api(f"/api/v1/runs/{run['run']['id']}")["jobs"][0]
