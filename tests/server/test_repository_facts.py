"""A repository's clone URL, visibility and installation come from GitHub's API, never from a
delivery (issue 9): planning reads them when due, a `repository` webhook reads them at once,
and a forge outage delays planning without losing the event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from arq import Retry
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from forge_standin import (
    BareRepo,
    create_bare_repo,
    headers,
    pull_request_payload,
    push_payload,
    repository_payload,
)
from helpers.server import TEST_SECRET, test_settings
from labci_server.app import create_app
from labci_server.context import ServerContext
from labci_server.db.migrate import upgrade
from labci_server.db.models import Repository
from labci_server.db.queries.events import get_event
from labci_server.db.queries.repositories import find_repository
from labci_server.errors import ForgeRejected
from labci_server.forge.facts import RepositoryFacts
from labci_server.forge.github import GitHubForge
from labci_server.forge.github_app import InstallationTokens
from labci_server.workers import SchedulingPasses, plan_event_task

WORKFLOW = (
    "name: t\non: [push, pull_request]\njobs:\n  a:\n    runs-on: cpu\n    steps: [{run: 'true'}]\n"
)
ATTACKER_URL = "https://evil.example/octo/exp.git"
GITHUB_TOKEN = "test-token"  # the `github` fixture's


@dataclass
class Subject:
    client: httpx.AsyncClient
    sc: ServerContext
    github: object
    bare: BareRepo

    async def deliver(self, event: str, payload: dict, delivery_id: str) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await self.client.post(
            "/webhooks/github", content=body, headers=headers(event, delivery_id, body, TEST_SECRET)
        )

    async def repo(self, full_name: str = "octo/exp") -> Repository:
        async with self.sc.sessions() as session:
            found = await find_repository(session, provider="github", full_name=full_name)
        assert found is not None
        return found

    async def plan(self, event_id: int, job_try: int = 1) -> int:
        ctx = {"labci": self.sc, "job_try": job_try, "passes": SchedulingPasses(self.sc)}
        return await plan_event_task(ctx, event_id)

    async def event_state(self, event_id: int) -> str:
        async with self.sc.sessions() as session:
            event = await get_event(session, event_id)
        assert event is not None
        return event.state

    def repository_gets(self) -> list[str]:
        return [
            r.path
            for r in self.github.standin.requests  # type: ignore[attr-defined]
            if r.method == "GET" and r.path == "/repos/octo/exp"
        ]


@pytest.fixture
async def subject(database_url, redis_url, github) -> AsyncIterator[Subject]:
    bare = create_bare_repo(github.repos_root, "octo", "exp")
    bare.commit({".labci/t.yml": WORKFLOW}, "c0")
    settings = test_settings(
        database_url, redis_url, github_api_url=github.url, github_token=GITHUB_TOKEN
    )
    await upgrade(database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            yield Subject(c, app.state.context, github, bare)


def push(bare: BareRepo, *, clone_url: str, private: bool) -> dict:
    return push_payload(
        "octo", "exp", clone_url, "refs/heads/main", "0" * 40, bare.rev("main"), private=private
    )


async def test_a_delivery_never_rewrites_a_known_repositorys_facts(subject: Subject) -> None:
    subject.github.standin.set_visibility("octo", "exp", "private")  # type: ignore[attr-defined]
    first = await subject.deliver(
        "push", push(subject.bare, clone_url=subject.bare.clone_url, private=True), "d1"
    )
    assert first.status_code == 202
    await subject.plan(first.json()["event_id"])
    before = await subject.repo()
    assert (before.clone_url, before.private) == (subject.bare.clone_url, True)
    assert before.facts_checked_at is not None

    # A signed delivery claiming the repository is public and lives elsewhere (the way a
    # gated fork pull request did it) changes none of that.
    payload = pull_request_payload(
        "opened",
        "octo",
        "exp",
        ATTACKER_URL,
        5,
        "f",
        subject.bare.rev("main"),
        "main",
        subject.bare.rev("main"),
        head_owner="mallory",
    )
    payload["repository"]["private"] = False
    payload["installation"] = {"id": 999, "node_id": "x"}
    second = await subject.deliver("pull_request", payload, "d2")
    assert second.json()["from_fork"].startswith("pull request from a fork")
    after = await subject.repo()
    assert (after.clone_url, after.private, after.installation_id, after.facts_checked_at) == (
        subject.bare.clone_url,
        True,
        None,
        before.facts_checked_at,
    )


async def test_planning_reads_the_facts_from_the_api_once_they_are_due(subject: Subject) -> None:
    # The first delivery claims a public repository at another address; GitHub says not so.
    subject.github.standin.set_visibility("octo", "exp", "private")  # type: ignore[attr-defined]
    response = await subject.deliver(
        "push", push(subject.bare, clone_url=ATTACKER_URL, private=False), "d1"
    )
    created = await subject.repo()
    assert (created.clone_url, created.facts_checked_at) == (ATTACKER_URL, None)

    assert await subject.plan(response.json()["event_id"]) == 1
    read = await subject.repo()
    assert (read.clone_url, read.private, read.installation_id) == (
        subject.bare.clone_url,
        True,
        None,
    )
    assert subject.repository_gets() == ["/repos/octo/exp"]

    # Fresh facts are not read again for the next event.
    subject.bare.commit({"b.txt": "b\n"}, "c1")
    again = await subject.deliver(
        "push", push(subject.bare, clone_url=ATTACKER_URL, private=False), "d2"
    )
    await subject.plan(again.json()["event_id"])
    assert subject.repository_gets() == ["/repos/octo/exp"]


async def test_the_default_branch_comes_from_the_api(subject: Subject) -> None:
    github = subject.github
    bare = create_bare_repo(github.repos_root, "octo", "lab", default_branch="trunk")  # type: ignore[attr-defined]
    bare.commit({".labci/t.yml": WORKFLOW}, "c0", branch="trunk")
    # What the delivery says of the default branch plays no part.
    payload = push_payload(
        "octo",
        "lab",
        bare.clone_url,
        "refs/heads/trunk",
        "0" * 40,
        bare.rev("trunk"),
        default_branch="main",
    )
    response = await subject.deliver("push", payload, "d1")
    assert (await subject.repo("octo/lab")).default_branch is None

    await subject.plan(response.json()["event_id"])

    assert (await subject.repo("octo/lab")).default_branch == "trunk"


async def test_a_privatized_event_reads_the_visibility_from_the_api(subject: Subject) -> None:
    first = await subject.deliver(
        "push", push(subject.bare, clone_url=subject.bare.clone_url, private=False), "d1"
    )
    await subject.plan(first.json()["event_id"])
    assert (await subject.repo()).private is False

    subject.github.standin.set_visibility("octo", "exp", "private")  # type: ignore[attr-defined]
    # The payload says "public" and points elsewhere: only the API's answer counts.
    payload = repository_payload("privatized", "octo", "exp", ATTACKER_URL, private=False)
    response = await subject.deliver("repository", payload, "d2")
    assert (response.status_code, response.json()) == (
        202,
        {"repositories": ["octo/exp: refreshed"]},
    )
    repo = await subject.repo()
    assert (repo.private, repo.clone_url) == (True, subject.bare.clone_url)
    assert subject.repository_gets() == ["/repos/octo/exp", "/repos/octo/exp"]


async def test_a_repository_event_during_an_outage_leaves_the_facts_due(subject: Subject) -> None:
    first = await subject.deliver(
        "push", push(subject.bare, clone_url=subject.bare.clone_url, private=False), "d1"
    )
    await subject.plan(first.json()["event_id"])
    subject.github.standin.fail_next(1, 502)  # type: ignore[attr-defined]
    payload = repository_payload("privatized", "octo", "exp", subject.bare.clone_url, private=True)
    response = await subject.deliver("repository", payload, "d2")
    assert response.json() == {
        "repositories": ["octo/exp: forge unavailable, read again before planning"]
    }
    assert (await subject.repo()).facts_checked_at is None


async def test_an_api_outage_retries_the_event_and_loses_nothing(subject: Subject) -> None:
    response = await subject.deliver(
        "push", push(subject.bare, clone_url=subject.bare.clone_url, private=False), "d1"
    )
    event_id = response.json()["event_id"]
    subject.github.standin.fail_next(1, 502)  # type: ignore[attr-defined]
    with pytest.raises(Retry):
        await subject.plan(event_id)
    assert await subject.event_state(event_id) == "received"
    assert (await subject.repo()).facts_checked_at is None

    assert await subject.plan(event_id, job_try=2) == 1
    assert await subject.event_state(event_id) == "planned"
    assert (await subject.repo()).facts_checked_at is not None


async def test_a_repository_github_does_not_show_fails_its_event(subject: Subject) -> None:
    payload = push_payload("octo", "gone", ATTACKER_URL, "refs/heads/main", "0" * 40, "a" * 40)
    response = await subject.deliver("push", payload, "d1")
    event_id = response.json()["event_id"]
    assert await subject.plan(event_id) == 0
    assert await subject.event_state(event_id) == "failed"
    assert (await subject.repo("octo/gone")).clone_url == ATTACKER_URL  # nothing was read


APP_ID = 31338
INSTALLATION = 78


def app_tokens(http: httpx.AsyncClient, github, key: rsa.RSAPrivateKey) -> InstallationTokens:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return InstallationTokens(http, api_url=github.url, app_id=str(APP_ID), private_key=pem)


async def test_as_an_app_the_installation_comes_from_the_api(github) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    create_bare_repo(github.repos_root, "octo", "exp").commit({"a": "a\n"}, "c0")
    create_bare_repo(github.repos_root, "octo", "elsewhere").commit({"a": "a\n"}, "c0")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    github.standin.register_app(APP_ID, public)
    github.standin.install_app(APP_ID, INSTALLATION, ["octo/exp"])
    github.standin.set_visibility("octo", "exp", "private")
    async with httpx.AsyncClient() as http:
        forge = GitHubForge(http, api_url=github.url, token=None, app=app_tokens(http, github, key))
        # What a delivery claimed (another installation) plays no part.
        row = Repository(provider="github", full_name="octo/exp", clone_url="x", installation_id=5)
        facts = await forge.repository_facts(row)
        assert facts == RepositoryFacts(
            clone_url=(github.repos_root / "octo" / "exp.git").as_uri(),
            private=True,
            installation_id=INSTALLATION,
            default_branch="main",
        )
        lookup, _mint, read = github.standin.requests
        assert (lookup.path, lookup.headers["authorization"].split()[0]) == (
            "/repos/octo/exp/installation",
            "bearer",
        )
        assert read.path == "/repos/octo/exp"
        assert read.token is not None
        assert read.token.startswith("ghs_")

        elsewhere = Repository(provider="github", full_name="octo/elsewhere", clone_url="x")
        with pytest.raises(ForgeRejected) as refused:
            await forge.repository_facts(elsewhere)
    assert refused.value.status == 404
    assert str(refused.value) == (
        "octo/elsewhere: labci's GitHub App is not installed on this repository; install it there"
    )


async def test_a_rename_hides_the_old_name_until_github_vouches_for_it(subject: Subject) -> None:
    old = create_bare_repo(subject.github.repos_root, "octo", "Hello-World")  # type: ignore[attr-defined]
    old.commit({".labci/t.yml": WORKFLOW}, "c0")
    first = push_payload(
        "octo", "Hello-World", old.clone_url, "refs/heads/main", "0" * 40, old.rev("main")
    )
    await subject.plan((await subject.deliver("push", first, "d1")).json()["event_id"])
    assert (await subject.repo("octo/Hello-World")).private is False
    # GitHub's example renames Hello-World; here to "exp". The stand-in does not serve the
    # old name any more than GitHub would without its redirect: the old row is hidden.
    (subject.github.repos_root / "octo" / "Hello-World.git").rename(  # type: ignore[attr-defined]
        subject.github.repos_root / "octo" / "gone.git"  # type: ignore[attr-defined]
    )
    payload = repository_payload("renamed", "octo", "exp", subject.bare.clone_url)
    response = await subject.deliver("repository", payload, "d2")
    assert response.json() == {
        "repositories": ["octo/Hello-World: not visible to labci (404), made private"]
    }
    hidden = await subject.repo("octo/Hello-World")
    assert (hidden.private, hidden.facts_checked_at) == (True, None)
