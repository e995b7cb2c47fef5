"""What a bisection needs from the forges: the first-parent commits between two commits, and
a comment on the commit it found (or on the pull request that merged it) — GitHubForge
against the GitHub stand-in (every request checked against GitHub's OpenAPI description)
and GitLocalForge on a real bare repository; and the outbox delivering that comment exactly
once when GitHub's answer is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from forge_standin import BareRepo, Standin, create_bare_repo
from helpers.gitrepo import git, make_repo
from helpers.server import server_context, test_settings
from labci_server.db.models import Repository
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.repositories import ensure_repository
from labci_server.errors import ForgeRejected, ForgeUnavailable
from labci_server.forge.base import MAX_COMMENT_CHARS, CommitCommentMessage
from labci_server.forge.github import GitHubForge
from labci_server.forge.gitlocal import GitLocalForge
from labci_server.forge.outbox import (
    commit_comment_marker,
    deliver_due,
    enqueue_commit_comment,
)

MARKER = commit_comment_marker("bisection-7")


@dataclass
class Subject:
    forge: GitHubForge
    repo: Repository
    standin: Standin
    bare: BareRepo

    def requests(self) -> list[tuple[str, str, int | None]]:
        return [(r.method, r.path, r.status) for r in self.standin.requests]


@pytest.fixture
async def subject(github) -> AsyncIterator[Subject]:
    bare = create_bare_repo(github.repos_root, "octo", "exp")
    bare.commit({"README.md": "# exp\n"}, "c0")
    row = Repository(provider="github", full_name="octo/exp", clone_url=bare.clone_url)
    async with httpx.AsyncClient() as http:
        forge = GitHubForge(http, api_url=github.url, token="test-token")
        yield Subject(forge, row, github.standin, bare)


def merged_history(bare: BareRepo) -> tuple[str, list[str], list[str]]:
    """main: base, m1, a merge of a side branch (s1, s2), m2. Returns (base, main's
    first-parent commits after base, the side branch's commits)."""
    base = bare.commit({"a.txt": "base\n"}, "base")
    m1 = bare.commit({"a.txt": "m1\n"}, "m1")
    s1 = bare.commit({"s.txt": "s1\n"}, "s1", branch="side")
    s2 = bare.commit({"s.txt": "s2\n"}, "s2", branch="side")
    merge = bare.merge("side", "merge side")
    m2 = bare.commit({"a.txt": "m2\n"}, "m2")
    return base, [m1, merge, m2], [s1, s2]


async def test_github_lists_the_first_parent_line_oldest_first(subject: Subject) -> None:
    base, line, side = merged_history(subject.bare)
    assert await subject.forge.commits_between(subject.repo, base, line[-1]) == line
    assert await subject.forge.commits_between(subject.repo, line[0], line[0]) == []
    # The side branch's commits are not on main's first-parent line.
    assert await subject.forge.commits_between(subject.repo, side[0], line[-1]) is None
    # Not an ancestor (the head is older), and an unknown commit: unknown.
    assert await subject.forge.commits_between(subject.repo, line[-1], base) is None
    assert await subject.forge.commits_between(subject.repo, "f" * 40, line[-1]) is None
    compare = [r for r in subject.standin.requests if "/compare/" in r.path]
    assert compare[0].query == {"per_page": "100"}


async def test_github_pages_through_a_long_comparison(subject: Subject) -> None:
    base = subject.bare.rev("main")
    commits = [subject.bare.commit({"n.txt": f"{i}\n"}, f"c{i}") for i in range(130)]
    assert await subject.forge.commits_between(subject.repo, base, commits[-1]) == commits
    pages = [r.query.get("page") for r in subject.standin.requests if "/compare/" in r.path]
    assert pages == [None, "2"]


async def test_local_forge_lists_the_same_line(tmp_path, database_url, redis_url) -> None:
    repo = make_repo(tmp_path)
    base = repo.commit({"a.txt": "base\n"})
    m1 = repo.commit({"a.txt": "m1\n"})
    s1 = repo.commit({"s.txt": "s1\n"}, branch="side")
    git(repo.work, "checkout", "-q", "main")
    git(repo.work, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    git(repo.work, "push", "-q", "origin", "main")
    merge = git(repo.work, "rev-parse", "HEAD")
    m2 = repo.commit({"a.txt": "m2\n"})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        forge = GitLocalForge(sc.sessions)
        row = Repository(id=1, provider="git", full_name=str(repo.bare), clone_url=str(repo.bare))
        assert await forge.commits_between(row, base, m2) == [m1, merge, m2]
        assert await forge.commits_between(row, m2, m2) == []
        assert await forge.commits_between(row, s1, m2) is None  # a second parent's
        assert await forge.commits_between(row, m2, base) is None
        assert await forge.commits_between(row, "f" * 40, m2) is None


async def test_github_comments_on_a_commit_no_pull_request_merged(subject: Subject) -> None:
    sha = subject.bare.commit({"model.py": "worse\n"}, "worse")
    message = CommitCommentMessage(sha, MARKER, f"{MARKER}\nacc −0.05")
    assert await subject.forge.comment_on_commit(subject.repo, message) == f"commit {sha[:7]}"
    listing = f"/repos/octo/exp/commits/{sha}/comments"
    assert subject.requests() == [
        ("GET", f"/repos/octo/exp/commits/{sha}/pulls", 200),
        ("GET", listing, 200),
        ("POST", listing, 201),
    ]
    # Idempotent: the same body again reads and writes nothing; a new one edits it.
    subject.standin.requests.clear()
    await subject.forge.comment_on_commit(subject.repo, message)
    assert [r[0] for r in subject.requests()] == ["GET", "GET"]
    edited = CommitCommentMessage(sha, MARKER, f"{MARKER}\nacc −0.06")
    await subject.forge.comment_on_commit(subject.repo, edited)
    (comment,) = subject.standin.commit_comments("octo", "exp", sha)
    assert (comment["body"], comment["login"]) == (f"{MARKER}\nacc −0.06", "labci-bot")
    assert subject.requests()[-1][:2] == ("PATCH", f"/repos/octo/exp/comments/{comment['id']}")


async def test_github_comments_on_the_pull_request_that_merged_the_commit(
    subject: Subject,
) -> None:
    found = subject.bare.commit({"model.py": "worse\n"}, "worse", branch="feature")
    subject.standin.open_pull_request("octo", "exp", 12, head_ref="feature", base_ref="main")
    merge = subject.bare.merge("feature", "Merge pull request #12")
    subject.standin.merge_pull_request("octo", "exp", 12, merge)
    message = CommitCommentMessage(found, MARKER, f"{MARKER}\nacc −0.05")
    assert await subject.forge.comment_on_commit(subject.repo, message) == "pull request #12"
    await subject.forge.comment_on_commit(subject.repo, message)  # found again: no second
    assert [c["body"] for c in subject.standin.comments("octo", "exp", 12)] == [message.body]
    assert subject.standin.commit_comments("octo", "exp", found) == []


async def test_a_comment_that_can_never_be_posted_is_refused_before_any_request(
    subject: Subject,
) -> None:
    sha = subject.bare.rev("main")
    too_long = MARKER + "x" * (MAX_COMMENT_CHARS - len(MARKER) + 1)
    for body in (too_long, f"text first\n{MARKER}"):
        with pytest.raises(ForgeRejected) as caught:
            await subject.forge.comment_on_commit(
                subject.repo, CommitCommentMessage(sha, MARKER, body)
            )
        assert caught.value.status == 422
        assert str(caught.value).startswith(f"labci comment on commit {sha[:7]}: ")
    assert subject.standin.requests == []


async def test_a_lost_answer_to_the_create_is_not_a_second_comment(subject: Subject) -> None:
    sha = subject.bare.rev("main")
    message = CommitCommentMessage(sha, MARKER, f"{MARKER}\nv1")
    subject.standin.crash_after_commit_next(1, on=("comment",))
    with pytest.raises(ForgeUnavailable):
        await subject.forge.comment_on_commit(subject.repo, message)
    await subject.forge.comment_on_commit(subject.repo, message)
    assert [c["body"] for c in subject.standin.commit_comments("octo", "exp", sha)] == [
        message.body
    ]


async def test_the_outbox_delivers_a_commit_comment_once_across_a_lost_answer(
    github, database_url, redis_url
) -> None:
    bare = create_bare_repo(github.repos_root, "octo", "exp")
    sha = bare.commit({"README.md": "# exp\n"}, "c0")
    settings = test_settings(database_url, redis_url, github_api_url=github.url)
    async with httpx.AsyncClient() as http:
        forge = GitHubForge(http, api_url=github.url, token="test-token")
        async with server_context(settings, forges={"github": forge}) as sc:
            async with sc.sessions() as session, session.begin():
                repo = await ensure_repository(
                    session, provider="github", full_name="octo/exp", clone_url=bare.clone_url
                )
                for _ in range(2):  # queued twice: sent once
                    await enqueue_commit_comment(
                        session,
                        repository_id=repo.id or 0,
                        commit_sha=sha,
                        name="bisection-7",
                        body=f"{MARKER}\nfound",
                    )
            github.standin.crash_after_commit_next(1, on=("comment",))
            assert await deliver_due(sc.sessions, sc.forges, sc.outbox_policy) == 0
            async with sc.sessions() as session:
                (message,) = await outbox_queries.messages_for_commit(
                    session, repository_id=repo.id or 0, commit_sha=sha
                )
                message.next_attempt_at = 0.0  # due now, not after its backoff
                session.add(message)
                await session.commit()
            assert await deliver_due(sc.sessions, sc.forges, sc.outbox_policy) == 1
            async with sc.sessions() as session:
                (sent,) = await outbox_queries.messages_for_commit(
                    session, repository_id=repo.id or 0, commit_sha=sha
                )
    assert (sent.kind, sent.context, sent.status) == (
        "commit-comment",
        "labci/comment/bisection-7",
        "sent",
    )
    assert [c["body"] for c in github.standin.commit_comments("octo", "exp", sha)] == [
        f"{MARKER}\nfound"
    ]
    posts = [r for r in github.standin.requests if r.method == "POST"]
    assert len(posts) == 1
