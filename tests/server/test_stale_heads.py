"""A pull request event whose commit is no longer the pull request's head when it is planned
runs nothing and cancels nothing: the forge is asked for the head now (the GitHub stand-in's
`GET /repos/{owner}/{repo}/pulls/{pull_number}`, the local forge's head branch tip).

Deliveries swapped in storage (head A's event stored after head B's was planned) used to run
A and cancel B, leaving the pull request showing results for a commit that is not its head.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import pytest
from test_run_dedupe import CONTEXTS, FILES, job_states, pull_request, runs_at, store

from forge_standin import BareRepo, Standin, create_bare_repo
from helpers.gitrepo import git, make_repo
from helpers.server import server_context, test_settings
from labci_server.context import ServerContext
from labci_server.db.models import Event
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.events import get_event
from labci_server.db.queries.runs import runs_for_event
from labci_server.errors import ForgeUnavailable
from labci_server.forge.github import GitHubForge
from labci_server.forge.outbox import deliver_due
from labci_server.planning.planner import plan_event
from labci_server.webhooks.github import NewEvent

PR = 7


async def event_row(sc: ServerContext, event_id: int) -> Event:
    async with sc.sessions() as session:
        event = await get_event(session, event_id)
    assert event is not None
    return event


async def status_keys(sc: ServerContext, repository_id: int, sha: str) -> Counter[tuple[str, str]]:
    async with sc.sessions() as session:
        messages = await outbox_queries.messages_for_commit(
            session, repository_id=repository_id, commit_sha=sha
        )
    return Counter((m.context, m.state) for m in messages if m.kind == "status")


async def test_local_forge_a_late_stored_old_head_runs_nothing_and_cancels_nothing(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    base = repo.commit(FILES)
    a = repo.commit({"a.txt": "1"}, branch="feature")
    b = repo.commit({"a.txt": "2"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        # B's event is delivered and planned first; A's `opened` is stored after it.
        newer = await store(sc, pull_request(repo.bare, b, base, "b"))
        assert len(await plan_event(sc, newer)) == 2
        older = await store(sc, pull_request(repo.bare, a, base, "a", action="opened"))
        assert await plan_event(sc, older) == []
        stale, fresh = await event_row(sc, older), await event_row(sc, newer)
        b_runs = await runs_at(sc, b)
        b_states = [await job_states(sc, run) for run in b_runs]
        assert await runs_at(sc, a) == []
        async with sc.sessions() as session:
            assert await runs_for_event(session, older) == []
        a_statuses = await status_keys(sc, fresh.repository_id, a)
        b_statuses = await status_keys(sc, fresh.repository_id, b)
    assert (stale.state, stale.error) == (
        "superseded",
        f"head moved on to {b[:7]} before this event was planned",
    )
    assert (fresh.state, fresh.error) == ("planned", None)
    assert [(r.state, r.conclusion) for r in b_runs] == [("pending", None)] * 2
    assert {state for s in b_states for state in s.values()} == {"pending", "waiting"}
    assert a_statuses == Counter()
    assert b_statuses == Counter({(context, "pending"): 1 for context in CONTEXTS})


async def test_local_forge_in_order_heads_still_supersede(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    base = repo.commit(FILES)
    a = repo.commit({"a.txt": "1"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        first = await store(sc, pull_request(repo.bare, a, base, "a", action="opened"))
        assert len(await plan_event(sc, first)) == 2
        b = repo.commit({"a.txt": "2"}, branch="feature")
        second = await store(sc, pull_request(repo.bare, b, base, "b"))
        assert len(await plan_event(sc, second)) == 2
        a_runs, b_runs = await runs_at(sc, a), await runs_at(sc, b)
        states = [(await event_row(sc, e)).state for e in (first, second)]
    assert states == ["planned", "planned"]
    assert [(r.state, r.conclusion) for r in a_runs] == [("finished", "cancelled")] * 2
    assert [(r.state, r.conclusion) for r in b_runs] == [("pending", None)] * 2


async def test_local_forge_a_deleted_head_branch_plans_as_the_event_says(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    base = repo.commit(FILES)
    head = repo.commit({"a.txt": "1"}, branch="feature")
    event = pull_request(repo.bare, head, base, "gone")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event_id = await store(sc, replace(event, branch="deleted-since"))
        assert len(await plan_event(sc, event_id)) == 2
        assert (await event_row(sc, event_id)).state == "planned"


# -- GitHub (the stand-in) ---------------------------------------------------------------


@dataclass
class GitHub:
    sc: ServerContext
    standin: Standin
    bare: BareRepo

    def event(self, sha: str, delivery: str, *, action: str = "synchronize") -> NewEvent:
        return NewEvent(
            delivery_id=delivery,
            provider="github",
            kind="pull_request",
            action=action,
            repo_full_name="octo/exp",
            clone_url=self.bare.clone_url,
            commit_sha=sha,
            branch="feature",
            base_branch="main",
            base_sha=self.bare.rev("main"),
            pr_number=PR,
        )

    async def deliver_statuses(self) -> None:
        for _ in range(100):
            await deliver_due(self.sc.sessions, self.sc.forges, self.sc.outbox_policy, None)
            async with self.sc.sessions() as session:
                if not await outbox_queries.messages_by_status(session, "pending"):
                    return
        pytest.fail("outbox did not drain")

    def posted(self, sha: str) -> list[str]:
        """Contexts of the statuses the stand-in holds for `sha`."""
        return sorted(s["context"] for s in self.standin.statuses.get(("octo", "exp", sha), []))

    def pull_reads(self) -> list[int | None]:
        path = f"/repos/octo/exp/pulls/{PR}"
        return [r.status for r in self.standin.requests if r.path == path]


@pytest.fixture
async def gh(github, database_url, redis_url) -> AsyncIterator[GitHub]:
    bare = create_bare_repo(github.repos_root, "octo", "exp")
    bare.commit(FILES, "base")
    settings = test_settings(database_url, redis_url, github_api_url=github.url)
    async with httpx.AsyncClient() as http:
        forge = GitHubForge(http, api_url=github.url, token="test-token")
        async with server_context(settings, forges={"github": forge}) as sc:
            yield GitHub(sc, github.standin, bare)


async def test_github_a_late_stored_old_head_runs_nothing_and_posts_nothing(gh: GitHub):
    a = gh.bare.commit({"a.txt": "1"}, "a", branch="feature")
    b = gh.bare.commit({"a.txt": "2"}, "b", branch="feature")
    gh.standin.open_pull_request("octo", "exp", PR, head_ref="feature", base_ref="main")
    newer = await store(gh.sc, gh.event(b, "b"))
    assert len(await plan_event(gh.sc, newer)) == 2
    older = await store(gh.sc, gh.event(a, "a", action="opened"))
    assert await plan_event(gh.sc, older) == []
    await gh.deliver_statuses()
    stale = await event_row(gh.sc, older)
    b_runs = await runs_at(gh.sc, b)
    assert (stale.state, stale.error) == (
        "superseded",
        f"head moved on to {b[:7]} before this event was planned",
    )
    assert await runs_at(gh.sc, a) == []
    assert [(r.state, r.conclusion) for r in b_runs] == [("pending", None)] * 2
    assert gh.posted(a) == []
    assert gh.posted(b) == sorted(CONTEXTS)
    assert gh.pull_reads() == [200, 200]


async def test_github_a_pull_request_it_does_not_know_plans_as_the_event_says(gh: GitHub):
    a = gh.bare.commit({"a.txt": "1"}, "a", branch="feature")
    gh.bare.commit({"a.txt": "2"}, "b", branch="feature")  # the branch moved on, unseen
    older = await store(gh.sc, gh.event(a, "a", action="opened"))  # no open_pull_request
    assert len(await plan_event(gh.sc, older)) == 2
    assert (await event_row(gh.sc, older)).state == "planned"
    assert gh.pull_reads() == [404]


async def test_github_outage_leaves_the_event_for_a_retry(gh: GitHub):
    a = gh.bare.commit({"a.txt": "1"}, "a", branch="feature")
    gh.standin.open_pull_request("octo", "exp", PR, head_ref="feature", base_ref="main")
    event_id = await store(gh.sc, gh.event(a, "a", action="opened"))
    gh.standin.fail_next(1, 502)
    with pytest.raises(ForgeUnavailable, match="GitHub answered 502"):
        await plan_event(gh.sc, event_id)
    assert (await event_row(gh.sc, event_id)).state == "received"
    assert len(await plan_event(gh.sc, event_id)) == 2
    assert gh.pull_reads() == [502, 200]


async def test_a_head_the_forge_has_not_caught_up_with_still_runs(
    tmp_path, database_url, redis_url
):
    """The forge may still show the previous head a moment after a push: the event's commit
    is then newer than the forge's head, not behind it, and must run."""
    repo = make_repo(tmp_path)
    base = repo.commit(FILES)
    a = repo.commit({"a.txt": "1"}, branch="feature")
    b = repo.commit({"a.txt": "2"}, branch="feature")
    git(repo.bare, "update-ref", "refs/heads/feature", a)  # the forge still says A
    async with server_context(test_settings(database_url, redis_url)) as sc:
        event = await store(sc, pull_request(repo.bare, b, base, "b"))
        assert len(await plan_event(sc, event)) == 2
        assert (await event_row(sc, event)).state == "planned"
        assert len(await runs_at(sc, b)) == 2
