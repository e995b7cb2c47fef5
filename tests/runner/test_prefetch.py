"""The prefetch hint sent with a job's message (issue 14, item 9): the runner fetches the
commit into its mirror while it fetches the job, so the two round trips overlap.

The job flow as the agent runs it, with a real repository; httpx.MockTransport stands in
for the server so that the test decides when the job's fetch is answered."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from runner_kit import make_job

from helpers.gitrepo import make_repo
from helpers.waiting import HANG_GUARD_S
from labci_runner.checkout import MirrorCache
from labci_runner.client import ServerClient
from labci_runner.executors.process import ProcessExecutor
from labci_runner.jobs import JobRuntime, Prefetch, RunningJobs, execute_job, prefetch_of

HOST_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
SHA = "a" * 40


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/lab/exp.git",
        "ssh://git@forge.example/lab/exp.git",
        "git@github.com:lab/exp.git",
        "file:///srv/git/exp.git",
        "/srv/labci/repos/lab/exp.git",
    ],
)
def test_a_clone_url_of_a_server_is_a_hint(url: str) -> None:
    assert prefetch_of({"clone_url": url, "commit_sha": SHA}) == Prefetch(url, SHA)


@pytest.mark.parametrize(
    "hint",
    [
        None,
        "https://github.com/lab/exp.git",
        {"clone_url": "--upload-pack=touch /tmp/x", "commit_sha": SHA},
        {"clone_url": "ext::sh -c touch% /tmp/x", "commit_sha": SHA},
        {"clone_url": "https://github.com/lab/exp.git", "commit_sha": "main"},
        {"clone_url": "https://github.com/lab/exp.git"},
        {"clone_url": 7, "commit_sha": SHA},
    ],
)
def test_anything_else_is_not_fetched(hint: object) -> None:
    assert prefetch_of(hint) is None


def in_mirror(mirrors: MirrorCache, url: str, sha: str) -> bool:
    mirror = mirrors.mirror_path(url)
    done = subprocess.run(
        ["git", "-C", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"], capture_output=True
    )
    return mirror.is_dir() and done.returncode == 0


def runtime_for(tmp_path: Path, server) -> JobRuntime:
    return JobRuntime(
        client=ServerClient(
            "http://labci.test", "runner-token", transport=httpx.MockTransport(server)
        ),
        executor=ProcessExecutor(base_env=HOST_ENV, grace_s=2),
        mirrors=MirrorCache(tmp_path / "runner", env=HOST_ENV),
        running=RunningJobs(),
        jobs_dir=tmp_path / "jobs",
    )


async def test_the_commit_is_fetched_while_the_job_is(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "git")
    sha = repo.commit({"README": "experiment\n"})
    url = repo.bare.as_uri()
    assignment = {
        "job_id": 7,
        "attempt": 1,
        "job_token": "labcijob_test",
        "clone_url": url,
        "commit_sha": sha,
        "job": make_job("git log -1 --format=%H").model_dump(mode="json", by_alias=True),
        "env": {"LABCI_JOB_ID": "7", "LABCI_ATTEMPT": "1"},
        "timeout_s": 120,
    }
    logs: list[str] = []
    runtime: JobRuntime

    async def server(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            # The job's own fetch is answered once the commit is in the mirror: nothing
            # but the prefetch could have put it there (the checkout needs this answer).
            async with asyncio.timeout(HANG_GUARD_S):
                while not await asyncio.to_thread(in_mirror, runtime.mirrors, url, sha):
                    await asyncio.sleep(0.01)
            return httpx.Response(200, json=assignment)
        if request.url.path.endswith("/logs"):
            logs.extend(line["text"] for line in json.loads(request.content)["lines"])
        return httpx.Response(200, json={"ok": True})

    runtime = runtime_for(tmp_path, server)
    async with runtime.client:
        outcome = await execute_job(runtime, 7, 1, Prefetch(url, sha))
    assert outcome == "success"
    assert sha in logs  # the step ran in a checkout of the commit


async def test_a_stale_job_leaves_no_fetch_running(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "git")
    sha = repo.commit({"README": "experiment\n"})

    async def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"detail": "job 7 attempt 1 is stale"})

    runtime = runtime_for(tmp_path, server)
    async with runtime.client:
        outcome = await execute_job(runtime, 7, 1, Prefetch(repo.bare.as_uri(), sha))
    assert outcome == "stale"
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
