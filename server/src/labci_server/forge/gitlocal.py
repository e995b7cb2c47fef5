"""The `git` provider: plain bare repositories on disk, statuses kept in labci's database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import Repository
from ..db.queries import outbox as outbox_queries
from ..errors import ForgeUnavailable, PlanError
from .base import MAX_WORKFLOW_FILES, WORKFLOW_DIR, StatusMessage, is_workflow_path


async def git(repo_path: str, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "git",
        "--git-dir",
        repo_path,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise PlanError(f"git {' '.join(args)} failed: {err.decode(errors='replace').strip()}")
    return out


class GitLocalForge:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def read_workflow_files(self, repo: Repository, commit_sha: str) -> dict[str, bytes]:
        if not await asyncio.to_thread(Path(repo.clone_url).exists):
            raise ForgeUnavailable(f"repository {repo.clone_url} is not on disk")
        listing = await git(
            repo.clone_url, "ls-tree", "--name-only", commit_sha, WORKFLOW_DIR + "/"
        )
        paths = [p for p in listing.decode(errors="replace").splitlines() if is_workflow_path(p)]
        files = {}
        for path in sorted(paths)[:MAX_WORKFLOW_FILES]:
            files[path] = await git(repo.clone_url, "show", f"{commit_sha}:{path}")
        return files

    async def post_status(self, repo: Repository, message: StatusMessage) -> None:
        async with self._sessions() as session, session.begin():
            await outbox_queries.add_commit_status(
                session,
                {
                    "repository_id": repo.id,
                    "commit_sha": message.commit_sha,
                    "context": message.context,
                    "state": message.state,
                    "description": message.description,
                    "target_url": message.target_url,
                },
            )

    async def has_status(self, repo: Repository, message: StatusMessage) -> bool:
        assert repo.id is not None
        async with self._sessions() as session:
            rows = await outbox_queries.commit_statuses(
                session, repository_id=repo.id, commit_sha=message.commit_sha
            )
        return any(r.context == message.context and r.state == message.state for r in rows)
