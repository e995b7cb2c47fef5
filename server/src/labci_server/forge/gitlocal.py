"""The `git` provider: plain bare repositories on disk; statuses, pull request comments and
commit comments kept in labci's database.

Reading workflow files, changed files and refs needs only the repository on disk, never the
database; statuses need both.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import Repository
from ..db.queries import outbox as outbox_queries
from ..errors import ForgeUnavailable, PlanError
from .base import (
    MAX_LISTED_COMMITS,
    WORKFLOW_DIR,
    ZERO_SHA,
    CheckRunMessage,
    CommentMessage,
    CommitCommentMessage,
    StatusMessage,
    WorkflowFiles,
    check_comment,
    check_commit_comment,
    is_workflow_path,
    limit_changed_paths,
    select_workflow_files,
)


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


FULL_SHA = re.compile(r"[0-9a-f]{40}")


class GitLocalForge:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def read_workflow_files(self, repo: Repository, commit_sha: str) -> WorkflowFiles:
        """Sizes come from `git ls-tree -l`, so a refused file is never read."""
        await _require_on_disk(repo)
        listing = await git(
            repo.clone_url,
            "ls-tree",
            "-l",
            "-z",
            "--end-of-options",
            commit_sha,
            WORKFLOW_DIR + "/",
        )
        blobs: dict[str, tuple[str, int]] = {}  # path -> (blob sha, size in bytes)
        for record in listing.split(b"\0"):
            meta, _, raw_path = record.partition(b"\t")
            fields = meta.decode().split()
            path = raw_path.decode(errors="replace")
            if len(fields) == 4 and fields[1] == "blob" and is_workflow_path(path):
                blobs[path] = (fields[2], int(fields[3]))
        to_read, refused = select_workflow_files({p: size for p, (_, size) in blobs.items()})
        files = {p: await git(repo.clone_url, "cat-file", "blob", blobs[p][0]) for p in to_read}
        return WorkflowFiles(files=files, refused=refused)

    async def changed_files(
        self, repo: Repository, *, base_sha: str | None, head_sha: str, pr_number: int | None
    ) -> list[str] | None:
        """`git diff base...head` for a pull request, `git diff base head` for a push; renames
        are listed as a deletion and an addition, which gives the same paths."""
        if not base_sha or base_sha == ZERO_SHA:
            return None
        await _require_on_disk(repo)
        if await self.resolve_ref(repo, base_sha) is None:
            return None  # not in this repository (any more)
        revs = [f"{base_sha}...{head_sha}"] if pr_number is not None else [base_sha, head_sha]
        out = await git(
            repo.clone_url, "diff", "--name-status", "-z", "--no-renames", "--end-of-options", *revs
        )
        # Records are "STATUS\0path\0"; with --no-renames each has exactly one path.
        fields = out.split(b"\0")
        paths = {p.decode(errors="replace") for p in fields[1::2] if p}
        return limit_changed_paths(paths)

    async def resolve_ref(self, repo: Repository, ref: str) -> str | None:
        if not ref or ref.startswith("-") or "\0" in ref:
            return None
        await _require_on_disk(repo)
        try:
            out = await git(repo.clone_url, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except PlanError:  # --quiet: no such commit, and nothing on stderr
            return None
        return out.decode().strip() or None

    async def pull_request_head(
        self, repo: Repository, *, pr_number: int, head_branch: str
    ) -> str | None:
        """The tip of `head_branch` in the bare repository: a local pull request is its head
        branch proposed for its base. None when the branch is gone."""
        if not head_branch or head_branch.startswith("-"):
            return None
        return await self.resolve_ref(repo, f"refs/heads/{head_branch}")

    async def is_ancestor(self, repo: Repository, ancestor: str, descendant: str) -> bool:
        if not all(FULL_SHA.fullmatch(sha) for sha in (ancestor, descendant)):
            return False
        await _require_on_disk(repo)
        try:
            await git(repo.clone_url, "merge-base", "--is-ancestor", ancestor, descendant)
        except PlanError:  # exit 1: not an ancestor; 128: an unknown commit
            return False
        return True

    async def commits_between(
        self, repo: Repository, base_sha: str, head_sha: str
    ) -> list[str] | None:
        """`git rev-list --first-parent base..head`, checked to start right after `base`."""
        if not all(FULL_SHA.fullmatch(sha) for sha in (base_sha, head_sha)):
            return None
        if base_sha == head_sha:
            return []
        if not await self.is_ancestor(repo, base_sha, head_sha):
            return None
        out = await git(
            repo.clone_url,
            "rev-list",
            "--first-parent",
            f"--max-count={MAX_LISTED_COMMITS + 1}",
            "--end-of-options",
            head_sha,
            f"^{base_sha}",
        )
        newest_first = out.decode().split()
        if not newest_first or len(newest_first) > MAX_LISTED_COMMITS:
            return None
        oldest = newest_first[-1]
        parents = (await git(repo.clone_url, "rev-list", "--parents", "-n", "1", oldest)).split()
        # Reached through a merge's second parent, `base` is not on the first-parent line.
        if len(parents) < 2 or parents[1].decode() != base_sha:
            return None
        return newest_first[::-1]

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
        # The context's newest status decides, as on GitHub.
        mine = [r for r in rows if r.context == message.context]
        return bool(mine) and (mine[-1].state, mine[-1].description) == (
            message.state,
            message.description,
        )

    async def upsert_comment(self, repo: Repository, message: CommentMessage) -> str:
        """The pull request's one labci comment, kept in the database (shown on its page)."""
        check_comment(message)
        assert repo.id is not None
        async with self._sessions() as session, session.begin():
            row = await outbox_queries.save_pull_request_comment(
                session, repository_id=repo.id, pr_number=message.pr_number, body=message.body
            )
        return str(row)

    async def comment_on_commit(self, repo: Repository, message: CommitCommentMessage) -> str:
        """Kept in the database, on the commit: a local pull request is only a pair of
        branches, so no pull request is known to have merged it."""
        check_commit_comment(message)
        assert repo.id is not None
        async with self._sessions() as session, session.begin():
            await outbox_queries.save_commit_comment(
                session,
                repository_id=repo.id,
                commit_sha=message.commit_sha,
                marker=message.marker,
                body=message.body,
            )
        return f"commit {message.commit_sha[:7]}"

    async def upsert_check_run(self, repo: Repository, message: CheckRunMessage) -> str:
        """No check runs here: the commit statuses carry the same text."""
        return ""


async def _require_on_disk(repo: Repository) -> None:
    if not await asyncio.to_thread(Path(repo.clone_url).exists):
        raise ForgeUnavailable(f"repository {repo.clone_url} is not on disk")
