"""The outbox against the GitHub stand-in (reliability C1, C3, C5, C7)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx
import pytest

from forge_standin import create_bare_repo
from helpers.server import server_context, test_settings
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.repositories import ensure_repository
from labci_server.forge.github import GitHubForge
from labci_server.forge.outbox import deliver_due, enqueue_status

CONTEXTS = [f"labci/train/job{i}" for i in range(10)]


async def deliver_all(sc, *, rounds: int = 400) -> None:
    for _ in range(rounds):
        await deliver_due(sc.sessions, sc.forges, sc.outbox_policy)
        async with sc.sessions() as session:
            if not await outbox_queries.messages_by_status(session, "pending"):
                return
        await asyncio.sleep(0.02)
    pytest.fail("outbox did not drain")


@pytest.fixture
async def github_sc(github, database_url, redis_url):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({"README.md": "hi"})
    settings = test_settings(
        database_url, redis_url, github_api_url=github.url, github_token="test-token"
    )
    async with httpx.AsyncClient() as http:
        forge = GitHubForge(http, api_url=github.url, token="test-token")
        async with server_context(settings, forges={"github": forge}) as sc:
            async with sc.sessions() as session, session.begin():
                row = await ensure_repository(
                    session, provider="github", full_name="octo/exp", clone_url=repo.clone_url
                )
            sc.test_repo_id, sc.test_sha = row.id, sha  # type: ignore[attr-defined]
            yield sc


async def queue(sc, context: str, state: str, description: str = "queued") -> None:
    async with sc.sessions() as session, session.begin():
        await enqueue_status(
            session,
            repository_id=sc.test_repo_id,
            commit_sha=sc.test_sha,
            context=context,
            state=state,
            description=description,
            target_url="http://labci.test/runs/1",
        )


def successful_posts(github) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for request in github.standin.status_posts(status=201):
        counts[
            (request.path.rsplit("/", 1)[-1], request.json["context"], request.json["state"])
        ] += 1
    return dict(counts)


async def test_flaky_forge_gets_every_status_exactly_once(github, github_sc):
    github.standin.fail_ratio(0.3, seed=7, statuses=(500, 502))
    for context in CONTEXTS:
        await queue(github_sc, context, "pending")
    for context in CONTEXTS:
        await queue(github_sc, context, "success", "accuracy 0.91")
    await deliver_all(github_sc)
    sha = github_sc.test_sha
    # Pendings that were still unsent when the success was queued are superseded, never sent late.
    async with github_sc.sessions() as session:
        sent = await outbox_queries.messages_by_status(session, "sent")
        superseded = await outbox_queries.messages_by_status(session, "superseded")
    expected = {(sha, m.context, m.state): 1 for m in sent}
    assert successful_posts(github) == expected
    assert {(sha, c, "success") for c in CONTEXTS} <= set(expected)
    assert len(sent) + len(superseded) == 2 * len(CONTEXTS)
    final = {s["context"]: s["state"] for s in github.standin.statuses[("octo", "exp", sha)]}
    assert final == dict.fromkeys(CONTEXTS, "success")
    attempts_by_message = defaultdict(list)
    for request in github.standin.requests:
        if request.method == "POST":
            attempts_by_message[(request.json["context"], request.json["state"])].append(
                request.received_at
            )
    for times in attempts_by_message.values():
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(
            later >= earlier * 0.9 for earlier, later in zip(gaps, gaps[1:], strict=False)
        ), gaps


async def test_crash_after_the_forge_stored_a_status_does_not_post_twice(github, github_sc):
    github.standin.crash_after_commit_next(1)
    await queue(github_sc, "labci/train/a", "success", "accuracy 0.9")
    await deliver_all(github_sc)
    posts = github.standin.status_posts(status=None)
    assert len([p for p in posts if p.json["context"] == "labci/train/a"]) == 1
    assert [s["state"] for s in github.standin.statuses[("octo", "exp", github_sc.test_sha)]] == [
        "success"
    ]
    reads = [
        r for r in github.standin.requests if r.method == "GET" and r.path.endswith("/statuses")
    ]
    assert reads, "the retry must read the forge back before posting again"


async def test_rejected_status_is_dead_lettered_after_one_attempt(github, github_sc):
    github.standin.fail_next(1, status=422)
    await queue(github_sc, "labci/train/a", "failure", "loss went up")
    await deliver_all(github_sc)
    async with github_sc.sessions() as session:
        dead = await outbox_queries.messages_by_status(session, "dead")
    assert [(m.context, m.attempts) for m in dead] == [("labci/train/a", 1)]
    assert "422" in (dead[0].last_error or "")
    assert len(github.standin.mutations()) == 1


async def test_retry_after_is_honoured(github, github_sc):
    github.standin.fail_next(1, status=403, headers={"retry-after": "1"})
    await queue(github_sc, "labci/train/a", "success", "ok")
    await deliver_all(github_sc)
    posts = [r for r in github.standin.requests if r.method == "POST"]
    assert [p.status for p in posts] == [403, 201]
    assert posts[1].received_at - posts[0].received_at >= 1.0


async def test_late_pending_after_terminal_is_never_posted(github, github_sc):
    await queue(github_sc, "labci/train/a", "pending")
    await queue(github_sc, "labci/train/a", "success", "ok")
    await queue(github_sc, "labci/train/a", "pending")  # a retried attempt's late pending
    await deliver_all(github_sc)
    states = [s["state"] for s in github.standin.statuses[("octo", "exp", github_sc.test_sha)]]
    assert states == ["success"]


@pytest.mark.parametrize(
    "description",
    ["x" * 500, "accuracy " + "🧪" * 200, "שלום " * 60, "line\nbreaks\tand   spaces " * 10],
    ids=["ascii", "emoji", "rtl", "whitespace"],
)
async def test_long_descriptions_are_clipped_to_140_characters(github, github_sc, description):
    await queue(github_sc, "labci/train/a", "success", description)
    await deliver_all(github_sc)
    (status,) = github.standin.statuses[("octo", "exp", github_sc.test_sha)]
    assert len(status["description"]) <= 140
    assert status["description"].endswith("…")


async def test_secondary_rate_limit_without_headers_is_retried_after_the_minimum(github, github_sc):
    github.standin.fail_next(
        1,
        status=403,
        body={"message": "You have exceeded a secondary rate limit.", "documentation_url": "x"},
    )
    await queue(github_sc, "labci/train/a", "success", "ok")
    await deliver_all(github_sc)
    posts = [r for r in github.standin.requests if r.method == "POST"]
    assert [p.status for p in posts] == [403, 201]
    assert posts[1].received_at - posts[0].received_at >= github_sc.settings.outbox_min_backoff_s


async def test_permission_denied_403_is_dead_lettered(github, github_sc):
    github.standin.fail_next(
        1,
        status=403,
        body={"message": "Resource not accessible by integration", "documentation_url": "x"},
    )
    await queue(github_sc, "labci/train/a", "success", "ok")
    await deliver_all(github_sc)
    async with github_sc.sessions() as session:
        dead = await outbox_queries.messages_by_status(session, "dead")
    assert [m.context for m in dead] == ["labci/train/a"]
    assert "403" in (dead[0].last_error or "")
