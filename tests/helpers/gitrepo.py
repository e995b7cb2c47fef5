"""Real git repositories for tests: a bare repository and a work clone that pushes to it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "labci test",
    "GIT_AUTHOR_EMAIL": "test@labci.invalid",
    "GIT_COMMITTER_NAME": "labci test",
    "GIT_COMMITTER_EMAIL": "test@labci.invalid",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_IDENTITY},
    )
    return done.stdout.strip()


@dataclass
class TestRepo:
    bare: Path
    work: Path

    __test__ = False  # not a test class

    def commit(
        self, files: dict[str, str | None], message: str = "change", branch: str = "main"
    ) -> str:
        """Write (or delete, for None) files on `branch`, commit and push; returns the sha."""
        current = (
            git(self.work, "rev-parse", "--abbrev-ref", "HEAD") if self.has_commits() else None
        )
        if current != branch:
            exists = bool(git(self.work, "branch", "--list", branch)) if current else False
            git(self.work, "checkout", "-q", branch) if exists else git(
                self.work, "checkout", "-q", "-b", branch
            )
        for path, text in files.items():
            target = self.work / path
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        git(self.work, "push", "-q", "origin", branch)
        return git(self.work, "rev-parse", "HEAD")

    def has_commits(self) -> bool:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=self.work, capture_output=True, check=False
            ).returncode
            == 0
        )


def make_repo(root: Path, name: str = "experiment") -> TestRepo:
    bare = root / f"{name}.git"
    work = root / f"{name}-work"
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    git(root, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "main")
    return TestRepo(bare=bare.resolve(), work=work)


def hook_install(bare: Path, database_url: str, *, public: bool = False) -> str:
    """`labci hook install` as an operator runs it on the server's machine; returns the hook
    token it wrote into the repository."""
    import sys

    args = [sys.executable, "-m", "labci_server.cli", "hook", "install", str(bare)]
    subprocess.run(
        [*args, *(["--public"] if public else [])],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "LABCI_DATABASE_URL": database_url,
            "LABCI_PUBLIC_URL": "http://labci.test",
        },
    )
    return (bare / "labci" / "hook-token").read_text().strip()
