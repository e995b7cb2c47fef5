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


async def collaborator_level(
    forge: GitHubForge, repo: Repository, login: str, *, user_id: int | None
) -> str:
    """`login`'s level on `repo` ("none" when GitHub knows no such collaborator).

    GitHub asks by login, and logins are reused: an account renamed away from `login` leaves
    it to someone else. The answer names the account it is about; when that is not the
    GitHub account labci knows (`user_id`), it is not this person's permission."""
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
    about = found.get("user")
    if user_id is None or not isinstance(about, dict) or about.get("id") != user_id:
        return "none"
    role = found.get("role_name") or found.get("permission")
    return ROLE_LEVELS.get(str(role), "none")
