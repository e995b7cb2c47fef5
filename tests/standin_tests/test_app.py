from __future__ import annotations

import base64
import time

import httpx
import pytest

from forge_standin import ConnectionDroppedError, OpenAPIChecker, Standin, create_standin
from forge_standin.repos import git

from ._support import API, BIG, TOKEN, Repo

STATUS_DOC = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"


async def test_recursive_tree_of_a_branch_matches_git(
    client: httpx.AsyncClient, repo: Repo, standin: Standin
) -> None:
    r = await client.get("/repos/acme/widgets/git/trees/main", params={"recursive": "1"})
    assert r.status_code == 200
    tree = repo.rev("main^{tree}")
    body = r.json()
    assert body["sha"] == tree
    assert body["url"] == f"{API}/repos/acme/widgets/git/trees/{tree}"
    assert body["truncated"] is False
    by_path = {e["path"]: e for e in body["tree"]}
    assert sorted(by_path) == [
        ".labci",
        ".labci/train.yml",
        "README.md",
        "big.bin",
        "link",
        "run.sh",
    ]
    assert by_path[".labci"] == {
        "path": ".labci",
        "mode": "040000",
        "type": "tree",
        "sha": repo.rev("main:.labci"),
        "url": f"{API}/repos/acme/widgets/git/trees/{repo.rev('main:.labci')}",
    }
    train = repo.rev("main:.labci/train.yml")
    assert by_path[".labci/train.yml"] == {
        "path": ".labci/train.yml",
        "mode": "100644",
        "type": "blob",
        "sha": train,
        "size": len("name: train\njobs: {}\n"),
        "url": f"{API}/repos/acme/widgets/git/blobs/{train}",
    }
    assert by_path["run.sh"]["mode"] == "100755"
    assert by_path["link"]["mode"] == "120000"
    assert standin.violations == []
    assert [(x.method, x.path, x.query, x.status) for x in standin.requests] == [
        ("GET", "/repos/acme/widgets/git/trees/main", {"recursive": "1"}, 200)
    ]


async def test_tree_by_commit_sha_and_multi_segment_branch(
    client: httpx.AsyncClient, repo: Repo, standin: Standin
) -> None:
    flat = await client.get(f"/repos/acme/widgets/git/trees/{repo.first}")
    assert [e["path"] for e in flat.json()["tree"]] == ["README.md"]
    feature = await client.get("/repos/acme/widgets/git/trees/feature/x")
    assert feature.json()["sha"] == repo.rev("feature/x^{tree}")
    assert "feature.txt" in [e["path"] for e in feature.json()["tree"]]
    assert ".labci/train.yml" not in [e["path"] for e in feature.json()["tree"]]  # not recursive
    missing = await client.get("/repos/acme/widgets/git/trees/no-such-branch")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"
    assert standin.violations == []


async def test_contents_of_a_file_is_wrapped_base64(
    client: httpx.AsyncClient, repo: Repo, standin: Standin
) -> None:
    r = await client.get("/repos/acme/widgets/contents/.labci/train.yml", params={"ref": repo.head})
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "file"
    assert body["encoding"] == "base64"
    assert body["name"] == "train.yml"
    assert body["path"] == ".labci/train.yml"
    assert body["sha"] == repo.rev("main:.labci/train.yml")
    assert body["size"] == 21
    assert base64.b64decode(body["content"]) == b"name: train\njobs: {}\n"
    assert all(len(line) <= 60 for line in body["content"].splitlines())
    assert body["content"].endswith("\n")
    assert standin.violations == []


