"""What GitHub says a person may do on a repository (the collaborator-permission API),
in labci's levels. Kept apart from `github.py`, which speaks for labci's own writes."""

from __future__ import annotations

from ..db.models import Repository
from .github import GitHubForge

# GitHub's roles in labci's levels: `maintain` may not manage secrets on GitHub either, and
# `triage` may not push.
ROLE_LEVELS = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "push": "write",
    "triage": "read",
    "read": "read",
    "pull": "read",
}


async def collaborator_level(forge: GitHubForge, repo: Repository, login: str) -> str:
    """`login`'s level on `repo` ("none" when GitHub knows no such collaborator)."""
    owner, name = repo.full_name.split("/", 1)
    token = await forge._token(repo)  # noqa: SLF001 — the forge's own credential choice
    found = await forge._get(  # noqa: SLF001
        repo,
        "/repos/{owner}/{repo}/collaborators/{username}/permission",
        {"owner": owner, "repo": name, "username": login},
        token=token,
        none_on=(404,),
    )
    if not isinstance(found, dict):
        return "none"
    role = found.get("role_name") or found.get("permission")
    return ROLE_LEVELS.get(str(role), "none")
