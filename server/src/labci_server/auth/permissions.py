"""A caller's level on a repository.

- A server administrator (acting with full power) is admin everywhere.
- A public repository is readable by anyone signed in, and by anonymous callers unless
  LABCI_ANONYMOUS_READ is off; a private one only by those given more.
- An administrator may grant a user read, write or admin on a repository (`labci repos
  grant`): the way for local repositories, and for local accounts on GitHub repositories.
- A GitHub user's level on a GitHub repository mirrors GitHub's own (the collaborator
  permission API, cached for LABCI_PERMISSION_CACHE_S in Redis). When GitHub cannot be
  asked, nothing more is granted: the caller keeps what the rules above give.
- A personal API token caps all of this at its scope.
"""

from __future__ import annotations

import logging

from ..context import ServerContext
from ..db.models import Repository, User
from ..db.queries import people
from ..errors import ForgeError
from ..forge.github import GitHubForge
from ..forge.github_people import collaborator_level
from .levels import LEVELS, at_least, highest, lowest
from .principal import Principal

log = logging.getLogger(__name__)

CACHE_PREFIX = "labci:permission:"


async def repository_level(
    sc: ServerContext,
    principal: Principal,
    repo: Repository,
    *,
    grants: dict[int, str] | None = None,
) -> str:
    """`principal`'s level on `repo`; `grants` (the user's, by repository id) saves a query
    per repository when many are judged at once."""
    user = principal.user
    if user is not None and user.is_admin:
        return lowest("admin", principal.scope)
    level = "none"
    if not repo.private and (user is not None or sc.settings.anonymous_read):
        level = "read"
    if user is not None and user.id is not None and repo.id is not None:
        if grants is None:
            async with sc.sessions() as session:
                granted = await people.grant_of(session, repository_id=repo.id, user_id=user.id)
        else:
            granted = grants.get(repo.id)
        level = highest(level, granted)
        if repo.provider == "github" and user.provider == "github" and not at_least(level, "admin"):
            level = highest(level, await github_level(sc, repo, user))
    return lowest(level, principal.scope)


async def github_level(sc: ServerContext, repo: Repository, user: User) -> str:
    # Keyed by labci's user, not the login: a login GitHub gave to someone else since is
    # not the same person (collaborator_level checks the account's id too).
    key = f"{CACHE_PREFIX}{repo.id}:{user.id}"
    login = user.login
    cached = await sc.redis.get(key)
    if cached is not None:
        text = cached.decode() if isinstance(cached, bytes) else str(cached)
        if text in LEVELS:
            return text
    forge = sc.forges.get("github")
    if not isinstance(forge, GitHubForge):
        return "none"
    try:
        level = await collaborator_level(forge, repo, login, user_id=user.forge_user_id)
    except ForgeError as exc:
        log.warning("permission of %s on %s unknown: %s", login, repo.full_name, exc)
        return "none"  # not cached: asked again on the next request
    await sc.redis.set(key, level, ex=max(1, round(sc.settings.permission_cache_s)))
    return level


async def readable_repository_ids(sc: ServerContext, principal: Principal) -> set[int] | None:
    """The repositories `principal` may read; None means all of them."""
    user = principal.user
    if user is not None and user.is_admin:  # admin everywhere, and any scope may read
        return None
    async with sc.sessions() as session:
        repos = await people.all_repositories(session)
        grants = await people.grants_of_user(session, user.id) if user and user.id else {}
    return {
        repo.id
        for repo in repos
        if repo.id is not None
        and at_least(await repository_level(sc, principal, repo, grants=grants), "read")
    }
