"""`GET /repos/{owner}/{repo}/pulls/{pull_number}` on the stand-in: GitHub's `pull-request`
shape, with the head resolved from its branch on every request."""

from __future__ import annotations

import httpx

from forge_standin import OpenAPIChecker, Standin

from ._support import Repo


async def test_pull_request_has_githubs_shape_and_follows_its_head_branch(
    client: httpx.AsyncClient, standin: Standin, repo: Repo, checker: OpenAPIChecker
) -> None:
    standin.open_pull_request("acme", "widgets", 4, head_ref="feature/x", base_ref="main")
    url = "/repos/acme/widgets/pulls/4"
    first = await client.get(url)
    assert first.status_code == 200
    assert checker.response_errors("GET", url, 200, first.json()) == []
    body = first.json()
    assert (body["number"], body["state"], body["head"]["ref"], body["base"]["ref"]) == (
        4,
        "open",
        "feature/x",
        "main",
    )
    assert (body["head"]["sha"], body["base"]["sha"]) == (repo.feature, repo.head)
    moved = repo.bare.commit({"more.txt": "more\n"}, "more", branch="feature/x")
    second = (await client.get("/repos/ACME/Widgets/pulls/4")).json()
    assert second["head"]["sha"] == moved != repo.feature
    assert standin.violations == []


async def test_unknown_pull_request_is_404(
    client: httpx.AsyncClient, standin: Standin, checker: OpenAPIChecker
) -> None:
    standin.open_pull_request("acme", "widgets", 4, head_ref="feature/x", base_ref="main")
    for url in ("/repos/acme/widgets/pulls/5", "/repos/acme/nothing/pulls/4"):
        missing = await client.get(url)
        assert missing.status_code == 404
        assert missing.json()["documentation_url"].endswith("#get-a-pull-request")
        assert checker.response_errors("GET", url, 404, missing.json()) == []
    assert standin.violations == []
