"""Check runs for a repository reached through labci's GitHub App, against the GitHub
stand-in (installation tokens minted from a real RSA key, every request checked against
GitHub's OpenAPI description): each context's check run follows its status, carries the
comment's markdown for it, and its "Re-run" button runs the context's jobs again."""

from __future__ import annotations

import json

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from forge_standin import create_bare_repo
from forge_standin.webhooks import check_run_payload, sign
from helpers.server import TEST_SECRET, server_context, test_settings
from labci_server.app import create_app
from labci_server.db.queries import jobs as job_queries
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.runs import jobs_of_run, runs_for_event
from labci_server.errors import ConfigError
from labci_server.forge.github import GitHubForge
from labci_server.forge.github_app import InstallationTokens
from labci_server.forge.outbox import deliver_due
from labci_server.forge.registry import build_forges
from labci_server.planning.planner import plan_event
from labci_server.results.ingest import finish_job
from labci_server.webhooks.github import NewEvent
from labci_server.webhooks.ingest import store_event

APP_ID, INSTALLATION = 4242, 77
CONTEXT = "labci/train/fit"
TRAIN = """\
name: train
on: [push]
jobs:
  fit:
    runs-on: cpu
    steps: [{run: python train.py}]
    metrics:
      file: m.json
      compare:
        acc: {goal: max, tolerance: 0.005}
"""


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def app_sc(github, database_url, redis_url, app_key):
    pem = app_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    github.standin.register_app(APP_ID, public)
    github.standin.install_app(APP_ID, INSTALLATION, ["octo/exp"])
    settings = test_settings(
        database_url,
        redis_url,
        github_api_url=github.url,
        github_app_id=str(APP_ID),
        # As an environment variable often carries it: on one line, breaks written `\n`.
        github_private_key=pem.replace("\n", "\\n"),
    )
    async with httpx.AsyncClient() as http:
        forges = build_forges(settings, None, http)
        assert isinstance(forges["github"], GitHubForge)
        async with server_context(settings, forges={"github": forges["github"]}) as sc:
            yield sc


async def deliver_all(sc) -> None:
    for _ in range(200):
        await deliver_due(sc.sessions, sc.forges, sc.outbox_policy, sc.pacer)
        async with sc.sessions() as session:
            if not await outbox_queries.messages_by_status(session, "pending"):
                return
    pytest.fail("outbox did not drain")


async def push(sc, repo, sha: str) -> int:
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
            installation_id=INSTALLATION,
        ),
    )
    assert event_id is not None
    await plan_event(sc, event_id)
    return event_id


async def the_job(sc, event_id: int):
    async with sc.sessions() as session:
        (run,) = await runs_for_event(session, event_id)
        (job,) = await jobs_of_run(session, run.id or 0)
    return job


async def finish(sc, job_id: int, metrics: dict[str, float] | None, outcome="success") -> None:
    async with sc.sessions() as session, session.begin():
        row = await job_queries.get_job(session, job_id, for_update=True)
        assert row is not None
        await finish_job(
            session,
            row,
            outcome=outcome,
            reason=None if outcome == "success" else "it broke",
            metrics=metrics,
            run_url=f"http://labci.test/runs/{row.run_id}",
        )


