"""The outbox against the GitHub stand-in (reliability C1, C2, C3, C4, C5, C7)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from contextlib import asynccontextmanager

import httpx
import pytest

from forge_standin import create_bare_repo
from helpers.people import admin_token, bearer
from helpers.server import server_context, test_settings
from labci_server.app import create_app
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.repositories import ensure_repository
from labci_server.forge.github import GitHubForge
from labci_server.forge.outbox import deliver_due, enqueue_status

CONTEXTS = [f"labci/train/job{i}" for i in range(10)]


async def deliver_all(sc, *, rounds: int = 400) -> None:
    for _ in range(rounds):
        await deliver_due(sc.sessions, sc.forges, sc.outbox_policy, sc.pacer)
        async with sc.sessions() as session:
            if not await outbox_queries.messages_by_status(session, "pending"):
                return
        await asyncio.sleep(0.02)
    pytest.fail("outbox did not drain")


@asynccontextmanager
async def github_context(github, database_url, redis_url, **overrides):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({"README.md": "hi"})
    settings = test_settings(
        database_url, redis_url, github_api_url=github.url, github_token="test-token", **overrides
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


@pytest.fixture
async def github_sc(github, database_url, redis_url):
    async with github_context(github, database_url, redis_url) as sc:
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
    assert (
        posts[1].received_at - posts[0].received_at >= github_sc.settings.outbox_rate_limit_wait_s
    )


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


async def test_retry_after_holds_every_message_of_the_credential(github, github_sc):
    """C2: after `403 retry-after: 3`, no request at all within 3 s, for any message."""
    github.standin.fail_next(1, status=403, headers={"retry-after": "3"})
    for context in CONTEXTS[:3]:
        await queue(github_sc, context, "success", "ok")
    await deliver_all(github_sc)
    first, *later = github.standin.requests
    assert first.status == 403
    assert [r.status for r in later if r.method == "POST"] == [201, 201, 201]
    assert min(r.received_at for r in later) - first.received_at >= 3.0


async def test_exhausted_rate_limit_waits_for_its_reset(github, github_sc):
    """C2: `x-ratelimit-remaining: 0` with a reset time → no request before the reset."""
    reset = int(time.time()) + 2
    github.standin.fail_next(
        1,
        status=403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        body={"message": "API rate limit exceeded for installation.", "documentation_url": "x"},
    )
    for context in CONTEXTS[:2]:
        await queue(github_sc, context, "success", "ok")
    await deliver_all(github_sc)
    first, *later = github.standin.requests
    assert first.status == 403
    assert [r.status for r in later if r.method == "POST"] == [201, 201]
    assert min(r.received_at for r in later) >= reset


async def test_rate_limit_without_headers_backs_off_exponentially_then_dead_letters(
    github, database_url, redis_url
):
    """C2: neither header → the configured minimum, then longer; dead after N, in the API."""
    secondary = {"message": "You have exceeded a secondary rate limit.", "documentation_url": "x"}
    github.standin.fail_next(3, status=403, body=secondary)
    async with github_context(
        github, database_url, redis_url, outbox_max_attempts=3, outbox_rate_limit_wait_s=0.3
    ) as sc:
        await queue(sc, "labci/train/a", "success", "ok")
        await deliver_all(sc)
        times = [r.received_at for r in github.standin.requests]
        assert len(times) == 3
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps[0] >= 0.3, gaps
        assert gaps[1] >= 0.6, gaps
        auth = bearer(await admin_token(sc.sessions))
        app = create_app(sc.settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://labci.test", headers=auth
            ) as c:
                dead = (await c.get("/api/v1/outbox", params={"status": "dead"})).json()
                bad = await c.get("/api/v1/outbox", params={"status": "lost"})
    assert [(m["repository"], m["context"], m["state"], m["attempts"]) for m in dead] == [
        ("octo/exp", "labci/train/a", "success", 3)
    ]
    assert "gave up after 3 attempts" in dead[0]["last_error"]
    assert "403" in dead[0]["last_error"]
    assert bad.status_code == 400
    assert "dead" in bad.json()["error"]


async def deliver_concurrently(sc, loops: int) -> None:
    """`loops` workers' delivery loops side by side, as on a server with several workers."""

    async def loop() -> None:
        for _ in range(2000):
            await deliver_due(sc.sessions, sc.forges, sc.outbox_policy, sc.pacer)
            async with sc.sessions() as session:
                if not await outbox_queries.messages_by_status(session, "pending"):
                    return
            await asyncio.sleep(0.01)
        pytest.fail("outbox did not drain")

    await asyncio.gather(*(loop() for _ in range(loops)))


async def queue_many(sc, n: int) -> None:
    async with sc.sessions() as session, session.begin():
        for i in range(n):
            await enqueue_status(
                session,
                repository_id=sc.test_repo_id,
                commit_sha=sc.test_sha,
                context=f"labci/train/job{i}",
                state="success",
                description="ok",
                target_url="http://labci.test/runs/1",
            )


@pytest.mark.parametrize(("count", "interval"), [(200, 0.05), (5, 1.0)], ids=["200", "1s"])
async def test_one_mutation_in_flight_per_token_with_the_minimum_interval(
    github, database_url, redis_url, count, interval
):
    """C4: statuses queued at once, two delivery loops → never two mutations in flight with
    one token, and the configured interval between them (1 s in production; 200 statuses
    run at a scaled-down interval, a few at the real one)."""
    github.standin.latency = 0.01
    async with github_context(
        github, database_url, redis_url, outbox_min_interval_s=interval
    ) as sc:
        await queue_many(sc, count)
        await deliver_concurrently(sc, loops=2)
    mutations = github.standin.mutations()
    assert len(mutations) == count
    assert {m.status for m in mutations} == {201}
    assert max(m.in_flight for m in mutations) == 1
    starts = sorted(m.received_at for m in mutations)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= interval, min(gaps)


async def test_unsent_pending_is_coalesced_when_the_terminal_status_arrives(github, github_sc):
    """An older `pending` for the same commit and context that was never sent is dropped."""
    await queue(github_sc, "labci/train/a", "pending", "queued")
    await queue(github_sc, "labci/train/a", "pending", "running on gpu-1")
    await queue(github_sc, "labci/train/a", "failure", "acc 0.80 (−0.11) · 1 regression")
    await deliver_all(github_sc)
    posts = [(p.json["state"], p.json["description"]) for p in github.standin.status_posts()]
    assert posts == [("failure", "acc 0.80 (−0.11) · 1 regression")]
