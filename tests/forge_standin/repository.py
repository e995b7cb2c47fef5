"""``GET /repos/{owner}/{repo}``: GitHub's ``full-repository`` object of a stand-in repository.

What labci reads of it is the clone URL (the bare repository's ``file://`` URL, so runners
clone what the stand-in serves) and the visibility, which tests set with
``Standin.set_visibility``; the rest is filled with GitHub's shapes and neutral values.
"""

from __future__ import annotations

from typing import Any

CREATED_AT = "2024-01-02T03:04:05Z"
VISIBILITIES = ("public", "private", "internal")


def full_repository(
    minimal: dict[str, Any],
    *,
    clone_url: str,
    visibility: str,
    default_branch: str,
    pushed_at: str,
) -> dict[str, Any]:
    """``minimal`` (the stand-in's repository object) grown to ``full-repository``."""
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}")
    full_name = minimal["full_name"]
    html_url = minimal["html_url"]
    return {
        **minimal,
        "private": visibility != "public",
        "visibility": visibility,
        "clone_url": clone_url,
        "git_url": f"git://example.invalid/{full_name}.git",
        "ssh_url": f"git@example.invalid:{full_name}.git",
        "svn_url": html_url,
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "license": None,
        "default_branch": default_branch,
        "forks": 0,
        "forks_count": 0,
        "open_issues": 0,
        "open_issues_count": 0,
        "stargazers_count": 0,
        "watchers": 0,
        "watchers_count": 0,
        "network_count": 0,
        "subscribers_count": 0,
        "size": 0,
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "created_at": CREATED_AT,
        "updated_at": pushed_at,
        "pushed_at": pushed_at,
    }
