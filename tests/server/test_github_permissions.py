"""A GitHub user's permissions on a GitHub repository mirror GitHub's (issue 9, item 2).

People sign in through the real OAuth flow (the stand-in plays GitHub); what they may see
and do on the private repository `octo/exp` is what the stand-in's collaborator-permission
endpoint says, asked with the server's own token and cached for LABCI_PERMISSION_CACHE_S.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from test_github_sign_in import labci_with_github, sign_in_with_github

from forge_standin import create_bare_repo
from labci_server.db.queries.people import user_by_login
from labci_server.planning.planner import plan_event
from labci_server.webhooks.github import NewEvent
from labci_server.webhooks.ingest import store_event

TRAIN = """\
name: train
on: [push]
jobs:
  fit:
    runs-on: cpu
    steps: [{run: python train.py}]
"""
ALICE, BOB, CAROL = ("alice", 1001), ("bob", 1002), ("carol", 1003)
CACHE_S = 3.0  # long enough for a burst of reads on a busy machine
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def client(github, database_url, redis_url):
    async with labci_with_github(github, database_url, redis_url, permission_cache_s=CACHE_S) as c:
        yield c


@pytest.fixture
async def run_id(client, github) -> int:
    """A planned run of the private GitHub repository octo/exp."""
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/train.yml": TRAIN, "train.py": "print('hi')\n"})
    github.standin.set_visibility("octo", "exp", "private")
    sc = client.app.state.context
    event_id = await store_event(
        sc,
        NewEvent(
            delivery_id=f"push-{sha}",
            provider="github",
            kind="push",
            action=None,
            repo_full_name="octo/exp",
            clone_url=repo.clone_url,
            commit_sha=sha,
            branch="main",
        ),
    )
    assert event_id is not None
    (planned,) = await plan_event(sc, event_id)
    return int(planned)


@asynccontextmanager
async def browser(
    client: httpx.AsyncClient, github: Any, person: tuple[str, int]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own (its own cookies), signed in through GitHub as `person`."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client.app),  # type: ignore[attr-defined]
        base_url=str(client.base_url),
    ) as other:
        signed_in = await sign_in_with_github(other, github, person)
        assert signed_in.status_code == 303, signed_in.text
        yield other


async def csrf_of(client: httpx.AsyncClient) -> str:
    page = await client.get("/account")
    found = CSRF_FIELD.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def listed(client: httpx.AsyncClient) -> list[int]:
    answer = await client.get("/api/v1/runs")
    assert answer.status_code == 200
    return [row["run"]["id"] for row in answer.json()]


@pytest.mark.parametrize(
    ("role", "sees"),
    [
        ("admin", True),
        ("maintain", True),
        ("write", True),
        ("triage", True),
        ("read", True),
        ("none", False),
        (None, False),
    ],
    ids=["admin", "maintain", "write", "triage", "read", "none", "not-a-collaborator"],
)
async def test_a_private_run_is_seen_only_with_read_on_github(client, github, run_id, role, sees):
    github.standin.set_permission("octo", "exp", "alice", role)
    async with browser(client, github, ALICE) as alice:
        detail = await alice.get(f"/api/v1/runs/{run_id}")
        assert detail.status_code == (200 if sees else 404)
        if sees:
            assert detail.json()["run"]["id"] == run_id
            assert detail.json()["repository"]["private"] is True
        assert await listed(alice) == ([run_id] if sees else [])
    # Nobody signed in sees nothing of it either.
    assert (await client.get(f"/api/v1/runs/{run_id}")).status_code == 404
    assert await listed(client) == []


async def test_writers_cancel_readers_may_not(client, github, run_id):
    github.standin.set_permission("octo", "exp", "alice", "write")
    github.standin.set_permission("octo", "exp", "bob", "read")
    async with (
        browser(client, github, ALICE) as alice,
        browser(client, github, BOB) as bob,
    ):
        cancel = f"/api/v1/runs/{run_id}/cancel"
        no_token = await alice.post(cancel)
        assert no_token.status_code == 403
        assert "CSRF token missing or wrong" in no_token.text
        bob_csrf = await csrf_of(bob)
        refused = await bob.post(cancel, headers={"x-csrf-token": bob_csrf})
        assert refused.status_code == 403
        assert refused.json()["error"] == "bob has read permission on octo/exp, not write"
        wrong = await alice.post(cancel, headers={"x-csrf-token": bob_csrf})
        assert wrong.status_code == 403  # another session's token is no token
        done = await alice.post(cancel, headers={"x-csrf-token": await csrf_of(alice)})
        assert done.status_code == 200, done.text
        assert done.json() == {
            "run_id": run_id,
            "cancelled_jobs": 1,
            "reason": "stopped by alice",
        }
        states = [
            job["job"]["state"]
            for job in (await alice.get(f"/api/v1/runs/{run_id}")).json()["jobs"]
        ]
        assert states == ["cancelled"]


async def test_permissions_are_cached_and_asked_once_per_period(client, github, run_id):
    standin = github.standin
    standin.set_permission("octo", "exp", "carol", "read")
    async with browser(client, github, CAROL) as carol:
        for _ in range(5):
            assert (await carol.get(f"/api/v1/runs/{run_id}")).status_code == 200
            assert await listed(carol) == [run_id]
        asked = standin.permission_requests("octo", "exp", "carol")
        assert len(asked) == 1
        assert asked[0].token == "test-token"  # the server's credential, not carol's
        # GitHub takes her access away: labci follows once its cache expires, not before.
        standin.set_permission("octo", "exp", "carol", "none")
        deadline = time.monotonic() + CACHE_S + 10.0
        reads = 0  # until labci asks again, every read gets the cached answer
        while len(standin.permission_requests("octo", "exp", "carol")) < 2:
            assert time.monotonic() < deadline, "labci never asked GitHub again"
            seen = (await carol.get(f"/api/v1/runs/{run_id}")).status_code
            reads += 1
            if len(standin.permission_requests("octo", "exp", "carol")) < 2:
                assert seen == 200  # still the cached answer
                await asyncio.sleep(0.05)
        first, second = standin.permission_requests("octo", "exp", "carol")
        assert second.received_at - first.received_at >= CACHE_S - 0.05  # not before expiry
        assert (await carol.get(f"/api/v1/runs/{run_id}")).status_code == 404
        assert await listed(carol) == []
        assert len(standin.permission_requests("octo", "exp", "carol")) == 2
        assert reads >= 1
        assert second.token == "test-token"


async def test_a_login_github_gave_to_someone_else_carries_no_permission(client, github, run_id):
    """Logins are reused: once alice's GitHub login names another account (another id), what
    GitHub says of that login is not alice's permission, though her labci session lives on."""
    github.standin.set_permission("octo", "exp", "alice", "write")
    async with browser(client, github, ALICE) as alice:
        assert (await alice.get(f"/api/v1/runs/{run_id}")).status_code == 200
        sessions = client.app.state.context.sessions
        async with sessions() as session, session.begin():
            user = await user_by_login(session, provider="github", login="alice")
            assert user is not None
            user.forge_user_id = 99_999  # GitHub's "alice" is no longer this account
            session.add(user)
        await client.app.state.context.redis.flushdb()  # the cached answer was hers
        assert (await alice.get(f"/api/v1/runs/{run_id}")).status_code == 404
