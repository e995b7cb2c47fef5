"""Reliability B2: a zombie runner. It is stopped (SIGSTOP) mid-step for longer than its
lease, the job moves to attempt 2 on another runner, and then it is let go (SIGCONT).
Everything it reports about attempt 1 from then on gets 409 (stale attempt) and it stops
the attempt; the same token sent on every report route (start, logs, a step, the result
with its metrics, an artifact) gets 409 too; and what is stored — log lines after the
pause, metrics, steps, the outcome and the commit status — comes only from attempt 2.

The zombie reaches the server through a recording proxy (helpers/recording_proxy.py): its
own calls are told apart from the rescuer's, and its fetch answer holds attempt 1's token.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.recording_proxy import RecordingProxy
from helpers.rows import sql
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

WORKFLOW = """\
name: zombie
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          echo "attempt $LABCI_ATTEMPT started"
          while [ ! -e GATES/$LABCI_ATTEMPT ]; do sleep 0.05; done
          echo "attempt $LABCI_ATTEMPT goes on"
          echo "::metric name=loss::0.$LABCI_ATTEMPT"
          echo "{\\"accuracy\\": 0.$LABCI_ATTEMPT$LABCI_ATTEMPT}" > "$LABCI_OUTPUT/metrics.json"
    metrics: {file: metrics.json}
"""
# Two runners started one after the other, each registered through the CLI, and a lease
# to run out: on a loaded machine (two suites at once on 2 cores) that nears pytest's 180 s.
pytestmark = pytest.mark.timeout(300)

STALE = "this token's attempt is stale, attempt 2 replaced it"


def test_a_zombie_runners_reports_get_409_and_only_attempt_2_is_stored(stack, github, tmp_path):
    gates = tmp_path / "gates"  # the step of attempt N goes on once gates/N exists
    gates.mkdir()
    repo = create_bare_repo(github.repos_root, "octo", "zombie")
    sha = repo.commit({".labci/zombie.yml": WORKFLOW.replace("GATES", str(gates))})
    stack.start_server()
    stack.start_worker()
    with RecordingProxy(stack.url) as proxy:
        stack.start_runner("zombie", LABCI_SERVER_URL=proxy.url)
        zombie = stack.procs["zombie"]
        payload = push_payload("octo", "zombie", repo.clone_url, "refs/heads/main", "0" * 40, sha)
        assert stack.deliver("push", payload, "zombie-1").status_code == 202

        def job() -> dict | None:
            runs = stack.runs_for_commit(sha)
            return stack.api(f"/api/v1/runs/{runs[0]['run']['id']}")["jobs"][0] if runs else None

        def started(attempt: int) -> bool:
            found = job()
            return bool(found) and f"attempt {attempt} started" in texts(found)

        wait_until(lambda: started(1), what="attempt 1's step to start")
        job_id = job()["job"]["id"]
        (fetched,) = [
            e
            for e in proxy.recorded(f"/api/v1/runner/jobs/{job_id}")
            if (e.method, e.status) == ("GET", 200)
        ]
        token1 = fetched.json()["job_token"]
        zombie.send_signal(signal.SIGSTOP)
        try:
            stack.start_runner("rescuer")
            wait_until(lambda: started(2), what="attempt 2 to start on the rescuer")
            (gates / "1").touch()  # attempt 1's step ends while its runner is stopped
            resumed_at = time.time()
        finally:
            zombie.send_signal(signal.SIGCONT)
        wait_until(
            lambda: f"job {job_id} attempt 1: stopped" in stack.log("zombie"),
            what="the zombie to stop attempt 1",
        )
        assert f"job {job_id} attempt 1: stopped: the server moved on (409)" in stack.log("zombie")
        # Whatever the zombie sent about the job once it was back (its step's log lines, the
        # step's end, its result, or the cancelled report its heartbeat led to) got 409.
        since = proxy.recorded(f"/api/v1/runner/jobs/{job_id}/", since=resumed_at)
        assert since
        assert {(e.path.rsplit("/", 1)[-1], e.status) for e in since} <= {
            ("logs", 409), ("0", 409), ("complete", 409)
        }  # fmt: skip

        # Attempt 1's token on every report route, while attempt 2 runs: 409 each.
        refused = stale_reports(stack.url, job_id, token1)
        assert refused == {
            route: (409, f"job {job_id}: {STALE}")
            for route in ("start", "logs", "step", "result with metrics", "artifact")
        }

    (gates / "2").touch()
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "zombie", sha),
        lambda s: any(x["state"] != "pending" for x in s),
        "the final status",
    )
    terminal = [(s["state"], s["description"]) for s in statuses if s["state"] != "pending"]
    assert terminal == [("success", "accuracy 0.22 · loss 0.2")]
    final = job()
    assert (final["job"]["state"], final["job"]["attempt"]) == ("success", 2)
    assert final["metrics"] == {"accuracy": 0.22, "loss": 0.2}
    # Stored rows of every attempt: attempt 1 left what it sent before its runner stopped,
    # nothing after; metrics, artifacts and finished steps are attempt 2's alone.
    attempt_1 = [t for (t,) in sql(stack.database_url, LINES, job_id, 1)]
    assert "attempt 1 started" in attempt_1
    assert "attempt 1 goes on" not in attempt_1
    assert sql(stack.database_url, "SELECT attempt, name, value FROM metrics ORDER BY name") == [
        (2, "accuracy", 0.22),
        (2, "loss", 0.2),
    ]
    assert sql(stack.database_url, "SELECT attempt, path FROM artifacts") == []
    assert sql(stack.database_url, "SELECT attempt, status FROM steps ORDER BY attempt") == [
        (1, "running"),
        (2, "success"),
    ]


LINES = "SELECT text FROM log_lines WHERE job_id = $1 AND attempt = $2 ORDER BY seq"


def texts(job: dict) -> list[str]:
    return [line["text"] for line in job["logs"]]


def stale_reports(url: str, job_id: int, token: str) -> dict[str, tuple[int, str]]:
    """What a zombie would send about attempt 1 with its token, and the answers."""
    api = f"{url}/api/v1/runner/jobs/{job_id}"
    auth = {"authorization": f"Bearer {token}"}
    line = {"seq": 10_000, "step": 0, "stream": "stdout", "text": "attempt 1 goes on", "ts": 0.0}
    result = {"outcome": "success", "metrics": {"accuracy": 0.11, "loss": 0.1}}
    sent = {
        "start": httpx.post(f"{api}/start", json={"attempt": 1}, headers=auth, timeout=30),
        "logs": httpx.post(
            f"{api}/logs", json={"attempt": 1, "lines": [line]}, headers=auth, timeout=30
        ),
        "step": httpx.post(
            f"{api}/steps/0",
            json={"attempt": 1, "status": "success", "exit_code": 0},
            headers=auth,
            timeout=30,
        ),  # fmt: skip
        "result with metrics": httpx.post(
            f"{api}/complete", json={"attempt": 1, **result}, headers=auth, timeout=30
        ),
        "artifact": httpx.put(
            f"{api}/artifacts/model.pt",
            params={"attempt": 1},
            content=b"weights",
            headers=auth,
            timeout=30,
        ),  # fmt: skip
    }
    return {route: (r.status_code, r.json()["error"]) for route, r in sent.items()}
