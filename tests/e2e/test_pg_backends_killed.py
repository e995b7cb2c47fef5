"""B9: every labci PostgreSQL backend is killed (`pg_terminate_backend`) under load.

Pushes keep arriving and jobs run while the test ends every backend of the database but its
own. What is in flight is made certain first, from outside: the test's connection locks the
outbox (so the worker's planning and the server's storing of a result wait there with their
rows written) and the repositories table (so a webhook waits in its ingest transaction).
Then: the waiting webhook is answered 503 at once (no hang, no 2xx), the server, the worker
and the runner go on without a restart, a redelivery is stored once, and no run is half
written: every run has its jobs and its outbox rows, and every commit one run.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.pgcontrol import PgControl
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

# Several phases, each waiting under the 120 s hang guard: together they may take longer
# than pytest's 180 s default on a loaded machine (two copies of the suite at once).
pytestmark = pytest.mark.timeout(600)

WORKFLOW = """\
name: load
on: push
jobs:
  work:
    runs-on: cpu
    steps:
      - run: for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; sleep 0.2; done
"""
CONTEXT = "labci/load/work"
ANSWER_S = 5.0  # "5xx quickly": far below the forge's own 10 s webhook timeout


def test_killed_backends_give_quick_503s_and_everything_recovers(stack, github, pg):
    repo = create_bare_repo(github.repos_root, "octo", "load")
    shas = [repo.commit({".labci/load.yml": WORKFLOW})]
    shas += [repo.commit({f"data{i}.txt": f"{i}\n"}) for i in range(1, 5)]
    stack.start_worker()  # starts while the server does
    stack.start_server()
    stack.start_runner("runner", slots=2)
    pids = {name: proc.pid for name, proc in stack.procs.items()}

    def push(i: int, delivery: str) -> tuple[int, float]:
        before = shas[i - 1] if i else "0" * 40
        payload = push_payload("octo", "load", repo.clone_url, "refs/heads/main", before, shas[i])
        started = time.monotonic()
        status = stack.deliver("push", payload, delivery).status_code
        return status, time.monotonic() - started

    assert push(0, "load-0")[0] == 202
    assert push(1, "load-1")[0] == 202
    wait_until(
        lambda: pg.value("SELECT count(*) FROM log_lines") > 0, what="a job running and logging"
    )

    # In flight: planning (worker) and perhaps a completion (server) at the outbox; a webhook.
    pg.lock_table("outbox")
    assert push(2, "load-2")[0] == 202
    wait_until(lambda: pg.blocked_writers("INSERT INTO outbox"), what="planning at the outbox")
    pg.execute("SET LOCAL lock_timeout = '10s'")
    pg.execute('LOCK TABLE "repositories" IN EXCLUSIVE MODE')
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        webhook = pool.submit(push, 3, "load-3")
        wait_until(
            lambda: pg.blocked_writers("INSERT INTO repositories"), what="a webhook at ingest"
        )
        killed_at = time.monotonic()
        killed = pg.terminate_others()
        status, _ = webhook.result(timeout=60)
        answered_s = time.monotonic() - killed_at
    pg.release()
    print(f"killed {killed} backends; the waiting webhook got {status} after {answered_s:.2f}s")
    assert killed >= 3
    assert status == 503
    assert answered_s < ANSWER_S

    # Right after: the server answers with fresh connections; a blind second kill round.
    assert push(4, "load-4")[0] == 202
    again = pg.terminate_others()
    assert push(3, "load-3")[0] == 202  # the forge's redelivery of the refused one

    for sha in shas:
        wait_for_statuses(
            github.standin,
            ("octo", "load", sha),
            lambda s: any(x["state"] != "pending" for x in s),
            f"the final status of {sha[:7]}",
        )
    for sha in shas:
        posted = [
            (s["context"], s["state"]) for s in github.standin.statuses[("octo", "load", sha)]
        ]
        # The pending status is skipped when the job's end came before it was sent.
        assert posted in ([(CONTEXT, "pending"), (CONTEXT, "success")], [(CONTEXT, "success")])
    wait_until(
        lambda: pg.value("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0,
        what="the outbox to drain",
    )
    assert_no_half_written_run(pg, shas)
    assert {name: proc.pid for name, proc in stack.procs.items()} == pids
    assert all(proc.poll() is None for proc in stack.procs.values())
    print(f"second round killed {again} backends")


def assert_no_half_written_run(pg: PgControl, shas: list[str]) -> None:
    runs = pg.rows(
        "SELECT runs.id, runs.commit_sha,"
        " (SELECT count(*) FROM jobs WHERE jobs.run_id = runs.id) AS jobs,"
        " (SELECT count(*) FROM outbox WHERE outbox.commit_sha = runs.commit_sha) AS outbox"
        " FROM runs ORDER BY runs.id"
    )
    assert sorted(r["commit_sha"] for r in runs) == sorted(shas)  # one run per commit
    assert all(r["jobs"] == 1 and r["outbox"] == 2 for r in runs), runs
    assert pg.value("SELECT count(*) FROM events WHERE state <> 'planned'") == 0
    assert pg.value("SELECT count(*) FROM jobs WHERE state <> 'success'") == 0
    assert pg.value("SELECT count(*) FROM outbox WHERE status NOT IN ('sent', 'superseded')") == 0
