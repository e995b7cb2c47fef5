"""The Forge protocol: what labci needs from a code host.

Lifecycle: one instance per provider, created at worker start-up and shared by
concurrent tasks; implementations hold no per-request state.
Errors: `ForgeUnavailable(retry_after_s)` for anything worth retrying (5xx, resets,
rate limits); `ForgeRejected(status)` for requests that can never succeed (a 422).
Idempotency: `post_status` is not idempotent on GitHub, so callers read back with
`has_status` before re-posting a message whose earlier attempt may have landed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..db.models import Repository

WORKFLOW_DIR = ".labci"
MAX_WORKFLOW_FILES = 100


@dataclass(frozen=True)
class StatusMessage:
    commit_sha: str
    context: str
    state: str  # pending | success | failure | error
    description: str
    target_url: str | None


class Forge(Protocol):
    async def read_workflow_files(self, repo: Repository, commit_sha: str) -> dict[str, bytes]:
        """`.labci/*.yml` and `.labci/*.yaml` at the commit, by path; empty when none."""
        ...

    async def post_status(self, repo: Repository, message: StatusMessage) -> None: ...

    async def has_status(self, repo: Repository, message: StatusMessage) -> bool:
        """Whether the forge already shows this exact status (read-back before re-posting)."""
        ...


def is_workflow_path(path: str) -> bool:
    folder, _, name = path.rpartition("/")
    return folder == WORKFLOW_DIR and name.endswith((".yml", ".yaml"))
