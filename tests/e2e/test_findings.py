"""What an attacker found against a stack started with the README's commands, tried again
against real processes (`labci serve`, `labci worker`, a runner): each now answers 401, 403,
404 or 429 and leaves nothing behind.

- Every read was anonymous, for a repository marked private, and ids are sequential.
- The signed body of one run's cancel, replayed to another run, cancelled it.
- A signed delivery rewrote a known repository's clone URL and visibility.
- 30 signed pushes of one commit with new delivery ids made 31 runs.
"""

from __future__ import annotations

import json

import httpx
import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.stack import SECRET, wait_for_statuses
from labci_server.webhooks.gitlocal import sign

pytestmark = pytest.mark.e2e

TRAIN = """\
name: train
on:
  push: {branches: [main]}
jobs:
  fit:
    runs-on: [cpu]
    steps:
      - run: |
          echo "secret-looking output of a private experiment"
          echo '{"accuracy": 0.9}' > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
    artifacts: ["metrics.json"]
"""


def finished(statuses: list[dict]) -> bool:
    return any(s["state"] in ("success", "failure", "error") for s in statuses)


@pytest.fixture
def private_run(stack, github):
    """A finished run of octo/secret, private on GitHub (labci reads that from the API)."""
    repo = create_bare_repo(github.repos_root, "octo", "secret")
    sha = repo.commit({".labci/train.yml": TRAIN})
    github.standin.set_visibility("octo", "secret", "private")
    stack.start_all()
    payload = push_payload("octo", "secret", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    payload["repository"]["private"] = True
    assert stack.deliver("push", payload, "push-secret").status_code == 202
    wait_for_statuses(github.standin, ("octo", "secret", sha), finished, "the private run")
    (run,) = stack.wait_for_runs_finished(sha, 1)
    return repo, sha, run


def test_a_private_repository_is_nothing_to_strangers(stack, private_run):
    _, sha, run = private_run
    run_id, job_id = run["run"]["id"], run["jobs"][0]["job"]["id"]
    stranger = stack.make_user("stranger", scope="admin")
    assert run["repository"]["private"] is True
    assert any("secret-looking" in line["text"] for line in run["jobs"][0]["logs"])
    for headers in ({}, {"authorization": f"Bearer {stranger}"}):
        index = httpx.get(stack.url + "/", headers=headers, timeout=10)
        assert f'href="/runs/{run_id}"' not in index.text
        listed = httpx.get(stack.url + "/api/v1/runs", headers=headers, timeout=10).json()
        assert listed == []
        by_commit = httpx.get(stack.url + f"/api/v1/runs?commit={sha}", headers=headers)
        assert by_commit.json() == []
        for path in (
            f"/runs/{run_id}",
            f"/api/v1/runs/{run_id}",
            f"/api/v1/jobs/{job_id}/artifacts/metrics.json",
            "/badges/octo/secret/train.svg",
            "/api/v1/repos/octo/secret/metrics?workflow=train&job=fit&metric=accuracy",
        ):
            response = httpx.get(stack.url + path, headers=headers, timeout=10)
            assert response.status_code == 404, path
            assert "secret-looking" not in response.text
    admin = {"authorization": f"Bearer {stack.admin_token}"}
    assert f'href="/runs/{run_id}"' in httpx.get(stack.url + "/", headers=admin, timeout=10).text
    outbox = httpx.get(stack.url + "/api/v1/outbox", timeout=10)
    assert outbox.status_code == 401
    as_stranger = httpx.get(
        stack.url + "/api/v1/outbox", headers={"authorization": f"Bearer {stranger}"}
    )
    assert as_stranger.status_code == 403


def test_a_signed_cancel_body_no_longer_cancels_anything(stack, private_run):
    _, _, run = private_run
    body = json.dumps({"reason": "replayed"}).encode()
    signed = {"content-type": "application/json", "x-hub-signature-256": sign(body, SECRET)}
    for run_id in (run["run"]["id"], run["run"]["id"] + 1):
        response = httpx.post(
            stack.url + f"/api/v1/runs/{run_id}/cancel", content=body, headers=signed
        )
        assert response.status_code in (401, 404)
    dispatch = httpx.post(stack.url + "/api/v1/dispatches", content=body, headers=signed)
    assert dispatch.status_code == 401


def test_a_delivery_rewrites_nothing_and_a_repeated_push_plans_nothing(stack, github, private_run):
    repo, sha, _ = private_run
    forged = push_payload(
        "octo", "secret", "https://evil.example/octo/secret.git", "refs/heads/main", "0" * 40, sha
    )
    forged["repository"]["private"] = False
    answers = [stack.deliver("push", forged, f"again-{n}").status_code for n in range(30)]
    assert answers == [202] * 30
    detail = stack.runs_for_commit(sha)
    assert len(detail) == 1  # one run per (commit, workflow, trigger, branch)
    full = stack.api(f"/api/v1/runs/{detail[0]['run']['id']}")
    assert full["repository"]["private"] is True
    assert full["repository"]["clone_url"] == repo.clone_url
    # Still hidden from anonymous readers after the forged "public" delivery.
    hidden = httpx.get(stack.url + f"/api/v1/runs/{detail[0]['run']['id']}", timeout=10)
    assert hidden.status_code == 404


def test_writes_are_rate_limited_per_token(stack, private_run):
    _, _, run = private_run
    stack.extra_env["LABCI_WRITE_RATE_LIMIT"] = "5/minute"
    stack.stop("server")
    stack.start_server()
    writer = stack.make_user("hasty", scope="write")
    stack.cli("repos", "grant", "octo/secret", "hasty", "write")
    headers = {"authorization": f"Bearer {writer}"}
    answers = [
        httpx.post(stack.url + f"/api/v1/runs/{run['run']['id']}/cancel", json={}, headers=headers)
        for _ in range(7)
    ]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    assert int(answers[-1].headers["retry-after"]) >= 1
    # Another caller has a budget of its own.
    other = httpx.post(
        stack.url + f"/api/v1/runs/{run['run']['id']}/cancel",
        json={},
        headers={"authorization": f"Bearer {stack.admin_token}"},
    )
    assert other.status_code == 200