async def request_rerun(
    sc, github, repo, sha: str, check_run: dict, *, app_id: int = APP_ID
) -> httpx.Response:
    payload = check_run_payload(
        "octo",
        "exp",
        repo.clone_url,
        check_run_id=check_run["id"],
        head_sha=sha,
        name=check_run["name"],
        external_id=check_run["external_id"],
        app_id=app_id,
        installation_id=INSTALLATION,
    )
    payload["sender"] = {**(payload.get("sender") or {}), "login": "reviewer"}
    body = json.dumps(payload).encode()
    headers = {
        "x-github-event": "check_run",
        "x-github-delivery": f"rerun-{check_run['id']}",
        "x-hub-signature-256": sign(body, TEST_SECRET),
        "content-type": "application/json",
    }
    app = create_app(sc.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            return await c.post("/webhooks/github", content=body, headers=headers)


async def test_a_check_run_follows_each_context_and_rerun_runs_it_again(github, app_sc):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/train.yml": TRAIN, "train.py": "print(1)"})
    event_id = await push(app_sc, repo, sha)
    await deliver_all(app_sc)
    (queued,) = github.standin.check_runs("octo", "exp", sha)
    assert (queued["name"], queued["external_id"], queued["status"]) == (CONTEXT, CONTEXT, "queued")
    assert queued["app_id"] == APP_ID

    job = await the_job(app_sc, event_id)
    await finish(app_sc, job.id or 0, {"acc": 0.91})
    await deliver_all(app_sc)
    (done,) = github.standin.check_runs("octo", "exp", sha)
    assert done["id"] == queued["id"]  # the same check run, updated
    assert (done["status"], done["conclusion"]) == ("completed", "success")
    assert done["title"] == "acc 0.91 · no baseline"
    assert "| `acc` ↑ |" in done["summary"]  # the comment's table for this context
    assert done["details_url"].startswith("http://labci.test/runs/")
    tokens = {r.token for r in github.standin.mutations() if "/check-runs" in r.path}
    assert len(tokens) == 1
    assert None not in tokens  # installation tokens, never the App's JWT or nothing

    answer = await request_rerun(app_sc, github, repo, sha, done)
    assert answer.status_code == 202, answer.text
    assert answer.json()["rerun"]["context"] == CONTEXT
    again = await request_rerun(app_sc, github, repo, sha, done)  # pressed twice: one re-run
    assert "ignored" in again.json()
    job = await the_job(app_sc, event_id)
    assert (job.state, job.attempt, job.reason) == ("pending", 2, "re-run requested by @reviewer")
    await deliver_all(app_sc)
    first, second = github.standin.check_runs("octo", "exp", sha)
    assert first["conclusion"] == "success"  # the old check run stays as it ended
    assert (second["name"], second["status"]) == (CONTEXT, "queued")

    await finish(app_sc, job.id or 0, None, outcome="failure")
    await deliver_all(app_sc)
    first, second = github.standin.check_runs("octo", "exp", sha)
    assert (second["status"], second["conclusion"]) == ("completed", "failure")
    statuses = [
        (s["state"], s["description"]) for s in github.standin.statuses[("octo", "exp", sha)]
    ]
    assert statuses[-3:] == [
        ("success", "acc 0.91 · no baseline"),
        ("pending", "re-run requested by @reviewer"),
        ("failure", "it broke"),
    ]
    assert not github.standin.violations


async def test_the_same_outcome_after_a_rerun_is_posted_again(github, app_sc):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/train.yml": TRAIN, "train.py": "print(1)"})
    event_id = await push(app_sc, repo, sha)
    job = await the_job(app_sc, event_id)
    await finish(app_sc, job.id or 0, {"acc": 0.91})
    await deliver_all(app_sc)
    (done,) = github.standin.check_runs("octo", "exp", sha)
    assert (await request_rerun(app_sc, github, repo, sha, done)).status_code == 202
    await deliver_all(app_sc)
    await finish(app_sc, job.id or 0, {"acc": 0.91})
    await deliver_all(app_sc)
    states = [s["state"] for s in github.standin.statuses[("octo", "exp", sha)]]
    assert states[-1] == "success"  # not left at the re-run's pending
    assert states.count("success") == 2
    runs = github.standin.check_runs("octo", "exp", sha)
    assert [(r["status"], r["conclusion"]) for r in runs] == [("completed", "success")] * 2


async def test_another_apps_check_run_is_not_rerun(github, app_sc):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/train.yml": TRAIN, "train.py": "print(1)"})
    event_id = await push(app_sc, repo, sha)
    job = await the_job(app_sc, event_id)
    await finish(app_sc, job.id or 0, {"acc": 0.91})
    foreign = {"id": 999, "name": CONTEXT, "external_id": CONTEXT}
    answer = await request_rerun(app_sc, github, repo, sha, foreign, app_id=APP_ID + 1)
    assert "ignored" in answer.json()
    job = await the_job(app_sc, event_id)
    assert (job.state, job.attempt) == ("success", 1)


def test_an_app_id_without_its_key_is_refused():
    with pytest.raises(ValueError, match="LABCI_GITHUB_APP_ID and LABCI_GITHUB_PRIVATE_KEY"):
        test_settings("sqlite://", "redis://x", github_app_id="1")


def test_a_key_that_cannot_sign_is_refused_when_the_forge_is_built():
    with pytest.raises(ConfigError, match="LABCI_GITHUB_PRIVATE_KEY"):
        InstallationTokens(httpx.AsyncClient(), api_url="http://x", app_id="1", private_key="no")


async def test_a_repository_served_with_a_token_gets_statuses_and_no_check_runs(
    github, database_url, redis_url
):
    """Deliveries carry `installation` whenever an App sends them, also to a labci that
    holds only a token: it must queue no check runs (they could only be dead-lettered)."""
    settings = test_settings(
        database_url, redis_url, github_api_url=github.url, github_token="test-token"
    )
    async with httpx.AsyncClient() as http:
        forges = build_forges(settings, None, http)
        async with server_context(settings, forges={"github": forges["github"]}) as sc:
            repo = create_bare_repo(github.repos_root, "octo", "exp")
            sha = repo.commit({".labci/train.yml": TRAIN, "train.py": "print(1)"})
            event_id = await push(sc, repo, sha)
            await finish(sc, (await the_job(sc, event_id)).id or 0, {"acc": 0.91})
            await deliver_all(sc)
            async with sc.sessions() as session:
                sent = await outbox_queries.messages_by_status(session, "sent")
                dead = await outbox_queries.messages_by_status(session, "dead")
    assert dead == []
    assert {m.kind for m in sent} == {"status"}
    assert github.standin.check_runs("octo", "exp", sha) == []
    posted = [json.loads(r.body)["state"] for r in github.standin.status_posts()]
    assert posted[-1] == "success"
