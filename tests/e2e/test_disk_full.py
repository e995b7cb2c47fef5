"""Reliability B14: the runner's workdir is a 64 MiB tmpfs and a step fills it. The job
fails saying so, the runner survives, and its workspace is cleaned up: the next job runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.services import missing_service

FILL = """\
name: fill
on: push
jobs:
  fill:
    runs-on: cpu
    steps:
      - name: write 100 MB
        run: dd if=/dev/zero of=big.bin bs=1M count=100
"""
OK = """\
name: ok
on: push
jobs:
  ok: {runs-on: cpu, steps: [{run: echo fine}]}
"""


@pytest.fixture
def small_disk(tmp_path: Path):
    target = tmp_path / "small"
    target.mkdir()
    if os.geteuid() != 0:
        missing_service("root", "mounting a 64 MiB tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        missing_service("tmpfs", f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


def free_mib(path: Path) -> float:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize / 2**20


def test_a_full_disk_fails_the_job_and_the_runner_goes_on(stack, github, small_disk):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    first = repo.commit({".labci/fill.yml": FILL})
    stack.start_server()
    stack.start_worker()
    stack.start_runner("runner0", workdir=small_disk / "runner")
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", first)
    stack.deliver("push", payload, "push-fill")
    (run,) = stack.wait_for_runs_finished(first, 1)
    (job,) = run["jobs"]
    assert job["job"]["state"] == "failure"
    assert job["job"]["reason"].startswith("step 1 (write 100 MB) exited with 1: ")
    assert job["job"]["reason"].endswith("no space left on the runner's disk")
    assert free_mib(small_disk) > 50  # the workspace went with the job

    second = repo.commit({".labci/fill.yml": OK})
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", first, second)
    stack.deliver("push", payload, "push-ok")
    (after,) = stack.wait_for_runs_finished(second, 1)
    assert after["jobs"][0]["job"]["state"] == "success"
    assert stack.procs["runner0"].poll() is None  # the runner survived
