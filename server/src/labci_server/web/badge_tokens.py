"""Who may see a repository's badges: anyone for a public repository; for a private one,
whoever has its badge token (`?token=` in the badge URL, printed by `labci badge-token`).

A missing or wrong token answers exactly as an unknown repository does, so a badge URL
never tells a stranger that a private repository exists.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..db.models import Repository
from ..db.queries.history import claim_badge_token, repositories_named
from ..db.queries.repositories import find_repository
from ..errors import BadRequest, NotFound

NOT_FOUND = "no such repository here (a private repository's badges need its ?token=)"

TOKEN_BYTES = 24  # 32 URL-safe characters


def pick_repository(candidates: Sequence[Repository], owner: str, name: str) -> Repository | None:
    """The one repository `owner/name` means: GitHub's, else the single local match.

    Several local repositories whose paths end in `owner/name` are ambiguous: NotFound says
    so rather than show one of them at random.
    """
    github = [repo for repo in candidates if repo.provider == "github"]
    if github:
        return github[0]
    if len(candidates) > 1:
        raise NotFound(
            f"the name {owner}/{name} is ambiguous: {len(candidates)} local repositories "
            "end in it; rename one of them"
        )
    return candidates[0] if candidates else None


def visible_repository(
    candidates: Sequence[Repository], owner: str, name: str, token: str | None
) -> Repository:
    """The repository `owner/name` means, if its badges may be shown with `token`."""
    repo = pick_repository(candidates, owner, name)
    if repo is None or (repo.private and not _token_matches(token, repo.badge_token)):
        raise NotFound(NOT_FOUND)
    return repo


def _token_matches(given: str | None, stored: str | None) -> bool:
    if not given or not stored:
        return False
    # Bytes: compare_digest refuses non-ASCII str, and a query string can carry anything.
    return hmac.compare_digest(given.encode(), stored.encode())


async def ensure_badge_token(
    sessions: Callable[[], AbstractAsyncContextManager[Any]], full_name: str
) -> str:
    """The badge token of a repository, created on first use and kept afterwards.

    `full_name` is a GitHub repository's `owner/name`, a local bare repository's absolute
    path, or the `owner/name` its badge URLs use (the path's last two components).
    """
    async with sessions() as session, session.begin():
        if full_name.startswith("/"):
            repo = await find_repository(session, provider="git", full_name=full_name)
        else:
            owner, _, name = full_name.partition("/")
            if not owner or not name or "/" in name:
                raise BadRequest(
                    f"{full_name!r}: expected OWNER/REPO or the absolute path of a bare repository"
                )
            candidates = await repositories_named(session, owner=owner, name=name)
            repo = pick_repository(candidates, owner, name)
        if repo is None or repo.id is None:
            raise NotFound(f"no repository {full_name} is known to labci")
        return await claim_badge_token(
            session, repository_id=repo.id, token=secrets.token_urlsafe(TOKEN_BYTES)
        )
