"""A repository's facts (clone URL, visibility, App installation, default branch), read from
its forge's API.

Deliveries name a repository but never set these: a known repository's row keeps them as
the API last said (`record_facts`). Planning reads them again when they were never read or
are older than `repository_facts_max_age_s`, before it reads any workflow file, and GitHub's
`repository` webhook (privatized, publicized, renamed, ...) reads them again at once.

Forges that have no such API (the local `git` forge: `labci hook install` sets its facts)
are left alone. Errors are the forge's: `ForgeUnavailable` is retried by the caller (the
event stays `received`), `ForgeRejected` means the forge will not show labci the repository.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..db.models import Repository
from ..db.queries.repositories import (
    find_repository,
    mark_facts_stale,
    record_facts,
)
from ..errors import ForgeRejected, ForgeUnavailable

if TYPE_CHECKING:
    from ..context import ServerContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepositoryFacts:
    clone_url: str
    private: bool
    installation_id: int | None  # None: labci is not a GitHub App
    default_branch: str | None = None  # None: the forge did not say


@runtime_checkable
class FactsSource(Protocol):
    async def repository_facts(self, repo: Repository) -> RepositoryFacts: ...


def facts_due(repo: Repository, *, max_age_s: float, now: float) -> bool:
    return repo.facts_checked_at is None or now - repo.facts_checked_at >= max_age_s


async def refresh_facts(sc: ServerContext, repo: Repository, *, force: bool = False) -> bool:
    """Read `repo`'s facts from its forge and store them, when due (or `force`); whether
    they were read."""
    source = sc.forges.get(repo.provider)
    if not isinstance(source, FactsSource) or repo.id is None:
        return False
    now = time.time()
    if not force and not facts_due(repo, max_age_s=sc.settings.repository_facts_max_age_s, now=now):
        return False
    facts = await source.repository_facts(repo)
    async with sc.sessions() as session, session.begin():
        await record_facts(
            session,
            repo.id,
            clone_url=facts.clone_url,
            private=facts.private,
            installation_id=facts.installation_id,
            default_branch=facts.default_branch,
            checked_at=now,
        )
    return True


async def refresh_named(sc: ServerContext, provider: str, full_names: list[str]) -> list[str]:
    """Read the facts of the known repositories among `full_names` now (a forge said they
    changed); returns what happened to each, for the delivery's answer.

    When the forge cannot answer, the facts are marked stale (planning reads them first);
    when it will not show the repository under that name (gone, renamed, moved away), the
    repository is also made private, since nothing vouches for its visibility any more.
    """
    outcomes = []
    for full_name in dict.fromkeys(full_names):
        async with sc.sessions() as session:
            repo = await find_repository(session, provider=provider, full_name=full_name)
        if repo is None or repo.id is None:
            continue
        try:
            await refresh_facts(sc, repo, force=True)
            outcomes.append(f"{full_name}: refreshed")
        except ForgeUnavailable as exc:
            log.warning("facts of %s not refreshed now: %s", full_name, exc)
            await _mark_stale(sc, repo.id, hide=False)
            outcomes.append(f"{full_name}: forge unavailable, read again before planning")
        except ForgeRejected as exc:
            log.warning("facts of %s not readable: %s", full_name, exc)
            await _mark_stale(sc, repo.id, hide=True)
            outcomes.append(f"{full_name}: not visible to labci ({exc.status}), made private")
    return outcomes


async def _mark_stale(sc: ServerContext, repository_id: int, *, hide: bool) -> None:
    async with sc.sessions() as session, session.begin():
        await mark_facts_stale(session, repository_id, hide=hide)
