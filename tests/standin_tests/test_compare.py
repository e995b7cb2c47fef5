"""The stand-in's commit, comparison and pull-request-files endpoints, checked against git."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from forge_standin import OpenAPIChecker, Standin
from forge_standin.repos import BareRepo, create_bare_repo, git

from ._support import API, Repo

NOTES = "# notes\n" * 5


@dataclass
class Lab:
    """acme/models: ``feature/x`` forks from main at ``fork``; main then moves on."""

    bare: BareRepo
    fork: str
    feature: str
    main: str

    def rev(self, spec: str) -> str:
        return self.bare.rev(spec)


@pytest.fixture
def lab(repo: Repo, standin: Standin) -> Lab:
    bare = create_bare_repo(repo.root, "acme", "models")
    fork = bare.commit(
        {
            "src/a.py": "a = 1\n",
            "docs/old.md": NOTES,
            "gone.txt": "x\n",
            "run.sh": "echo\n",
        },
        "base",
    )
    feature = bare.commit(
        {
            "src/a.py": "a = 2\nprint(a)\n",
            "docs/old.md": None,
            "docs/new.md": NOTES,
            "gone.txt": None,
            "data.bin": b"\0\1\2",
            "run.sh": "echo\n",
        },
        "feature work",
        branch="feature/x",
        executable=("run.sh",),
    )
    main = bare.commit({"README.md": "later on main\n"}, "main moves on", branch="main")
    standin.open_pull_request("acme", "models", 7, head_ref="feature/x", base_ref="main")
    return Lab(bare, fork, feature, main)


def brief(entries: list[dict]) -> list[tuple]:
    return [
        (e["filename"], e["status"], e.get("previous_filename"), e["additions"], e["deletions"])
        for e in entries
    ]


FEATURE_FILES = [
    ("data.bin", "added", None, 0, 0),  # binary: no line counts
    ("docs/new.md", "renamed", "docs/old.md", 0, 0),
    ("gone.txt", "removed", None, 0, 1),
    ("run.sh", "changed", None, 0, 0),  # mode only
    ("src/a.py", "modified", None, 2, 1),
]


async def test_pull_request_files_are_the_heads_changes_since_the_merge_base(
    client: httpx.AsyncClient, lab: Lab, standin: Standin
) -> None:
    r = await client.get("/repos/acme/models/pulls/7/files")
    assert r.status_code == 200
    entries = r.json()
    assert brief(entries) == FEATURE_FILES  # README.md, changed on main after the fork, is not
    by_name = {e["filename"]: e for e in entries}
    assert by_name["gone.txt"]["sha"] == lab.rev(f"{lab.fork}:gone.txt")  # the deleted blob
    assert by_name["run.sh"]["sha"] is None
    assert by_name["src/a.py"] == {
        "sha": lab.rev(f"{lab.feature}:src/a.py"),
        "filename": "src/a.py",
        "status": "modified",
        "additions": 2,
        "deletions": 1,
        "changes": 3,
        "blob_url": f"{API}/acme/models/blob/{lab.feature}/src/a.py",
        "raw_url": f"{API}/acme/models/raw/{lab.feature}/src/a.py",
        "contents_url": f"{API}/repos/acme/models/contents/src/a.py?ref={lab.feature}",
    }
    assert "link" not in r.headers
    assert standin.violations == []


async def test_pull_request_files_follow_pushes_and_page(
    client: httpx.AsyncClient, lab: Lab, standin: Standin
) -> None:
    lab.bare.commit({"src/b.py": "b = 1\n"}, "more", branch="feature/x")
    page1 = await client.get("/repos/acme/models/pulls/7/files", params={"per_page": 4})
    page2 = await client.get("/repos/acme/models/pulls/7/files", params={"per_page": 4, "page": 2})
    names = [e["filename"] for e in page1.json() + page2.json()]
    assert names == ["data.bin", "docs/new.md", "gone.txt", "run.sh", "src/a.py", "src/b.py"]
    url = f"{API}/repos/acme/models/pulls/7/files"
    assert page1.headers["link"] == (
        f'<{url}?per_page=4&page=2>; rel="next", <{url}?per_page=4&page=2>; rel="last"'
    )
    assert page2.headers["link"] == (
        f'<{url}?per_page=4&page=1>; rel="prev", <{url}?per_page=4&page=1>; rel="first"'
    )
    assert standin.violations == []


async def test_unknown_pull_request_is_404(
    client: httpx.AsyncClient, lab: Lab, standin: Standin
) -> None:
    missing = await client.get("/repos/acme/models/pulls/8/files")
    other_repo = await client.get("/repos/acme/widgets/pulls/7/files")
    assert (missing.status_code, other_repo.status_code) == (404, 404)
    assert missing.json()["documentation_url"].endswith("#list-pull-requests-files")
    assert standin.violations == []


async def test_compare_of_a_fast_forward_is_ahead_with_the_diff(
    client: httpx.AsyncClient, lab: Lab, standin: Standin
) -> None:
    later = lab.bare.commit({"src/a.py": None}, "drop a", branch="main")
    r = await client.get(f"/repos/acme/models/compare/{lab.fork}...{later}")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["ahead_by"], body["behind_by"], body["total_commits"]) == (
        "ahead",
        2,
        0,
        2,
    )
    assert [c["sha"] for c in body["commits"]] == [lab.main, later]  # oldest first
    assert body["base_commit"]["sha"] == body["merge_base_commit"]["sha"] == lab.fork
    assert brief(body["files"]) == [
        ("README.md", "added", None, 1, 0),
        ("src/a.py", "removed", None, 0, 1),
    ]
    assert body["url"] == f"{API}/repos/acme/models/compare/{lab.fork}...{later}"
    assert body["permalink_url"] == f"{API}/acme/models/compare/acme:{lab.fork}...acme:{later}"
    assert "link" not in r.headers
    assert standin.violations == []


async def test_compare_is_three_dot_and_pages_commits_not_files(
    client: httpx.AsyncClient, lab: Lab, standin: Standin
) -> None:
    r = await client.get("/repos/acme/models/compare/main...feature/x", params={"per_page": 1})
    body = r.json()
    assert (body["status"], body["ahead_by"], body["behind_by"]) == ("diverged", 1, 1)
    assert body["merge_base_commit"]["sha"] == lab.fork
    assert body["base_commit"]["sha"] == lab.main
    assert brief(body["files"]) == FEATURE_FILES  # since the merge base: no README.md
    assert [c["sha"] for c in body["commits"]] == [lab.feature]
    assert "link" not in r.headers  # one commit ahead: one page
    behind = await client.get(f"/repos/acme/models/compare/{lab.main}...acme:{lab.fork}")
    assert (behind.json()["status"], behind.json()["files"]) == ("behind", [])
    same = await client.get(f"/repos/acme/models/compare/main...{lab.main}?per_page=1&page=2")
    assert same.json()["status"] == "identical"
    assert "files" not in same.json()  # files come on the first page only
    url = f"{API}/repos/acme/models/compare/main...{lab.main}"
    assert same.headers["link"] == (
        f'<{url}?per_page=1&page=1>; rel="prev", <{url}?per_page=1&page=1>; rel="first"'
    )
    assert standin.violations == []


@pytest.mark.parametrize(
    "basehead",
    ["main..feature/x", "main...no-such-branch", "other:main...feature/x", "main..."],
    ids=["two-dots", "unknown-head", "fork", "no-head"],
)
async def test_compare_refusals_are_404(
    client: httpx.AsyncClient, lab: Lab, standin: Standin, basehead: str
) -> None:
    r = await client.get(f"/repos/acme/models/compare/{basehead}")
    assert r.status_code == 404
    assert r.json()["documentation_url"].endswith("#compare-two-commits")


async def test_compare_without_a_common_ancestor_is_404(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    gitdir = ("--git-dir", str(lab.bare.bare))
    empty_tree = git(*gitdir, "hash-object", "-w", "-t", "tree", "/dev/null")
    island = git(*gitdir, "commit-tree", empty_tree, "-m", "island")  # no parents
    r = await client.get(f"/repos/acme/models/compare/main...{island}")
    assert r.status_code == 404
    assert r.json()["message"] == f"No common ancestor between main and {island}."


async def test_commit_by_branch_sha_and_heads_ref_matches_git(
    client: httpx.AsyncClient, lab: Lab, standin: Standin
) -> None:
    by_branch = await client.get("/repos/acme/models/commits/feature/x")
    by_sha = await client.get(f"/repos/acme/models/commits/{lab.feature}")
    by_ref = await client.get("/repos/acme/models/commits/heads/feature/x")
    assert by_branch.json() == by_sha.json() == by_ref.json()
    body = by_branch.json()
    assert body["sha"] == lab.feature
    assert body["commit"]["tree"]["sha"] == lab.rev("feature/x^{tree}")
    assert body["commit"]["message"] == "feature work"
    assert body["commit"]["author"]["name"] == "Test Author"
    assert body["commit"]["author"]["date"].endswith("Z")
    assert body["author"] is None  # no GitHub account for the e-mail
    assert [p["sha"] for p in body["parents"]] == [lab.fork]
    assert brief(body["files"]) == FEATURE_FILES
    assert body["stats"] == {"total": 4, "additions": 2, "deletions": 2}
    root = await client.get(f"/repos/acme/models/commits/{lab.fork}")
    assert root.json()["parents"] == []
    assert [f["status"] for f in root.json()["files"]] == ["added"] * 4
    assert standin.violations == []


async def test_unknown_commit_is_422(client: httpx.AsyncClient, lab: Lab) -> None:
    r = await client.get("/repos/acme/models/commits/no-such-branch")
    assert r.status_code == 422
    assert r.json()["message"] == "No commit found for SHA: no-such-branch"


async def test_responses_match_github_response_schemas(
    client: httpx.AsyncClient, lab: Lab, checker: OpenAPIChecker
) -> None:
    urls = [
        "/repos/acme/models/pulls/7/files",
        "/repos/acme/models/compare/main...feature/x",
        f"/repos/acme/models/compare/{lab.fork}...main?per_page=1",
        "/repos/acme/models/commits/feature/x",
        f"/repos/acme/models/commits/{lab.fork}",
        "/repos/acme/models/commits/nope",
        "/repos/acme/models/compare/main..feature/x",
    ]
    errors = []
    for url in urls:
        r = await client.get(url)
        errors += checker.response_errors("GET", url.split("?")[0], r.status_code, r.json())
    assert errors == []
