"""Shared constants and the test repository for the stand-in's own tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forge_standin.repos import BareRepo, create_bare_repo

TOKEN = "ghs_standin_test_token"
BIG = 1024 * 1024 + 1  # just over GitHub's 1 MB inline-content limit
API = "https://api.github.test"


@dataclass
class Repo:
    bare: BareRepo
    first: str  # first commit on main
    head: str  # main
    feature: str  # branch "feature/x": one commit on top of head

    @property
    def root(self) -> Path:
        return self.bare.repos_root

    def rev(self, spec: str) -> str:
        return self.bare.rev(spec)


def build_repo(tmp_path: Path) -> Repo:
    """acme/widgets: README, then a workflow, an executable, a big file and a symlink."""
    bare = create_bare_repo(tmp_path / "repos", "acme", "widgets")
    first = bare.commit({"README.md": "# widgets\n"}, "first")
    head = bare.commit(
        {
            ".labci/train.yml": "name: train\njobs: {}\n",
            "run.sh": "#!/bin/sh\necho hi\n",
            "big.bin": b"x" * BIG,
        },
        "second",
        executable=("run.sh",),
        symlinks={"link": "README.md"},
    )
    feature = bare.commit({"feature.txt": "feature\n"}, "feature", branch="feature/x")
    return Repo(bare, first, head, feature)
