"""Real bare repositories for the stand-in: ``repos_root/<owner>/<repo>.git``."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git with a neutral config and a fixed identity; return stripped stdout."""
    out = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@dataclass
class BareRepo:
    """A bare repository served by the stand-in plus a work clone to commit from."""

    repos_root: Path
    owner: str
    name: str
    bare: Path
    work: Path

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def clone_url(self) -> str:
        return self.bare.as_uri()

    def commit(
        self,
        files: dict[str, str | bytes | None],
        message: str = "commit",
        *,
        branch: str = "main",
        executable: tuple[str, ...] = (),
        symlinks: dict[str, str] | None = None,
    ) -> str:
        """Commit ``files`` (None deletes) on ``branch``, push it, and return the new sha."""
        existing = git("branch", "--list", "--all", "--format=%(refname:short)", cwd=self.work)
        if branch in existing.split() or f"origin/{branch}" in existing.split():
            git("checkout", branch, cwd=self.work)
        else:
            git("checkout", "-b", branch, cwd=self.work)
        for path, content in files.items():
            target = self.work / path
            if content is None:
                git("rm", "-q", "--", path, cwd=self.work)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
            if path in executable:
                target.chmod(0o755)
        for path, dest in (symlinks or {}).items():
            link = self.work / path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(dest)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "-q", "origin", branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def merge(self, branch: str, message: str = "merge", *, into: str = "main") -> str:
        """Merge ``branch`` into ``into`` with a merge commit, push it, return its sha."""
        git("checkout", into, cwd=self.work)
        git("merge", "-q", "--no-ff", "-m", message, branch, cwd=self.work)
        git("push", "-q", "origin", into, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def rev(self, spec: str) -> str:
        return git("--git-dir", str(self.bare), "rev-parse", spec)


def create_bare_repo(
    repos_root: Path, owner: str, name: str, *, default_branch: str = "main"
) -> BareRepo:
    """``git init --bare`` at ``repos_root/owner/name.git`` and a work clone beside it."""
    bare = Path(repos_root) / owner / f"{name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", f"--initial-branch={default_branch}", str(bare))
    work = Path(repos_root).parent / f"{owner}--{name}.work"
    git("clone", "-q", str(bare), str(work))
    return BareRepo(Path(repos_root), owner, name, bare, work)
