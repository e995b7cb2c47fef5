"""GitHubForge.upsert_comment against the GitHub stand-in: one labci comment per pull request.

The stand-in serves a real bare repository and checks every request labci sends against
GitHub's OpenAPI description (the `github` fixture fails the test on any violation).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from forge_standin import Standin, create_bare_repo
from labci_server.db.models import Repository
from labci_server.errors import ForgeRejected, ForgeUnavailable
from labci_server.forge.base import MAX_COMMENT_CHARS, CommentMessage
from labci_server.forge.github import GitHubForge

PR = 5
MARKER = "<!-- labci:pr-comment -->"
LIST = f"/repos/octo/exp/issues/{PR}/comments"
EDIT = "/repos/octo/exp/issues/comments/"


@dataclass
class Subject:
    forge: GitHubForge
    repo: Repository
    standin: Standin

    async def upsert(self, text: str, *, marker: str = MARKER) -> str:
        return await self.forge.upsert_comment(self.repo, CommentMessage(PR, marker, text))

    def bodies(self) -> list[str]:
        return [c["body"] for c in self.standin.comments("octo", "exp", PR)]

    def sent(self) -> list[tuple[str, str, int | None]]:
        """(method, path, status) of every request, comment ids shown as {id}."""
        return [
            (r.method, EDIT + "{id}" if r.path.startswith(EDIT) else r.path, r.status)
            for r in self.standin.requests
        ]


@pytest.fixture
async def subject(github) -> AsyncIterator[Subject]:
    bare = create_bare_repo(github.repos_root, "octo", "exp")
    bare.commit({"README.md": "# exp\n"}, "c0")
    bare.commit({"train.py": "print(1)\n"}, "f1", branch="feature")
    github.standin.open_pull_request("octo", "exp", PR, head_ref="feature", base_ref="main")
    row = Repository(provider="github", full_name="octo/exp", clone_url=bare.clone_url)
    async with httpx.AsyncClient() as http:
        forge = GitHubForge(http, api_url=github.url, token="test-token")
        yield Subject(forge, row, github.standin)


async def test_first_upsert_creates_and_the_next_updates_the_same_comment(
    subject: Subject,
) -> None:
    first = await subject.upsert(f"{MARKER}\n| acc | 0.91 |")
    second = await subject.upsert(f"{MARKER}\n| acc | 0.92 |")
    assert second == first
    (comment,) = subject.standin.comments("octo", "exp", PR)
    assert (str(comment["id"]), comment["body"], comment["login"]) == (
        first,
        f"{MARKER}\n| acc | 0.92 |",
        "labci-bot",
    )
    assert subject.sent() == [
        ("GET", LIST, 200),
        ("POST", LIST, 201),
        ("GET", LIST, 200),
        ("PATCH", EDIT + "{id}", 200),
    ]
    listing = subject.standin.requests[0]
    assert listing.query == {"per_page": "100"}
    assert subject.standin.requests[1].json == {"body": f"{MARKER}\n| acc | 0.91 |"}


async def test_an_unchanged_body_spends_no_mutation(subject: Subject) -> None:
    first = await subject.upsert(f"{MARKER}\nsame")
    subject.standin.requests.clear()
    assert await subject.upsert(f"{MARKER}\nsame") == first
    assert subject.sent() == [("GET", LIST, 200)]


async def test_comments_without_the_marker_at_their_start_are_left_alone(
    subject: Subject,
) -> None:
    subject.standin.add_comment("octo", "exp", PR, "LGTM, but check the seeds")
    subject.standin.add_comment("octo", "exp", PR, f"labci's comment starts with `{MARKER}`")
    subject.standin.add_comment("octo", "exp", PR, "<!-- labci:other -->\nanother labci comment")
    await subject.upsert(f"{MARKER}\nv1")
    await subject.upsert(f"{MARKER}\nv2")
    assert subject.bodies() == [
        "LGTM, but check the seeds",
        f"labci's comment starts with `{MARKER}`",
        "<!-- labci:other -->\nanother labci comment",
        f"{MARKER}\nv2",
    ]


async def test_of_two_marked_comments_the_oldest_is_updated(subject: Subject) -> None:
    oldest = subject.standin.add_comment("octo", "exp", PR, f"{MARKER}\nold", login="labci-bot")
    subject.standin.add_comment("octo", "exp", PR, f"{MARKER}\nduplicate", login="labci-bot")
    assert await subject.upsert(f"{MARKER}\nnew") == str(oldest)
    assert subject.bodies() == [f"{MARKER}\nnew", f"{MARKER}\nduplicate"]


async def test_the_marker_is_found_on_the_second_page(subject: Subject) -> None:
    for i in range(120):
        subject.standin.add_comment("octo", "exp", PR, f"review note {i}")
    marked = subject.standin.add_comment("octo", "exp", PR, f"{MARKER}\nold", login="labci-bot")
    assert await subject.upsert(f"{MARKER}\nnew") == str(marked)
    assert subject.sent() == [("GET", LIST, 200), ("GET", LIST, 200), ("PATCH", EDIT + "{id}", 200)]
    assert [r.query for r in subject.standin.requests[:2]] == [
        {"per_page": "100"},
        {"per_page": "100", "page": "2"},
    ]
    assert subject.bodies()[-1] == f"{MARKER}\nnew"
    assert len(subject.bodies()) == 121


async def test_paging_stops_at_the_first_marked_comment(subject: Subject) -> None:
    subject.standin.add_comment("octo", "exp", PR, f"{MARKER}\nold", login="labci-bot")
    for i in range(120):
        subject.standin.add_comment("octo", "exp", PR, f"review note {i}")
    await subject.upsert(f"{MARKER}\nnew")
    assert subject.sent() == [("GET", LIST, 200), ("PATCH", EDIT + "{id}", 200)]


@pytest.mark.parametrize(
    ("marker", "body", "reason"),
    [
        (
            MARKER,
            MARKER + "x" * (MAX_COMMENT_CHARS - len(MARKER) + 1),
            "labci comment on pull request #5: the body is 65,537 characters, over GitHub's "
            "limit of 65,536; truncate it before sending",
        ),
        (
            "<!-- other -->",
            "<!-- other -->\nx",
            "labci comment on pull request #5: marker '<!-- other -->' is not one HTML comment "
            "starting with '<!-- labci:'",
        ),
        (
            "<!-- labci:a --> <!-- labci:b -->",
            "<!-- labci:a --> <!-- labci:b -->\nx",
            "labci comment on pull request #5: marker '<!-- labci:a --> <!-- labci:b -->' is "
            "not one HTML comment starting with '<!-- labci:'",
        ),
        (
            MARKER,
            f"table first\n{MARKER}",
            "labci comment on pull request #5: the body must start with its marker "
            "'<!-- labci:pr-comment -->', or it is never found again",
        ),
    ],
    ids=["65537-chars", "foreign-marker", "two-markers", "marker-not-first"],
)
async def test_a_comment_that_can_never_be_posted_is_refused_before_any_request(
    subject: Subject, marker: str, body: str, reason: str
) -> None:
    with pytest.raises(ForgeRejected) as caught:
        await subject.forge.upsert_comment(subject.repo, CommentMessage(PR, marker, body))
    assert (caught.value.status, str(caught.value)) == (422, reason)
    assert subject.standin.requests == []


async def test_the_longest_body_github_takes_is_sent(subject: Subject) -> None:
    body = MARKER + "🧪" * (MAX_COMMENT_CHARS - len(MARKER))
    await subject.upsert(body)
    assert subject.bodies() == [body]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_502_is_forge_unavailable(subject: Subject, method: str) -> None:
    subject.standin.fail_next(1, 502, method=method)
    with pytest.raises(ForgeUnavailable, match="GitHub answered 502"):
        await subject.upsert(f"{MARKER}\nv1")
    assert subject.bodies() == []
    await subject.upsert(f"{MARKER}\nv1")
    assert subject.bodies() == [f"{MARKER}\nv1"]


async def test_a_secondary_rate_limit_carries_its_wait(subject: Subject) -> None:
    subject.standin.fail_next(1, 403, {"retry-after": "42"}, method="POST")
    with pytest.raises(ForgeUnavailable) as caught:
        await subject.upsert(f"{MARKER}\nv1")
    assert caught.value.retry_after_s == 42.0


async def test_a_lost_answer_to_the_create_is_not_a_second_comment(subject: Subject) -> None:
    subject.standin.crash_after_commit_next(1, on=("comment",))
    with pytest.raises(ForgeUnavailable):
        await subject.upsert(f"{MARKER}\nv1")
    retried = await subject.upsert(f"{MARKER}\nv1")
    (comment,) = subject.standin.comments("octo", "exp", PR)
    assert (str(comment["id"]), comment["body"]) == (retried, f"{MARKER}\nv1")
    assert subject.sent() == [("GET", LIST, 200), ("POST", LIST, None), ("GET", LIST, 200)]


async def test_a_comment_gone_before_its_update_is_retried(subject: Subject) -> None:
    await subject.upsert(f"{MARKER}\nv1")
    subject.standin.fail_next(1, 404, method="PATCH")  # deleted between listing and update
    with pytest.raises(ForgeUnavailable, match="is gone"):
        await subject.upsert(f"{MARKER}\nv2")
    await subject.upsert(f"{MARKER}\nv2")
    assert subject.bodies() == [f"{MARKER}\nv2"]


async def test_an_unknown_pull_request_is_rejected(subject: Subject) -> None:
    message = CommentMessage(404, MARKER, f"{MARKER}\nv1")
    with pytest.raises(ForgeRejected) as caught:
        await subject.forge.upsert_comment(subject.repo, message)
    assert caught.value.status == 404
    assert str(caught.value).startswith("GET /repos/{owner}/{repo}/issues/{issue_number}/comments")
