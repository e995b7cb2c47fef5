"""The stand-in's pull-request comments: issues/list-comments, create-comment, update-comment.

Every reply is checked against the response schema of its operation in @octokit/openapi, and
every request against the request schema (``standin.violations``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from forge_standin import ConnectionDroppedError, OpenAPIChecker, Standin

from ._support import API, Repo

PR = 3
COMMENTS = f"/repos/acme/widgets/issues/{PR}/comments"
DOC = "https://docs.github.com/rest/issues/comments"


@pytest.fixture
def pull(standin: Standin, repo: Repo) -> int:
    standin.open_pull_request("acme", "widgets", PR, head_ref="feature/x", base_ref="main")
    return PR


async def call(
    client: httpx.AsyncClient,
    checker: OpenAPIChecker,
    method: str,
    url: str,
    body: Any = None,
    **params: Any,
) -> httpx.Response:
    """The reply, after checking that its body matches GitHub's schema for that status."""
    r = await client.request(method, url, json=body, params=params or None)
    assert checker.response_errors(method, url, r.status_code, r.json()) == []
    return r


async def test_create_list_and_update_a_comment(
    client: httpx.AsyncClient, standin: Standin, checker: OpenAPIChecker, pull: int
) -> None:
    created = await call(client, checker, "POST", COMMENTS, {"body": "<!-- labci:x -->\nfirst"})
    assert created.status_code == 201
    c = created.json()
    url = f"{API}/repos/acme/widgets/issues/comments/{c['id']}"
    assert created.headers["location"] == url
    assert {k: c[k] for k in ("url", "html_url", "issue_url", "body", "author_association")} == {
        "url": url,
        "html_url": f"{API}/acme/widgets/pull/{PR}#issuecomment-{c['id']}",
        "issue_url": f"{API}/repos/acme/widgets/issues/{PR}",
        "body": "<!-- labci:x -->\nfirst",
        "author_association": "NONE",
    }
    assert (c["user"]["login"], c["user"]["type"]) == ("labci-bot", "Bot")
    assert c["reactions"]["total_count"] == 0
    assert c["created_at"] == c["updated_at"]

    edited = await call(
        client, checker, "PATCH", f"/repos/acme/widgets/issues/comments/{c['id']}", {"body": "2nd"}
    )
    assert edited.status_code == 200
    assert {k: edited.json()[k] for k in ("id", "body", "created_at")} == {
        "id": c["id"],
        "body": "2nd",
        "created_at": c["created_at"],
    }
    listed = await call(client, checker, "GET", COMMENTS)
    assert [(x["id"], x["body"]) for x in listed.json()] == [(c["id"], "2nd")]
    assert "link" not in listed.headers
    assert [(x["id"], x["body"], x["login"]) for x in standin.comments("acme", "widgets", PR)] == [
        (c["id"], "2nd", "labci-bot")
    ]
    assert [(r.method, r.status) for r in standin.requests] == [
        ("POST", 201),
        ("PATCH", 200),
        ("GET", 200),
    ]
    assert standin.violations == []


async def test_listing_pages_oldest_first_with_links(
    client: httpx.AsyncClient, standin: Standin, checker: OpenAPIChecker, pull: int
) -> None:
    ids = [standin.add_comment("acme", "widgets", PR, f"c{i}") for i in range(104)]
    ids.append((await client.post(COMMENTS, json={"body": "c104"})).json()["id"])
    first = await call(client, checker, "GET", COMMENTS, per_page=100)
    second = await call(client, checker, "GET", COMMENTS, per_page=100, page=2)
    default = await call(client, checker, "GET", COMMENTS)
    assert [x["id"] for x in first.json()] + [x["id"] for x in second.json()] == ids
    assert ids == sorted(ids)
    assert [x["body"] for x in second.json()] == ["c100", "c101", "c102", "c103", "c104"]
    base = f"{API}{COMMENTS}"
    assert first.headers["link"] == (
        f'<{base}?per_page=100&page=2>; rel="next", <{base}?per_page=100&page=2>; rel="last"'
    )
    assert second.headers["link"] == (
        f'<{base}?per_page=100&page=1>; rel="prev", <{base}?per_page=100&page=1>; rel="first"'
    )
    assert len(default.json()) == 30  # GitHub's default page size
    assert (first.json()[0]["user"]["login"], first.json()[0]["user"]["type"]) == (
        "octocat",
        "User",
    )
    assert second.json()[-1]["user"]["login"] == "labci-bot"
    assert standin.violations == []