async def test_contents_default_ref_directory_big_file_and_absent(
    client: httpx.AsyncClient, repo: Repo
) -> None:
    readme = await client.get("/repos/acme/widgets/contents/README.md")
    assert base64.b64decode(readme.json()["content"]) == b"# widgets\n"
    listing = await client.get("/repos/acme/widgets/contents/.labci", params={"ref": "main"})
    assert [(e["type"], e["path"]) for e in listing.json()] == [("file", ".labci/train.yml")]
    big = await client.get("/repos/acme/widgets/contents/big.bin")
    assert (big.json()["size"], big.json()["encoding"], big.json()["content"]) == (BIG, "none", "")
    absent = await client.get("/repos/acme/widgets/contents/nope.yml", params={"ref": "main"})
    assert absent.status_code == 404
    assert absent.json() == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
        "status": "404",
    }
    bad_ref = await client.get("/repos/acme/widgets/contents/README.md", params={"ref": "nope"})
    assert bad_ref.status_code == 404
    assert bad_ref.json()["message"] == "No commit found for the ref nope"
    other_repo = await client.get("/repos/acme/gadgets/contents/README.md")
    assert other_repo.status_code == 404


async def test_status_post_list_and_combined(
    client: httpx.AsyncClient, repo: Repo, standin: Standin
) -> None:
    before = time.time()
    first = await client.post(
        f"/repos/acme/widgets/statuses/{repo.head}",
        json={"state": "pending", "context": "labci/train", "description": "queued"},
    )
    assert first.status_code == 201
    body = first.json()
    assert first.headers["location"] == f"{API}/repos/acme/widgets/statuses/{repo.head}"
    assert {k: body[k] for k in ("state", "context", "description", "target_url")} == {
        "state": "pending",
        "context": "labci/train",
        "description": "queued",
        "target_url": None,
    }
    assert body["creator"]["login"] == "labci-bot"
    assert body["created_at"] == body["updated_at"]
    second = await client.post(
        f"/repos/acme/widgets/statuses/{repo.head}",
        json={"state": "success", "context": "labci/train", "target_url": "https://ci/1"},
    )
    await client.post(f"/repos/acme/widgets/statuses/{repo.head}", json={"state": "failure"})
    assert second.json()["id"] == body["id"] + 1
    stored = standin.statuses[("acme", "widgets", repo.head)]
    assert [(s["context"], s["state"]) for s in stored] == [
        ("labci/train", "pending"),
        ("labci/train", "success"),
        ("default", "failure"),
    ]
    listed = await client.get("/repos/acme/widgets/commits/main/statuses")
    assert [s["state"] for s in listed.json()] == ["failure", "success", "pending"]
    page2 = await client.get(
        f"/repos/acme/widgets/commits/{repo.head}/statuses", params={"per_page": 2, "page": 2}
    )
    assert [s["state"] for s in page2.json()] == ["pending"]
    page1 = await client.get(
        f"/repos/acme/widgets/commits/{repo.head}/statuses", params={"per_page": 2}
    )
    assert 'page=2>; rel="next"' in page1.headers["link"]
    combined = await client.get("/repos/acme/widgets/commits/main/status")
    cb = combined.json()
    assert (cb["state"], cb["sha"], cb["total_count"]) == ("failure", repo.head, 2)
    assert sorted((s["context"], s["state"]) for s in cb["statuses"]) == [
        ("default", "failure"),
        ("labci/train", "success"),
    ]
    assert cb["repository"]["full_name"] == "acme/widgets"
    assert before <= standin.requests[0].received_at <= time.time()
    assert standin.requests[0].json == {
        "state": "pending",
        "context": "labci/train",
        "description": "queued",
    }
    assert standin.requests[0].user_agent == "labci-test/1.0"
    assert standin.requests[0].token == TOKEN
    assert standin.violations == []


