"""GitHub's JSON in labci's words: a repository's facts, a diff entry's paths, and the
first-parent line through a comparison's commits. Pure; the requests are in `github`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ForgeUnavailable
from .facts import RepositoryFacts


def first_parent_line(
    first_parent: Mapping[str, str | None], base_sha: str, head_sha: str
) -> list[str] | None:
    """Head's first-parent line down to base, oldest first; None when it does not reach
    base among the listed commits."""
    line: list[str] = []
    sha: str | None = head_sha
    while sha != base_sha:
        if sha is None or sha not in first_parent:
            return None
        line.append(sha)
        sha = first_parent[sha]
    return line[::-1]


def entry_paths(entry: Mapping[str, Any]) -> list[str]:
    """A diff entry's path, and for a rename also the old one (path filters see both)."""
    paths = [entry["filename"]]
    if entry.get("previous_filename"):
        paths.append(entry["previous_filename"])
    return paths


def facts_of(found: Any, installation_id: int | None, where: str) -> RepositoryFacts:
    """GitHub's `full-repository` in labci's words; an internal repository is not public."""
    clone_url = found.get("clone_url") if isinstance(found, dict) else None
    private = found.get("private") if isinstance(found, dict) else None
    if not isinstance(clone_url, str) or not clone_url or not isinstance(private, bool):
        raise ForgeUnavailable(f"{where}: GitHub answered without clone_url and private")
    hidden = private or found.get("visibility") in ("private", "internal")
    branch = found.get("default_branch")
    return RepositoryFacts(
        clone_url=clone_url,
        private=hidden,
        installation_id=installation_id,
        default_branch=branch if isinstance(branch, str) and branch else None,
    )
