"""B8: `kill -9` in the middle of planning and of storing a job's result; after a restart the
run is planned once and the result stored once, and nothing is left half-written.

Where the crash lands is made certain from outside: the test's own PostgreSQL connection
locks the outbox table, so the transaction under test blocks on its outbox insert after
writing its runs, jobs or metrics: planning (in `labci worker`), storing a runner's report
(in `labci serve`: runners upload results over HTTP), and the reaper ending a job whose
runner was lost (the worker's own share of results). `pg_stat_activity` shows the backend waiting; then the process is killed.
Planning and a job's completion are each one transaction (an event goes from `received` to
`planned`, a job to its terminal state, together with everything they write), so there is
no `planning` or `ingesting` state to be left in: the kill must leave no trace at all.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

# Several phases, each waiting under the 120 s hang guard: together they may take longer
# than pytest's 180 s default on a loaded machine (two copies of the suite at once).
pytestmark = pytest.mark.timeout(600)

CONTEXT = "labci/crash/train"


def workflow(gate: Path) -> str:
    return f"""\
name: crash
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          while [ ! -e {gate} ]; do sleep 0.1; done
          echo '{{"accuracy": 0.9}}' > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
"""


def block_and_kill(stack, pg, name: str) -> None:
    """Wait until a backend of `name` waits on the locked outbox; SIGKILL `name`; let the
    lock go and wait until PostgreSQL has ended (rolled back) that backend."""
    pids: list[int] = []
    wait_until(
        lambda: pids.extend(pg.blocked_writers("INSERT INTO outbox")) or pids,
        what=f"{name} to block on its outbox insert",
    )
    stack.stop(name, signal.SIGKILL)
    pg.release()
    wait_until(lambda: not any(pg.alive(pid) for pid in pids), what="the killed backend to end")


def counts(pg, sha: str) -> dict[str, int]:
    return {
        "runs": pg.value("SELECT count(*) FROM runs WHERE commit_sha = $1", sha),
        "jobs": pg.value(
            "SELECT count(*) FROM jobs JOIN runs ON runs.id = jobs.run_id"
            " WHERE runs.commit_sha = $1",
            sha,
        ),
        "outbox": pg.value("SELECT count(*) FROM outbox WHERE commit_sha = $1", sha),
    }


def assert_planned_once_and_stored_once(stack, github, pg, sha: str) -> None:
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "crash", sha),
        lambda s: any(x["state"] != "pending" for x in s),
        "the final status",
    )
    posted = [(s["context"], s["state"]) for s in statuses]
    # The pending status is skipped when the job's end came before it was sent.
    assert posted in ([(CONTEXT, "pending"), (CONTEXT, "success")], [(CONTEXT, "success")])
    assert counts(pg, sha)["runs"] == 1
    keys = pg.rows("SELECT run_id, job_key FROM jobs")
    assert len(keys) == len({(k["run_id"], k["job_key"]) for k in keys}) == 1
    metrics = pg.rows("SELECT job_id, attempt, name, value FROM metrics")
    assert [(m["name"], m["value"]) for m in metrics] == [("accuracy", 0.9)]
    assert pg.value("SELECT state FROM jobs") == "success"
    assert pg.value("SELECT count(*) FROM events WHERE state <> 'planned'") == 0
    wait_until(
        lambda: pg.value("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0,
        what="the outbox to drain",
    )
    assert pg.value("SELECT count(*) FROM outbox WHERE status NOT IN ('sent', 'superseded')") == 0


def test_killed_while_planning_and_while_storing_a_result(stack, github, pg, tmp_path):
    gate = tmp_path / "gate"  # the step finishes once the test creates it
    repo = create_bare_repo(github.repos_root, "octo", "crash")
    sha = repo.commit({".labci/crash.yml": workflow(gate)})
    # Production's lease: heartbeats fail while the server is away, and the shortened test
    # lease (5 s) would have the attempt reaped before a slow restart is done.
    stack.extra_env["LABCI_LEASE_S"] = "30"
    stack.start_worker()  # starts while the server does
    stack.start_server()
    stack.start_runner("runner")

    # 1. `labci worker` dies in planning's transaction: runs and jobs written, not committed.
    pg.lock_table("outbox")
    payload = push_payload("octo", "crash", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, "crash-1").status_code == 202
    block_and_kill(stack, pg, "worker")
    assert counts(pg, sha) == {"runs": 0, "jobs": 0, "outbox": 0}
    assert pg.value("SELECT state FROM events") == "received"
    restarted_at = time.time()
    stack.start_worker()
    wait_until(
        lambda: (
            pg.value("SELECT state FROM jobs") == "running"
            and pg.value("SELECT count(*) FROM outbox WHERE status = 'sent'") == 1
        ),
        what="the job running and its pending status sent",
    )
    planned_s = pg.value("SELECT created_at FROM runs") - restarted_at

    # 2. `labci serve` dies storing the job's result: job, metrics and verdict not committed.
    pg.lock_table("outbox")
    gate.touch()
    block_and_kill(stack, pg, "server")
    assert pg.value("SELECT state FROM jobs") == "running"
    assert pg.value("SELECT count(*) FROM metrics") == 0
    assert counts(pg, sha)["outbox"] == 1  # the pending status only
    # The runner retries its report for about 36 s, past the lease: the restarted server
    # stores the result of attempt 1, and the job does not run again.
    stack.start_server()
    assert_planned_once_and_stored_once(stack, github, pg, sha)
    attempt = pg.value("SELECT attempt FROM jobs")
    assert attempt == 1
    print(f"planned {planned_s:.1f}s after the worker restarted; result of attempt {attempt}")


def test_worker_killed_while_failing_a_lost_job_fails_it_once(stack, github, pg, tmp_path):
    """The worker's own share of results: its reaper ends a job whose runner was lost."""
    gate = tmp_path / "gate"  # never opened while the job runs; opened at the end to let
    # the orphaned step (its runner was killed) end by itself
    repo = create_bare_repo(github.repos_root, "octo", "crash")
    sha = repo.commit({".labci/crash.yml": workflow(gate)})
    stack.extra_env["LABCI_MAX_ATTEMPTS"] = "1"  # the reaper fails the job, no retry
    stack.start_worker()
    stack.start_server()
    stack.start_runner("runner")
    payload = push_payload("octo", "crash", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, "crash-reap").status_code == 202
    try:
        wait_until(lambda: pg.value("SELECT state FROM jobs") == "running", what="the job")
        pg.lock_table("outbox")
        stack.stop("runner", signal.SIGKILL)
        block_and_kill(stack, pg, "worker")  # its reaper, writing the job's error status
        assert (pg.value("SELECT state FROM jobs"), pg.value("SELECT attempt FROM jobs")) == (
            "running",
            1,
        )
        assert pg.value("SELECT count(*) FROM outbox WHERE state = 'error'") == 0
        stack.start_worker()
        statuses = wait_for_statuses(
            github.standin,
            ("octo", "crash", sha),
            lambda s: any(x["state"] != "pending" for x in s),
            "the final status",
        )
    finally:
        gate.touch()
    assert [s["state"] for s in statuses if s["state"] != "pending"] == ["error"]
    job = pg.rows("SELECT state, attempt, reason FROM jobs")
    assert job == [{"state": "error", "attempt": 1, "reason": "runner lost (1 attempts)"}]
    wait_until(
        lambda: pg.value("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0,
        what="the outbox to drain",
    )
