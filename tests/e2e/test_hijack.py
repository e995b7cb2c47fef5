"""The attack on a running job, tried again against real processes (D11, D12): with the
runner's own token (read from its `runner.json`, as a step could before), fetching the
running job again yields no job token; another runner's token cannot fetch it (403), no
token or a wrong one is 401; a forged or borrowed token's `complete` is refused;
the real result is what the commit status reports; once the job has ended its token is
401; and a revoked runner's token is 401 everywhere."""

from __future__ import annotations

import json

import httpx
import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

SLOW = """\
name: slow
on: push
jobs:
  fit:
    runs-on: [cpu]
    steps:
      - run: |
          echo started
          while [ ! -f {go} ]; do sleep 0.05; done
          echo '{{"accuracy": 0.8}}' > "$LABCI_OUTPUT/metrics.json"
    metrics: {{file: metrics.json}}
"""
FORGED = {"outcome": "success", "metrics": {"accuracy": 0.999}}


def test_a_runner_token_cannot_hijack_a_running_job(stack, github, tmp_path):
    go = tmp_path / "go"
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/slow.yml": SLOW.format(go=go)})
    stack.start_all()
    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", push, "push-slow").status_code == 202

    def running_job() -> dict | None:
        runs = stack.runs_for_commit(sha)
        if not runs:
            return None
        detail = stack.api(f"/api/v1/runs/{runs[0]['run']['id']}")
        job = detail["jobs"][0]
        lines = [line["text"] for line in job["logs"]]
        return job["job"] if job["job"]["state"] == "running" and "started" in lines else None

    wait_until(running_job, what="the job to be running")
    job = running_job()
    assert job is not None
    runner_token = json.loads((stack.root / "runner0" / "runner.json").read_text())["runner_token"]
    api = f"{stack.url}/api/v1/runner/jobs/{job['id']}"
    as_runner = {"authorization": f"Bearer {runner_token}"}

    again = httpx.get(api, params={"attempt": job["attempt"]}, headers=as_runner, timeout=30)
    assert again.status_code == 409
    assert "job_token" not in again.text
    assert "fetched already" in again.json()["error"]
    params = {"attempt": job["attempt"]}
    # D12: a runner fetches only the jobs assigned to it (another registered runner's token
    # is a 403); no token, or a wrong one, is a 401 on the runner's and the job's routes.
    registration = stack.cli("runners", "token").strip().splitlines()[-1]
    other = httpx.post(
        f"{stack.url}/api/v1/runners/register",
        json={"registration_token": registration, "name": "other", "labels": ["cpu"]},
        timeout=30,
    ).json()["runner_token"]
    fetched = {
        name: httpx.get(api, params=params, headers=headers, timeout=30)
        for name, headers in (
            ("another runner", {"authorization": f"Bearer {other}"}),
            ("no token", {}),
            ("a wrong token", {"authorization": "Bearer labcirun_wrong"}),
        )
    }
    assert {name: r.status_code for name, r in fetched.items()} == {
        "another runner": 403, "no token": 401, "a wrong token": 401
    }  # fmt: skip
    assert fetched["another runner"].json()["error"] == (
        f"job {job['id']} is not assigned to this runner"
    )
    unsigned = httpx.post(f"{api}/logs", json={"attempt": job["attempt"], "lines": []}, timeout=30)
    assert unsigned.status_code == 401
    for token in ("labcijob_forged", runner_token):
        forged = httpx.post(
            f"{api}/complete", params=params, json={**FORGED, "attempt": job["attempt"]},
            headers={"authorization": f"Bearer {token}"}, timeout=30,
        )  # fmt: skip
        assert forged.status_code == 401, forged.text

    go.write_text("")
    statuses = wait_for_statuses(
        github.standin, ("octo", "exp", sha),
        lambda found: any(s["state"] != "pending" for s in found), "the final status",
    )  # fmt: skip
    final = [s for s in statuses if s["state"] != "pending"]
    assert [(s["state"], s["description"]) for s in final] == [("success", "accuracy 0.8")]

    # A revoked runner is a stranger: every call with its token is a 401.
    assert "revoked" in stack.cli("runners", "revoke", "runner0")
    heartbeat = httpx.post(
        f"{stack.url}/api/v1/runners/heartbeat", json={"running": [], "slots": 1},
        headers=as_runner, timeout=30,
    )  # fmt: skip
    fetch = httpx.get(api, params=params, headers=as_runner, timeout=30)
    assert (heartbeat.status_code, fetch.status_code) == (401, 401)
