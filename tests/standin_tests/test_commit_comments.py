"""Comments on commits, and the pull requests associated with a commit, on the stand-in:
GitHub's `commit-comment` and `pull-request-simple` shapes, checked against its OpenAPI
description both ways."""

from __future__ import annotations

from typing import Any

import httpx

from forge_standin import OpenAPIChecker, Standin

from ._support import Repo


async def call(
    client: httpx.AsyncClient,
    checker: OpenAPIChecker,
    method: str,
    url: str,
    body: Any = None,
) -> httpx.Response:
    r = await client.request(method, url, json=body)
    assert checker.response_errors(method, url.split("?")[0], r.status_code, r.json()) == []
    return r


async def test_create_list_and_update_a_commit_comment(
    client: httpx.AsyncClient, standin: Standin, repo: Repo, checker: OpenAPIChecker
) -> None:
    url = f"/repos/acme/widgets/commits/{repo.head}/comments"
    created = await call(client, checker, "POST", url, {"body": "first"})
    assert created.status_code == 201
    comment = created.json()
    assert (comment["commit_id"], comment["body"], comment["user"]["login"]) == (
        repo.head,
        "first",
        "labci-bot",
    )
    assert created.headers["location"] == comment["url"]
    # An abbreviated sha names the same commit; another commit has none.
    listed = await call(
        client, checker, "GET", f"/repos/acme/widgets/commits/{repo.head[:7]}/comments"
    )
    assert [c["id"] for c in listed.json()] == [comment["id"]]
    other = await call(client, checker, "GET", f"/repos/acme/widgets/commits/{repo.first}/comments")
    assert other.json() == []

    edited = await call(
        client, checker, "PATCH", f"/repos/acme/widgets/comments/{comment['id']}", {"body": "2"}
    )
    assert (edited.status_code, edited.json()["body"]) == (200, "2")
    assert [c["body"] for c in standin.commit_comments("acme", "widgets", repo.head)] == ["2"]
    assert standin.violations == []


async def test_commit_comment_refusals(
    client: httpx.AsyncClient, standin: Standin, repo: Repo, checker: OpenAPIChecker
) -> None:
    blank = await call(
        client, checker, "POST", f"/repos/acme/widgets/commits/{repo.head}/comments", {"body": " "}
    )
    assert blank.status_code == 422
    unknown = await client.post(
        f"/repos/acme/widgets/commits/{'0' * 40}/comments", json={"body": "x"}
    )
    assert unknown.status_code == 404
    missing = await call(
        client, checker, "PATCH", "/repos/acme/widgets/comments/12345", {"body": "x"}
    )
    assert missing.status_code == 404
    assert standin.commit_comments("acme", "widgets", repo.head) == []
    standin.reset()


async def test_pulls_of_a_commit_open_elsewhere_and_merged_on_the_default_branch(
    client: httpx.AsyncClient, standin: Standin, repo: Repo, checker: OpenAPIChecker
) -> None:
    standin.open_pull_request("acme", "widgets", 4, head_ref="feature/x", base_ref="main")
    # The feature's commit is not on main: the open pull request that has it is listed.
    url = f"/repos/acme/widgets/commits/{repo.feature}/pulls"
    listed = (await call(client, checker, "GET", url)).json()
    assert [(p["number"], p["state"], p["merged_at"]) for p in listed] == [(4, "open", None)]
    assert "mergeable" not in listed[0]  # the simple shape
    # A commit on main that no pull request brought in has none.
    on_main = f"/repos/acme/widgets/commits/{repo.head}/pulls"
    assert (await call(client, checker, "GET", on_main)).json() == []

    merge = repo.bare.merge("feature/x", "Merge pull request #4")
    standin.merge_pull_request("acme", "widgets", 4, merge)
    for sha in (repo.feature, merge):
        pulls = await call(client, checker, "GET", f"/repos/acme/widgets/commits/{sha}/pulls")
        (pull,) = pulls.json()
        assert (pull["number"], pull["state"], pull["merge_commit_sha"]) == (4, "closed", merge)
        assert pull["merged_at"] is not None
    assert (await call(client, checker, "GET", on_main)).json() == []
    full = (await call(client, checker, "GET", "/repos/acme/widgets/pulls/4")).json()
    assert (full["merged"], full["state"]) == (True, "closed")
    # GitHub answers an unknown commit with 422 (not in its description: no schema check).
    bad = await client.get(f"/repos/acme/widgets/commits/{'1' * 40}/pulls")
    assert (bad.status_code, bad.json()["message"]) == (422, f"No commit found for SHA: {'1' * 40}")
    assert standin.violations == []