async def test_stand_in_responses_match_github_response_schemas(
    client: httpx.AsyncClient, repo: Repo, checker: OpenAPIChecker
) -> None:
    calls = [
        ("POST", f"/repos/acme/widgets/statuses/{repo.head}", {"state": "success"}),
        ("GET", "/repos/acme/widgets/commits/main/statuses", None),
        ("GET", "/repos/acme/widgets/commits/main/status", None),
        ("GET", "/repos/acme/widgets/git/trees/main?recursive=1", None),
        ("GET", "/repos/acme/widgets/contents/README.md", None),
        ("GET", "/repos/acme/widgets/contents/.labci", None),
    ]
    errors = []
    for method, url, body in calls:
        r = await client.request(method, url, json=body)
        errors += checker.response_errors(method, url.split("?")[0], r.status_code, r.json())
    assert errors == []


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"state": "done"}, "state", "state is not included in the list"),
        (
            {"state": "success", "description": "x" * 141},
            "description",
            "description is too long (maximum is 140 characters)",
        ),
    ],
    ids=["bad-state", "description-141"],
)
async def test_status_validation_errors_have_github_shape(
    client: httpx.AsyncClient, repo: Repo, standin: Standin, payload: dict, field: str, message: str
) -> None:
    r = await client.post(f"/repos/acme/widgets/statuses/{repo.head}", json=payload)
    assert r.status_code == 422
    assert r.json() == {
        "message": "Validation Failed",
        "documentation_url": STATUS_DOC,
        "status": "422",
        "errors": [{"resource": "Status", "code": "custom", "field": field, "message": message}],
    }
    assert standin.statuses.get(("acme", "widgets", repo.head), []) == []


async def test_description_of_140_emoji_is_accepted(
    client: httpx.AsyncClient, repo: Repo, standin: Standin
) -> None:
    r = await client.post(
        f"/repos/acme/widgets/statuses/{repo.head}",
        json={"state": "success", "description": "🧪" * 140},
    )
    assert r.status_code == 201
    assert r.json()["description"] == "🧪" * 140
    assert standin.violations == []


async def test_unknown_sha_and_status_cap(repo: Repo, checker: OpenAPIChecker) -> None:
    standin = create_standin(repo.root, checker, max_statuses_per_context=2)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=standin.app),
        base_url=API,
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as c:
        unknown = "f" * 40
        r = await c.post(f"/repos/acme/widgets/statuses/{unknown}", json={"state": "success"})
        assert (r.status_code, r.json()["message"]) == (422, f"No commit found for SHA: {unknown}")
        codes = [
            (await c.post(f"/repos/acme/widgets/statuses/{repo.head}", json=j)).status_code
            for j in (
                {"state": "pending", "context": "ci"},
                {"state": "success", "context": "CI"},  # contexts are case-insensitive
                {"state": "failure", "context": "other"},
            )
        ]
        capped = await c.post(
            f"/repos/acme/widgets/statuses/{repo.head}", json={"state": "failure", "context": "ci"}
        )
    assert codes == [201, 201, 201]
    assert capped.status_code == 422
    assert capped.json()["errors"][0]["message"] == (
        "This SHA and context has reached the maximum number of statuses."
    )
    assert len(standin.statuses[("acme", "widgets", repo.head)]) == 3


async def test_authentication_is_required(repo: Repo, checker: OpenAPIChecker) -> None:
    standin = create_standin(repo.root, checker, tokens={"good"})
    transport = httpx.ASGITransport(app=standin.app)
    async with httpx.AsyncClient(transport=transport, base_url=API) as c:
        anonymous = await c.get("/repos/acme/widgets/contents/README.md")
        wrong = await c.get(
            "/repos/acme/widgets/contents/README.md", headers={"Authorization": "token bad"}
        )
        good = await c.get(
            "/repos/acme/widgets/contents/README.md", headers={"Authorization": "Bearer good"}
        )
    assert (anonymous.status_code, anonymous.json()["message"]) == (401, "Requires authentication")
    assert (wrong.status_code, wrong.json()["message"]) == (401, "Bad credentials")
    assert good.status_code == 200
    assert [r.status for r in standin.requests] == [401, 401, 200]


async def test_unhandled_endpoint_and_bad_query_are_violations(
    client: httpx.AsyncClient, standin: Standin, repo: Repo
) -> None:
    r = await client.get("/repos/acme/widgets/pulls/1/commits")
    assert r.status_code == 404
    assert r.json()["message"] == "Not Found"
    await client.get("/repos/acme/widgets/commits/main/statuses", params={"per_page": "all"})
    assert standin.violations == [
        "unhandled endpoint: GET /repos/acme/widgets/pulls/1/commits",
        "GET /repos/{owner}/{repo}/commits/{ref}/statuses (repos/list-commit-statuses-for-ref): "
        "query parameter 'per_page'='all' is not an integer",
    ]