async def test_since_keeps_comments_updated_at_or_after_it(
    client: httpx.AsyncClient, standin: Standin, checker: OpenAPIChecker, pull: int
) -> None:
    cid = standin.add_comment("acme", "widgets", PR, "hello")
    (stamp,) = [c["updated_at"] for c in standin.comments("acme", "widgets", PR)]
    at = await call(client, checker, "GET", COMMENTS, since=stamp)
    later = await call(client, checker, "GET", COMMENTS, since="2999-01-01T00:00:00Z")
    bad = await client.get(COMMENTS, params={"since": "yesterday"})
    assert [x["id"] for x in at.json()] == [cid]
    assert later.json() == []
    assert (bad.status_code, bad.json()["message"]) == (422, "Invalid value for since: yesterday")


async def test_unknown_repository_pull_request_or_comment_is_404(
    client: httpx.AsyncClient, standin: Standin, checker: OpenAPIChecker, pull: int
) -> None:
    cid = standin.add_comment("acme", "widgets", PR, "mine")
    replies = [
        await call(client, checker, "GET", f"/repos/acme/gadgets/issues/{PR}/comments"),
        await call(client, checker, "GET", "/repos/acme/widgets/issues/99/comments"),
        await call(client, checker, "POST", "/repos/acme/gadgets/issues/3/comments", {"body": "x"}),
        await call(
            client, checker, "POST", "/repos/acme/widgets/issues/99/comments", {"body": "x"}
        ),
        # PATCH documents no 404 in the OpenAPI file, though GitHub answers one: unchecked
        await client.patch("/repos/acme/widgets/issues/comments/1", json={"body": "x"}),
        await client.patch(f"/repos/acme/gadgets/issues/comments/{cid}", json={"body": "x"}),
    ]
    assert [r.status_code for r in replies] == [404] * 6
    assert replies[1].json() == {
        "message": "Not Found",
        "documentation_url": f"{DOC}#list-issue-comments",
        "status": "404",
    }
    assert replies[4].json()["documentation_url"] == f"{DOC}#update-an-issue-comment"
    assert [c["body"] for c in standin.comments("acme", "widgets", PR)] == ["mine"]
    assert standin.comments("acme", "widgets", 99) == []
    with pytest.raises(LookupError, match="no pull request acme/widgets#99"):
        standin.add_comment("acme", "widgets", 99, "x")


