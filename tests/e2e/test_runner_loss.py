"""Leases in the real loop: a runner killed mid-step loses its job to a new attempt on
another runner, and the commit gets exactly one final status."""

from __future__ import annotations

import signal
import subprocess

from forge_standin import create_bare_repo, push_payload
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

WORKFLOW = """\
name: long
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          if [ "$LABCI_ATTEMPT" = 1 ]; then sleep 61; fi
          echo "finished on attempt $LABCI_ATTEMPT"
"""


def test_killed_runner_loses_its_job_to_a_second_attempt(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "long")
    sha = repo.commit({".labci/long.yml": WORKFLOW})
    stack.start_server()
    stack.start_worker()
    stack.start_runner("doomed")
    try:
        payload = push_payload("octo", "long", repo.clone_url, "refs/heads/main", "0" * 40, sha)
        assert stack.deliver("push", payload, "loss-1").status_code == 202

        def job():
            runs = stack.runs_for_commit(sha)
            return stack.api(f"/api/v1/runs/{runs[0]['run']['id']}")["jobs"][0] if runs else None

        wait_until(
            lambda: (j := job()) and j["job"]["state"] == "running", what="attempt 1 running"
        )
        stack.stop("doomed", signal.SIGKILL)
        stack.start_runner("rescuer")
        statuses = wait_for_statuses(
            github.standin,
            ("octo", "long", sha),
            lambda s: any(x["state"] != "pending" for x in s),
            "the final status",
        )
        final = job()
    finally:
        subprocess.run(["pkill", "-f", "sleep 61"], check=False)
    assert [s["state"] for s in statuses if s["state"] != "pending"] == ["success"]
    assert (final["job"]["state"], final["job"]["attempt"]) == ("success", 2)
    assert "finished on attempt 2" in [line["text"] for line in final["logs"]]
