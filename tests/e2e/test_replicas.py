"""Two `labci serve` and two `labci worker` replicas on one PostgreSQL and one Redis (issue 12).

The servers start together (each upgrades the schema, in turn), webhooks go to either of
them, and either worker may plan, schedule or deliver any outbox message: both run the
outbox loop every second and both take arq jobs from the one server queue. The GitHub
stand-in, which records every request, sees each commit status posted exactly once per
(commit, context, state), exactly what the outbox says it sent, and one pull request
comment, created once.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from forge_standin import create_bare_repo, headers, pull_request_payload, push_payload
from helpers.services import free_port
from helpers.stack import SECRET
from helpers.waiting import wait_until

# Several phases, each waiting under the 120 s hang guard: together they may take longer
# than pytest's 180 s default on a loaded machine (two copies of the suite at once).
pytestmark = pytest.mark.timeout(600)

WORKFLOW = """\
name: train
on: [push, pull_request]
jobs:
  fit:
    runs-on: cpu
    strategy: {matrix: {seed: [0, 1]}}
    steps:
      - run: |
          echo "{\\"accuracy\\": 0.9$SEED}" > "$LABCI_OUTPUT/metrics.json"
        env: {SEED: "${{ matrix.seed }}"}
    metrics:
      file: metrics.json
"""


def spawn_second_server(stack) -> str:
    port = free_port()
    stack.spawn("server2", "labci_server.cli", "serve", env=stack.env(LABCI_PORT=str(port)))
    return f"http://127.0.0.1:{port}"


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def deliver(url: str, event: str, payload: dict, delivery_id: str) -> int:
    body = json.dumps(payload).encode()
    return httpx.post(
        url + "/webhooks/github",
        content=body,
        headers=headers(event, delivery_id, body, SECRET),
        timeout=30,
    ).status_code


def test_two_servers_and_two_workers_post_each_status_once(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    shas = [repo.commit({".labci/train.yml": WORKFLOW})]
    shas += [repo.commit({f"step{i}.txt": "x\n"}) for i in range(1, 4)]
    head = repo.commit({"model.py": "x = 1\n"}, branch="feature")
    github.standin.open_pull_request("octo", "exp", 7, head_ref="feature", base_ref="main")
    stack.start_worker()  # the workers start while the servers do
    stack.spawn("worker2", "labci_server.cli", "worker")
    # The servers start together: each upgrades the schema (in turn, under a lock).
    second = spawn_second_server(stack)
    stack.start_server()
    wait_until(lambda: healthy(second), what="the second labci serve to answer")
    stack.start_runner("runner0", slots=2)
    stack.start_runner("runner1", slots=2)

    servers = [stack.url, second]
    for i, sha in enumerate(shas):
        before = shas[i - 1] if i else "0" * 40
        payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", before, sha)
        assert deliver(servers[i % 2], "push", payload, f"push-{i}") == 202
    pr = pull_request_payload(
        "opened", "octo", "exp", repo.clone_url, 7, "feature", head, "main", shas[-1]
    )
    assert deliver(second, "pull_request", pr, "pr-7") == 202

    commits = [*shas, head]
    for sha in commits:
        runs = stack.wait_for_runs_finished(sha, 1)
        assert [r["run"]["conclusion"] for r in runs] == ["success"]
    wait_until(lambda: not outbox(stack, "pending"), what="both workers to drain the outbox")

    posts = [
        (p.path.rsplit("/", 1)[-1], p.json["context"], p.json["state"])
        for p in github.standin.status_posts()
    ]
    assert len(posts) == len(set(posts)), "a status was posted twice"
    sent = outbox(stack, "sent")
    assert set(posts) == {
        (m["commit_sha"], m["context"], m["state"]) for m in sent if m["kind"] == "status"
    }
    assert {sha for sha, _, state in posts if state == "success"} == set(commits)
    comments = github.standin.comments("octo", "exp", 7)
    assert len(comments) == 1
    creates = [
        r
        for r in github.standin.mutations()
        if r.method == "POST" and re.search(r"/issues/7/comments$", r.path)
    ]
    assert len(creates) == 1
    assert all(proc.poll() is None for proc in stack.procs.values())
    planned_by = {
        name: (stack.root / f"{name}.log").read_text().count(":plan_event(")
        for name in ("worker", "worker2")
    }
    print(f"statuses posted: {len(posts)}; plans per worker: {planned_by}")


def outbox(stack, status: str) -> list[dict]:
    return list(stack.api(f"/api/v1/outbox?status={status}&limit=500"))