TOO_LONG = {
    "message": "Validation Failed",
    "errors": [
        {
            "resource": "IssueComment",
            "code": "unprocessable",
            "field": "data",
            "message": "Body is too long (maximum is 65536 characters)",
        }
    ],
    "documentation_url": f"{DOC}#create-an-issue-comment",
    "status": "422",
}
BLANK = {
    "message": "Validation Failed",
    "errors": [
        {
            "resource": "IssueComment",
            "code": "custom",
            "field": "body",
            "message": "body cannot be blank",
        }
    ],
    "documentation_url": f"{DOC}#create-an-issue-comment",
    "status": "422",
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"body": ""}, BLANK),
        ({"body": " \n\t"}, BLANK),
        ({"body": "x" * 65_537}, TOO_LONG),
        ({"body": "🧪" * 65_537}, TOO_LONG),
    ],
    ids=["empty", "whitespace", "65537-ascii", "65537-emoji"],
)
async def test_create_refuses_a_blank_or_too_long_body(
    client: httpx.AsyncClient,
    standin: Standin,
    checker: OpenAPIChecker,
    pull: int,
    body: dict,
    expected: dict,
) -> None:
    r = await call(client, checker, "POST", COMMENTS, body)
    assert (r.status_code, r.json()) == (422, expected)
    assert standin.comments("acme", "widgets", PR) == []
    assert standin.violations == []  # GitHub's schema allows these; GitHub itself refuses them


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'Invalid request.\n\n"body" wasn\'t supplied.'),
        ({"body": 7}, "Invalid request.\n\nFor 'properties/body', 7 is not a string."),
    ],
    ids=["missing", "not-a-string"],
)
async def test_update_refuses_a_malformed_request_and_keeps_the_body(
    client: httpx.AsyncClient,
    standin: Standin,
    checker: OpenAPIChecker,
    pull: int,
    body: dict,
    message: str,
) -> None:
    cid = standin.add_comment("acme", "widgets", PR, "kept")
    r = await call(client, checker, "PATCH", f"/repos/acme/widgets/issues/comments/{cid}", body)
    assert (r.status_code, r.json()["message"]) == (422, message)
    assert [c["body"] for c in standin.comments("acme", "widgets", PR)] == ["kept"]
    assert len(standin.violations) == 1  # the request breaks GitHub's schema too
    assert "issues/update-comment" in standin.violations[0]
    standin.violations.clear()


async def test_longest_bodies_are_accepted_in_code_points(
    client: httpx.AsyncClient, standin: Standin, checker: OpenAPIChecker, pull: int
) -> None:
    ascii_body = "x" * 65_536
    emoji_body = "🧪" * 65_536  # 262,144 UTF-8 bytes: still within what GitHub stores
    created = await call(client, checker, "POST", COMMENTS, {"body": ascii_body})
    edited = await call(
        client,
        checker,
        "PATCH",
        f"/repos/acme/widgets/issues/comments/{created.json()['id']}",
        {"body": emoji_body},
    )
    assert (created.status_code, edited.status_code) == (201, 200)
    assert [c["body"] for c in standin.comments("acme", "widgets", PR)] == [emoji_body]


async def test_faults_apply_to_comments(
    client: httpx.AsyncClient, standin: Standin, pull: int, repo: Repo
) -> None:
    standin.fail_next(1, 502, method="POST")
    failed = await client.post(COMMENTS, json={"body": "a"})
    assert (failed.status_code, failed.json()["message"]) == (502, "Server Error")
    assert standin.comments("acme", "widgets", PR) == []

    standin.crash_after_commit_next(1)  # by default only a status's POST crashes
    kept = await client.post(COMMENTS, json={"body": "b"})
    assert kept.status_code == 201
    standin.clear_faults()

    standin.crash_after_commit_next(1, on=("comment",))
    with pytest.raises(ConnectionDroppedError):
        await client.patch(
            f"/repos/acme/widgets/issues/comments/{kept.json()['id']}", json={"body": "c"}
        )
    assert [c["body"] for c in standin.comments("acme", "widgets", PR)] == ["c"]
    assert [(r.method, r.status, r.fault) for r in standin.requests] == [
        ("POST", 502, "fail_next"),
        ("POST", 201, None),
        ("PATCH", None, "crash_after_commit"),
    ]


async def test_reset_forgets_comments_but_not_pull_requests(
    client: httpx.AsyncClient, standin: Standin, pull: int
) -> None:
    first = standin.add_comment("acme", "widgets", PR, "before")
    standin.reset()
    assert standin.comments("acme", "widgets", PR) == []
    after = await client.post(COMMENTS, json={"body": "after"})
    assert after.status_code == 201
    assert after.json()["id"] > first  # GitHub never reuses an id
    assert [c["body"] for c in standin.comments("ACME", "Widgets", PR)] == ["after"]
