"""A job's completion report outlasts a server restart (B8): it is retried about as long as
the server's lease can hold (COMPLETE_TRIES), other reports only MAX_TRIES times.

httpx.MockTransport stands in for a server that is away (style guide §7: transport faults).
"""

from __future__ import annotations

import httpx
import pytest

from labci_runner import client as client_module
from labci_runner.client import ServerClient
from labci_runner.errors import ServerUnavailable

ASSIGNMENT = {
    "job_id": 5,
    "attempt": 1,
    "job_token": "job-token",
    "clone_url": "https://git.example/r.git",
    "commit_sha": "a" * 40,
    "ref": "refs/heads/main",
    "workflow_name": "train",
    "job": {"id": "mnist", "runs_on": ["cpu"], "steps": [{"run": "true"}]},
    "env": {},
    "timeout_s": 600,
}
# The real backoff, read before the fixture below speeds it up.
FIRST_S, MAX_S = client_module.BACKOFF_FIRST_S, client_module.BACKOFF_MAX_S


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_FIRST_S", 0.001)
    monkeypatch.setattr(client_module, "BACKOFF_MAX_S", 0.001)


def server_away_for(reports: int) -> tuple[list[str], httpx.MockTransport]:
    """A server that hands out the job, then refuses the first `reports` reports."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.method == "GET":
            return httpx.Response(200, json=ASSIGNMENT)
        if len(seen) - 1 <= reports:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, json={})

    return seen, httpx.MockTransport(answer)


def test_the_completion_budget_covers_the_default_lease() -> None:
    """≈36 s of tries: past the 30 s after which the server's reaper would retry anyway."""
    waits = [min(FIRST_S * 2**i, MAX_S) for i in range(client_module.COMPLETE_TRIES - 1)]
    total_s = sum(waits)
    assert total_s > 30.0  # Settings.lease_s's default on the server


async def test_a_completion_is_retried_past_the_other_reports_budget() -> None:
    away = client_module.MAX_TRIES + 3  # longer than any other report would wait
    seen, transport = server_away_for(away)
    async with ServerClient("http://labci.test/", "runner", transport=transport) as client:
        channel = client.channel(await client.fetch_job(5, 1))
        await channel.complete("success", metrics={"acc": 0.9})
    assert seen[1:] == ["/api/v1/runner/jobs/5/complete"] * (away + 1)


async def test_other_reports_keep_their_budget() -> None:
    seen, transport = server_away_for(client_module.COMPLETE_TRIES)
    async with ServerClient("http://labci.test/", "runner", transport=transport) as client:
        channel = client.channel(await client.fetch_job(5, 1))
        with pytest.raises(ServerUnavailable, match=f"after {client_module.MAX_TRIES} tries"):
            await channel.step(0, status="running")
    assert len(seen) == 1 + client_module.MAX_TRIES
