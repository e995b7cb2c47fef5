"""A container job through the whole loop: webhook → plan → a runner whose engine answers →
steps in a locked-down container → metrics → status; no container left behind."""

from __future__ import annotations

import docker

from forge_standin import create_bare_repo, push_payload
from helpers.stack import wait_for_statuses

CONTAINER = """\
name: boxed
on: push
jobs:
  fit:
    runs-on: cpu
    container: {image: labci-test/busybox:1}
    resources: {cpus: 1, memory: 256M}
    steps:
      - run: echo "uid $(id -u) in $PWD"
      - run: |
          echo '{"accuracy": 0.93}' > "$LABCI_OUTPUT/metrics.json"
    metrics: {file: metrics.json}
  host:
    runs-on: cpu
    steps: [{run: echo on the host}]
"""


def test_a_container_job_runs_in_docker_and_leaves_nothing(stack, github, docker_host, test_images):
    stack.extra_env.update(
        {"LABCI_RUNNER_DOCKER_HOST": docker_host, "LABCI_RUNNER_PULL_POLICY": "never"}
    )
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/boxed.yml": CONTAINER})
    stack.start_all()
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-boxed")
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "exp", sha),
        lambda s: (
            {x["context"] for x in s if x["state"] != "pending"}
            >= {"labci/boxed/fit", "labci/boxed/host"}
        ),
        "both statuses",
    )
    final = {s["context"]: s for s in statuses if s["state"] != "pending"}
    assert (final["labci/boxed/fit"]["state"], final["labci/boxed/fit"]["description"]) == (
        "success",
        "accuracy 0.93",
    )
    assert final["labci/boxed/host"]["state"] == "success"
    (run,) = stack.wait_for_runs_finished(sha, 1)
    fit = next(j for j in run["jobs"] if j["job"]["job_key"] == "fit")
    assert "uid 1000 in /labci/workspace" in [line["text"] for line in fit["logs"]]
    client = docker.DockerClient(base_url=docker_host, version="1.41")
    try:
        mine = client.containers.list(all=True, filters={"label": "dev.labci.runner=runner0"})
    finally:
        client.close()
    assert mine == []


HOSTILE = """\
name: hostile
on: push
jobs:
  bomb:
    runs-on: cpu
    container: {image: labci-test/busybox:1}
    resources: {memory: 64M}
    steps:
      - name: fork bomb
        continue-on-error: true
        run: i=0; while [ $i -lt 10000 ]; do sleep 60 & i=$((i+1)); done
      - name: memory hog
        run: awk "BEGIN{s=\\"xxxxxxxx\\"; while (1) s = s s}"
  neighbour:
    runs-on: cpu
    steps:
      - run: for i in 1 2 3; do echo "working $i"; sleep 0.5; done
"""


def test_a_hostile_job_does_not_stop_its_neighbour(stack, github, docker_host, test_images):
    """Reliability D9 through the loop: pids cap and OOM hit the hostile job only."""
    stack.extra_env.update(
        {
            "LABCI_RUNNER_DOCKER_HOST": docker_host,
            "LABCI_RUNNER_PULL_POLICY": "never",
            "LABCI_RUNNER_PIDS_LIMIT": "128",
        }
    )
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/hostile.yml": HOSTILE})
    stack.start_all(runners=2)
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-hostile")
    (run,) = stack.wait_for_runs_finished(sha, 1)
    jobs = {j["job"]["job_key"]: j["job"] for j in run["jobs"]}
    assert jobs["neighbour"]["state"] == "success"
    assert jobs["bomb"]["state"] == "failure"
    assert jobs["bomb"]["reason"] == "step 2 (memory hog) ran out of memory (limit 64 MiB)"
