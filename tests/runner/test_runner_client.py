"""ServerClient: request shapes of the protocol, retries and error mapping.

httpx.MockTransport stands in only for the transport faults a real server cannot be
made to produce on demand (style guide §7).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any

import httpx
import pytest

from labci_runner import client as client_module
from labci_runner.client import Assignment, ServerClient
from labci_runner.errors import ServerRejected, ServerUnavailable, StaleAttempt, Unauthorized

ASSIGNMENT = {
    "job_id": 5,
    "attempt": 2,
    "job_token": "job-token",
    "clone_url": "https://git.example/r.git",
    "commit_sha": "a" * 40,
    "ref": "refs/heads/main",
    "workflow_name": "train",
    "job": {"id": "mnist", "runs_on": ["cpu"], "steps": [{"run": "true"}]},
    "env": {"LABCI_JOB_ID": "5"},
    "timeout_s": 600,
}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_FIRST_S", 0.001)


class Script:
    """Answers requests from a list of (status, body) and records what it received."""

    def __init__(self, *answers: tuple[int, Any] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return httpx.Response(status, json=body)

    def body(self, n: int = -1) -> Any:
        return json.loads(self.requests[n].content)


def make_client(script: Script, token: str = "runner-token") -> ServerClient:
    return ServerClient("http://labci.test/", token, transport=httpx.MockTransport(script))


async def test_heartbeat_sends_running_jobs_and_returns_cancellations() -> None:
    script = Script((200, {"cancel": [{"job_id": 5, "attempt": 2}], "lease_s": 30.0}))
    async with make_client(script) as client:
        cancel = await client.heartbeat([(5, 2), (6, 1)], slots=2, labels=["cpu"])
    assert cancel == [(5, 2)]
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/api/v1/runners/heartbeat")
    assert request.headers["authorization"] == "Bearer runner-token"
    assert script.body() == {
        "running": [{"job_id": 5, "attempt": 2}, {"job_id": 6, "attempt": 1}],
        "slots": 2,
        "labels": ["cpu"],
        "version": version("labci-runner"),  # the runners page shows it
    }


async def test_fetch_then_report_with_the_job_token() -> None:
    script = Script((200, ASSIGNMENT))
    async with make_client(script) as client:
        assignment = await client.fetch_job(5, 2)
        channel = client.channel(assignment)
        await channel.step(0, status="success", exit_code=0, started_at=1.0, finished_at=2.0)
        await channel.complete("success", metrics={"acc": 0.9})
    assert assignment == Assignment.from_json(ASSIGNMENT)
    assert str(script.requests[0].url) == "http://labci.test/api/v1/runner/jobs/5?attempt=2"
    assert script.requests[1].url.path == "/api/v1/runner/jobs/5/steps/0"
    assert script.requests[2].headers["authorization"] == "Bearer job-token"
    assert script.body(1) == {
        "attempt": 2,
        "status": "success",
        "exit_code": 0,
        "started_at": 1.0,
        "finished_at": 2.0,
    }
    assert script.body(2) == {
        "attempt": 2,
        "outcome": "success",
        "reason": None,
        "metrics": {"acc": 0.9},
        "metrics_error": None,
        "record": None,
    }


async def test_transport_errors_and_5xx_are_retried() -> None:
    script = Script(httpx.ConnectError("refused"), (502, {"detail": "bad gateway"}), (200, {}))
    async with make_client(script) as client:
        assert await client.heartbeat([], slots=1, labels=[]) == []
    assert len(script.requests) == 3


async def test_retries_are_bounded() -> None:
    script = Script((503, {"detail": "restarting"}))
    async with make_client(script) as client:
        with pytest.raises(ServerUnavailable, match="503 restarting \\(after 6 tries\\)"):
            await client.fetch_job(1, 1)
    assert len(script.requests) == client_module.MAX_TRIES


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, Unauthorized), (409, StaleAttempt), (403, ServerRejected)],
    ids=["401", "409", "403"],
)
async def test_4xx_is_not_retried(status: int, error: type[ServerRejected]) -> None:
    script = Script((status, {"detail": "no"}))
    async with make_client(script) as client:
        with pytest.raises(error) as caught:
            await client.fetch_job(1, 1)
    assert (caught.value.status, caught.value.detail) == (status, "no")
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, StaleAttempt), (409, StaleAttempt), (403, ServerRejected)],
    ids=["401-token-ended", "409", "403"],
)
async def test_attempt_calls_map_an_ended_job_token_to_stale(
    status: int, error: type[ServerRejected]
) -> None:
    """The server revokes a job token when its attempt ends: 401 there means "stop", like
    409; a 403 (another job's token) is a plain rejection."""
    script = Script((200, ASSIGNMENT), (status, {"detail": "no"}))
    async with make_client(script) as client:
        channel = client.channel(await client.fetch_job(5, 2))
        with pytest.raises(ServerRejected) as on_report:
            await channel.step(0, status="running")
        with pytest.raises(ServerRejected) as on_upload:
            await channel.upload_artifact("model.pt", _one_chunk)
    assert type(on_report.value) is error
    assert type(on_upload.value) is error
    assert (on_report.value.status, on_upload.value.status) == (status, status)
    assert len(script.requests) == 3  # not retried


async def _one_chunk() -> AsyncIterator[bytes]:
    yield b"weights"
