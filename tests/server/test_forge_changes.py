"""Changed files, refs and workflow-file caps of both forges, on real bare repositories.

GitHub is the stand-in (built from the same kind of repository, every request checked
against GitHub's OpenAPI description); the local forge reads the bare repository itself and
is built without a database: these three methods never touch one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_standin import BareRepo, Standin, create_bare_repo
from labci_server.db.models import Repository
from labci_server.forge.base import ZERO_SHA, Forge
from labci_server.forge.github import GitHubForge
from labci_server.forge.gitlocal import GitLocalForge

MIB = 1024 * 1024
PR = 7
OVER_SIZE = "is over the 1 MiB limit for a workflow file; not read"
OVER_COUNT = "beyond the limit of 100 workflow files; not read"


@dataclass
class Subject:
    forge: Forge
    repo: Repository
    bare: BareRepo
    standin: Standin | None  # the GitHub stand-in, when the forge is GitHub

    @property
    def provider(self) -> str:
        return self.repo.provider

    def open_pull_request(self, head_ref: str, base_ref: str) -> None:
        """Make PR 7 on the GitHub stand-in; the local forge is given the base commit instead."""
        if self.standin is not None:
            self.standin.open_pull_request("octo", "exp", PR, head_ref=head_ref, base_ref=base_ref)

    def contents_requested(self) -> list[str]:
        assert self.standin is not None
        prefix = "/repos/octo/exp/contents/"
        return [
            r.path.removeprefix(prefix) for r in self.standin.requests if r.path.startswith(prefix)
        ]


@pytest.fixture(params=["github", "git"])
async def subject(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Subject]:
    if request.param == "github":
        github = request.getfixturevalue("github")
        bare = create_bare_repo(github.repos_root, "octo", "exp")
        row = Repository(provider="github", full_name="octo/exp", clone_url=bare.clone_url)
        async with httpx.AsyncClient() as http:
            forge = GitHubForge(http, api_url=github.url, token="test-token")
            yield Subject(forge, row, bare, github.standin)
        return
    bare = create_bare_repo(tmp_path / "git-repos", "octo", "exp")
    row = Repository(provider="git", full_name="exp", clone_url=str(bare.bare))
    unbound = async_sessionmaker(class_=AsyncSession)  # no database: any query would fail
    yield Subject(GitLocalForge(unbound), row, bare, None)


@dataclass
class History:
    """main: c0 → c1 → c2; feature forks at c0: f1 renames, f2 deletes and edits."""

    c0: str
    c1: str
    c2: str
    f1: str
    f2: str


def build_history(bare: BareRepo) -> History:
    c0 = bare.commit(
        {
            "src/a.py": "a = 1\n",
            "docs/old.md": "# notes\n" * 5,
            "gone.txt": "bye\n",
            "README.md": "# exp\n",
        },
        "c0",
    )
    f1 = bare.commit({"docs/old.md": None, "docs/new.md": "# notes\n" * 5}, "f1", branch="feature")
    f2 = bare.commit({"gone.txt": None, "src/a.py": "a = 2\n"}, "f2", branch="feature")
    c1 = bare.commit({"README.md": "# exp, later\n", "configs/x.yml": "x: 1\n"}, "c1")
    c2 = bare.commit({"src/b.py": "b = 1\n"}, "c2")
    return History(c0, c1, c2, f1, f2)


FEATURE = ["docs/new.md", "docs/old.md", "gone.txt", "src/a.py"]
BOTH_SIDES = ["README.md", "configs/x.yml", "docs/new.md", "docs/old.md", "gone.txt"]
BOTH_SIDES += ["src/a.py", "src/b.py"]

SAME = "same as the local forge"

# base and head name History fields (or are literal shas); on_github: where GitHub differs
CHANGES = [
    # the PR's base is main at c2: c1 and c2 (on main after the fork point) are not reported
    pytest.param("c2", "f2", True, FEATURE, SAME, id="pr-three-dot"),
    pytest.param("c0", "c2", False, ["README.md", "configs/x.yml", "src/b.py"], SAME, id="push"),
    pytest.param("c0", "f1", False, ["docs/new.md", "docs/old.md"], SAME, id="push-rename"),
    pytest.param("f1", "f2", False, ["gone.txt", "src/a.py"], SAME, id="push-deletion"),
    pytest.param("c2", "c2", False, [], SAME, id="push-nothing"),
    pytest.param(None, "f2", False, None, SAME, id="new-branch-none"),
    pytest.param(ZERO_SHA, "f2", False, None, SAME, id="new-branch-zeros"),
    pytest.param("1" * 40, "f2", False, None, SAME, id="unknown-base"),
    # a force push from feature to main: GitHub compares only from the merge base, so unknown
    pytest.param("f2", "c2", False, BOTH_SIDES, None, id="force-push"),
]


@pytest.mark.parametrize(("base", "head", "is_pr", "expected", "on_github"), CHANGES)
async def test_changed_files(
    subject: Subject,
    base: str | None,
    head: str,
    is_pr: bool,
    expected: list[str] | None,
    on_github: list[str] | str | None,
) -> None:
    history = build_history(subject.bare)
    subject.open_pull_request("feature", "main")
    changed = await subject.forge.changed_files(
        subject.repo,
        base_sha=None if base is None else getattr(history, base, base),
        head_sha=getattr(history, head),
        pr_number=PR if is_pr else None,
    )
    github_differs = subject.provider == "github" and on_github != SAME
    assert changed == (on_github if github_differs else expected)


async def test_pull_request_files_follow_the_head_branch(subject: Subject) -> None:
    history = build_history(subject.bare)
    subject.open_pull_request("feature", "main")
    f3 = subject.bare.commit({"src/c.py": "c = 1\n"}, "f3", branch="feature")
    changed = await subject.forge.changed_files(
        subject.repo, base_sha=history.c2, head_sha=f3, pr_number=PR
    )
    assert changed == [*FEATURE, "src/c.py"]


# files in the change, pr?, how many paths each forge reports (None: unknown)
CAPS = [
    pytest.param(299, False, {"github": 299, "git": 299}, id="push-299"),
    pytest.param(300, False, {"github": None, "git": 300}, id="push-300"),  # compare lists ≤ 300
    pytest.param(3000, True, {"github": None, "git": 3000}, id="pr-3000"),  # PR files stop at 3000
    pytest.param(3001, False, {"github": None, "git": None}, id="push-3001"),
]


@pytest.mark.parametrize(("n", "is_pr", "expected"), CAPS)
async def test_changed_files_beyond_a_cap_are_unknown(
    subject: Subject, n: int, is_pr: bool, expected: dict
) -> None:
    base = subject.bare.commit({"README.md": "# exp\n"}, "base")
    head = subject.bare.commit(
        {f"data/{i:04}.txt": f"{i}\n" for i in range(n)}, "many", branch="many"
    )
    subject.open_pull_request("many", "main")
    changed = await subject.forge.changed_files(
        subject.repo, base_sha=base, head_sha=head, pr_number=PR if is_pr else None
    )
    assert (None if changed is None else len(changed)) == expected[subject.provider]


async def test_resolve_ref(subject: Subject) -> None:
    history = build_history(subject.bare)
    resolve = subject.forge.resolve_ref
    assert await resolve(subject.repo, "main") == history.c2
    assert await resolve(subject.repo, "feature") == history.f2
    assert await resolve(subject.repo, history.f1) == history.f1
    assert await resolve(subject.repo, "no-such-branch") is None
    assert await resolve(subject.repo, "-h") is None
    assert await resolve(subject.repo, "") is None


# size in bytes, the refusal (None: read)
SIZES = [
    pytest.param(MIB, None, id="one-mib"),
    pytest.param(MIB + 1, f"1,048,577 bytes {OVER_SIZE}", id="one-mib-and-a-byte"),
    pytest.param(int(2.3 * MIB), f"2.3 MiB {OVER_SIZE}", id="two-point-three-mib"),
]


@pytest.mark.parametrize(("size", "refusal"), SIZES)
async def test_a_workflow_over_the_size_cap_is_refused_unread(
    subject: Subject, size: int, refusal: str | None
) -> None:
    big = b"#" * (size - 1) + b"\n"
    sha = subject.bare.commit(
        {".labci/big.yml": big, ".labci/ok.yml": "name: ok\n", ".labci/notes.md": "no\n"}
    )
    found = await subject.forge.read_workflow_files(subject.repo, sha)
    if refusal is None:
        assert found.files == {".labci/big.yml": big, ".labci/ok.yml": b"name: ok\n"}
        assert found.refused == {}
    else:
        assert found.files == {".labci/ok.yml": b"name: ok\n"}
        assert found.refused == {".labci/big.yml": refusal}
    if subject.standin is not None:
        read = [".labci/big.yml", ".labci/ok.yml"] if refusal is None else [".labci/ok.yml"]
        assert subject.contents_requested() == read


async def test_workflow_files_beyond_the_first_100_are_refused_unread(subject: Subject) -> None:
    sha = subject.bare.commit({f".labci/w{i:03}.yml": f"name: w{i}\n" for i in range(105)})
    found = await subject.forge.read_workflow_files(subject.repo, sha)
    assert list(found.files) == [f".labci/w{i:03}.yml" for i in range(100)]
    assert found.files[".labci/w099.yml"] == b"name: w99\n"
    assert found.refused == {f".labci/w{i:03}.yml": OVER_COUNT for i in range(100, 105)}
    if subject.standin is not None:
        assert subject.contents_requested() == list(found.files)


async def test_no_workflow_files(subject: Subject) -> None:
    sha = subject.bare.commit({"README.md": "# exp\n", ".labci/sub/deep.yml": "name: deep\n"})
    found = await subject.forge.read_workflow_files(subject.repo, sha)
    assert (found.files, found.refused) == ({}, {})


async def test_an_unchanged_workflow_file_is_read_from_the_forge_once(subject: Subject) -> None:
    """Its blob id in the tree listing names its content: a later commit that leaves it
    alone is planned with the listing alone; an edited file is read again."""
    first = subject.bare.commit({".labci/a.yml": "name: a\n", "train.py": "v1\n"})
    second = subject.bare.commit({"train.py": "v2\n"})
    third = subject.bare.commit({".labci/a.yml": "name: a2\n"})
    found = [
        await subject.forge.read_workflow_files(subject.repo, sha) for sha in (first, second, third)
    ]
    assert [f.files for f in found] == [
        {".labci/a.yml": b"name: a\n"},
        {".labci/a.yml": b"name: a\n"},
        {".labci/a.yml": b"name: a2\n"},
    ]
    if subject.standin is not None:
        assert subject.contents_requested() == [".labci/a.yml", ".labci/a.yml"]