async def test_fail_next_with_headers_then_recovers(
    client: httpx.AsyncClient, standin: Standin, repo: Repo
) -> None:
    standin.fail_next(2, 403, {"retry-after": "3"})
    url = f"/repos/acme/widgets/statuses/{repo.head}"
    replies = [await client.post(url, json={"state": "success"}) for _ in range(3)]
    assert [r.status_code for r in replies] == [403, 403, 201]
    assert replies[0].headers["retry-after"] == "3"
    assert replies[0].json()["message"].startswith("You have exceeded a secondary rate limit")
    assert [(r.status, r.fault) for r in standin.requests] == [
        (403, "fail_next"),
        (403, "fail_next"),
        (201, None),
    ]
    assert len(standin.statuses[("acme", "widgets", repo.head)]) == 1


async def test_fail_next_only_for_a_method(
    client: httpx.AsyncClient, standin: Standin, repo: Repo
) -> None:
    standin.fail_next(1, 429, {"x-ratelimit-remaining": "0"}, method="POST")
    got = await client.get("/repos/acme/widgets/contents/README.md")
    posted = await client.post(f"/repos/acme/widgets/statuses/{repo.head}", json={"state": "error"})
    assert (got.status_code, posted.status_code) == (200, 429)
    assert posted.headers["x-ratelimit-remaining"] == "0"


async def test_fail_ratio_is_seeded(repo: Repo, checker: OpenAPIChecker) -> None:
    runs = []
    for _ in range(2):
        standin = create_standin(repo.root, checker)
        standin.fail_ratio(0.3, seed=7, statuses=(500, 502))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=standin.app),
            base_url=API,
            headers={"Authorization": f"token {TOKEN}"},
        ) as c:
            runs.append(
                [
                    (await c.get("/repos/acme/widgets/contents/README.md")).status_code
                    for _ in range(40)
                ]
            )
    assert runs[0] == runs[1]
    failures = [s for s in runs[0] if s != 200]
    assert set(failures) == {500, 502}
    assert 4 <= len(failures) <= 20


async def test_crash_after_commit_stores_then_drops(
    client: httpx.AsyncClient, standin: Standin, repo: Repo
) -> None:
    standin.crash_after_commit_next(1)
    url = f"/repos/acme/widgets/statuses/{repo.head}"
    with pytest.raises(ConnectionDroppedError):
        await client.post(url, json={"state": "success", "context": "labci/train"})
    listed = await client.get(f"/repos/acme/widgets/commits/{repo.head}/statuses")
    assert [(s["context"], s["state"]) for s in listed.json()] == [("labci/train", "success")]
    assert [(r.method, r.status, r.fault) for r in standin.requests] == [
        ("POST", None, "crash_after_commit"),
        ("GET", 200, None),
    ]


async def test_crash_after_commit_as_500_and_reset(
    client: httpx.AsyncClient, standin: Standin, repo: Repo
) -> None:
    standin.crash_after_commit_next(1, mode=500)
    url = f"/repos/acme/widgets/statuses/{repo.head}"
    rejected = await client.post(url, json={"state": "nope"})  # not committed: no crash used
    crashed = await client.post(url, json={"state": "failure"})
    after = await client.post(url, json={"state": "success"})
    assert [rejected.status_code, crashed.status_code, after.status_code] == [422, 500, 201]
    assert crashed.json()["message"] == "Server Error"
    stored = standin.statuses[("acme", "widgets", repo.head)]
    assert [s["state"] for s in stored] == ["failure", "success"]
    assert [r.fault for r in standin.requests] == [None, "crash_after_commit", None]
    standin.fail_next(5)
    standin.reset()
    assert (standin.requests, standin.violations, standin.statuses) == ([], [], {})
    ok = await client.get("/repos/acme/widgets/contents/README.md")
    assert ok.status_code == 200
    assert [r.status for r in standin.requests] == [200]


def test_git_helper_sees_the_pushed_branches(repo: Repo) -> None:
    assert git("--git-dir", str(repo.bare.bare), "branch", "--format=%(refname:short)").split() == [
        "feature/x",
        "main",
    ]
