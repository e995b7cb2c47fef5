from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from forge_standin import OpenAPIChecker, Standin, create_standin

TOKEN = "ghs_standin_test_token"
BIG = 1024 * 1024 + 1


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Author",
        "GIT_COMMITTER_EMAIL": "author@example.com",
    }
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@dataclass
class Repo:
    root: Path  # repos_root
    owner: str
    name: str
    bare: Path
    work: Path
    first: str  # commit on main before `head`
    head: str  # main
    feature: str  # branch "feature/x", one commit on top of head

    def rev(self, spec: str) -> str:
        return git("--git-dir", str(self.bare), "rev-parse", spec)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    root = tmp_path / "repos"
    bare = root / "acme" / "widgets.git"
    bare.parent.mkdir(parents=True)
    git("init", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "work"
    git("clone", str(bare), str(work))
    git("checkout", "-b", "main", cwd=work)
    (work / "README.md").write_text("# widgets\n")
    git("add", ".", cwd=work)
    git("commit", "-m", "first", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / ".labci").mkdir()
    (work / ".labci" / "train.yml").write_text("name: train\njobs: {}\n")
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "run.sh").chmod(0o755)
    (work / "big.bin").write_bytes(b"x" * BIG)
    (work / "link").symlink_to("README.md")
    git("add", ".", cwd=work)
    git("commit", "-m", "second", cwd=work)
    head = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-b", "feature/x", cwd=work)
    (work / "feature.txt").write_text("feature\n")
    git("add", ".", cwd=work)
    git("commit", "-m", "feature", cwd=work)
    feature = git("rev-parse", "HEAD", cwd=work)
    git("push", "origin", "main", "feature/x", cwd=work)
    return Repo(root, "acme", "widgets", bare, work, first, head, feature)


@pytest.fixture(scope="session")
def checker() -> OpenAPIChecker:
    return OpenAPIChecker()


@pytest.fixture
def standin(repo: Repo, checker: OpenAPIChecker) -> Standin:
    return create_standin(repo.root, checker)


@pytest.fixture
async def client(standin: Standin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=standin.app),
        base_url="https://api.github.test",
        headers={
            "Authorization": f"token {TOKEN}",
            "User-Agent": "labci-test/1.0",
            "Accept": "application/vnd.github+json",
        },
    ) as c:
        yield c
