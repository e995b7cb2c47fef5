"""A job's final report is never cut by a cancel (issue 14, item 6, seen in CI): the server
records the job's end, answers the runner's next heartbeat with "cancel" (the job is no
longer running there), and the runner must not cancel the report the server already has.

The whole job flow as the agent runs it (fetch, checkout of a real repository, a step,
completion); httpx.MockTransport stands in for the server, whose `complete` answer is held
until the heartbeat's cancel has been delivered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from runner_kit import make_job

from helpers.gitrepo import make_repo
from labci_runner import client as client_module
from labci_runner.checkout import MirrorCache
from labci_runner.client import ServerClient
from labci_runner.executors.process import ProcessExecutor
from labci_runner.jobs import JobRuntime, RunningJobs, execute_job

HOST_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_FIRST_S", 0.001)


async def test_a_cancel_that_arrives_during_the_final_report_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "git")
    sha = repo.commit({"README": "experiment\n"})
    assignment = {
        "job_id": 7,
        "attempt": 1,
        "job_token": "labcijob_test",
        "clone_url": repo.bare.as_uri(),
        "commit_sha": sha,
        "job": make_job("echo trained").model_dump(mode="json", by_alias=True),
        "env": {"LABCI_JOB_ID": "7", "LABCI_ATTEMPT": "1"},
        "timeout_s": 120,
    }
    reporting, answered = asyncio.Event(), asyncio.Event()
    completions: list[dict] = []

    async def server(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=assignment)
        if request.url.path.endswith("/complete"):
            completions.append(json.loads(request.content))
            reporting.set()
            await answered.wait()  # the server is slow to answer: the heartbeat comes first
        return httpx.Response(200, json={"ok": True})

    running = RunningJobs()
    runtime = JobRuntime(
        client=ServerClient(
            "http://labci.test", "runner-token", transport=httpx.MockTransport(server)
        ),
        executor=ProcessExecutor(base_env=HOST_ENV, grace_s=2),
        mirrors=MirrorCache(tmp_path / "runner", env=HOST_ENV),
        running=running,
        jobs_dir=tmp_path / "jobs",
    )
    async with runtime.client:
        job = asyncio.create_task(execute_job(runtime, 7, 1))
        await reporting.wait()
        # What the heartbeat loop does with the server's "cancel" for this attempt.
        assert running.stop((7, 1), "cancelled") is False
        answered.set()
        outcome = await job
    assert outcome == "success"
    assert [c["outcome"] for c in completions] == ["success"]  # reported once, not cancelled
    printed = capsys.readouterr().out
    assert "job 7 attempt 1: success in " in printed
    assert "cancelled" not in printed
