"""The Forge protocol: what labci needs from a code host.

Lifecycle: one instance per provider, created at worker start-up and shared by
concurrent tasks; implementations hold no per-request state.
Errors: `ForgeUnavailable(retry_after_s)` for anything worth retrying (5xx, resets,
rate limits); `ForgeRejected(status)` for requests that can never succeed (a 422).
"Unknown" answers (no base to compare with, a ref that does not exist) are None, not errors.
Idempotency: `post_status` is not idempotent on GitHub, so callers read back with
`has_status` before re-posting a message whose earlier attempt may have landed.
`upsert_comment`, `upsert_check_run` and `comment_on_commit` are idempotent by construction:
they read first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from labci_spec import MAX_WORKFLOW_BYTES

from ..db.models import Repository
from ..errors import ForgeRejected

WORKFLOW_DIR = ".labci"
MAX_WORKFLOW_FILES = 100
MAX_CHANGED_FILES = 3000  # GitHub lists at most 3,000 files of a pull request
ZERO_SHA = "0" * 40  # a push's `before` when it created the branch
_MIB = 1024 * 1024
COMMENT_MARKER_PREFIX = "<!-- labci:"
# GitHub refuses a comment body over 65,536 characters. Some measure its real limit as 2**18
# UTF-8 bytes; 65,536 code points never exceed that, so counting code points is safe for both.
MAX_COMMENT_CHARS = 65_536
# The longest stretch of commits `commits_between` lists (GitHub's comparison lists 250).
MAX_LISTED_COMMITS = 250


@dataclass(frozen=True)
class StatusMessage:
    commit_sha: str
    context: str
    state: str  # pending | success | failure | error
    description: str
    target_url: str | None


@dataclass(frozen=True)
class WorkflowFiles:
    """The workflow files at a commit, and the ones refused unread, with the reason."""

    files: dict[str, bytes]  # path -> content, at most MAX_WORKFLOW_FILES, sorted by path
    refused: dict[str, str]  # path -> reason for a person, sorted by path


@dataclass(frozen=True)
class CommentMessage:
    """labci's one comment on a pull request, as it should read now."""

    pr_number: int
    marker: str  # a hidden HTML comment naming labci's comment, e.g. "<!-- labci:pr-comment -->"
    body: str  # markdown that starts with `marker`; at most MAX_COMMENT_CHARS (callers truncate)


@dataclass(frozen=True)
class CommitCommentMessage:
    """A labci comment about one commit (a bisection's finding), found again by `marker`."""

    commit_sha: str
    marker: str  # a hidden HTML comment, e.g. "<!-- labci:bisection-12 -->"
    body: str  # markdown that starts with `marker`; at most MAX_COMMENT_CHARS


@dataclass(frozen=True)
class CheckRunMessage:
    """One labci check on a commit, as it should read now (a GitHub check run)."""

    head_sha: str
    name: str  # the commit status context's text, e.g. "labci/train/cifar10"
    external_id: str  # labci's id for it, e.g. "job-group:123:labci/train/cifar10"
    status: str  # queued | in_progress | completed
    # success | failure | neutral | cancelled | timed_out | action_required | skipped;
    # required when completed, None before
    conclusion: str | None
    title: str  # one line, ≤ 140 characters shows best
    summary: str  # markdown; the forge truncates it, with a note, beyond its limit
    details_url: str | None


class Forge(Protocol):
    async def read_workflow_files(self, repo: Repository, commit_sha: str) -> WorkflowFiles:
        """`.labci/*.yml` and `.labci/*.yaml` at the commit; empty when there are none.

        Caps are checked on the forge's listing before any content is fetched: a file over
        `MAX_WORKFLOW_BYTES`, or beyond the first `MAX_WORKFLOW_FILES` by path, is never read
        and appears in `refused` instead.
        """
        ...

    async def changed_files(
        self, repo: Repository, *, base_sha: str | None, head_sha: str, pr_number: int | None
    ) -> list[str] | None:
        """Paths changed, sorted, for `paths:` / `paths-ignore:` filters; None when unknown.

        As GitHub Actions computes them: for a pull request (`pr_number` given) the changes on
        the head since its merge base with the base (three dots); for a push, `base_sha..
        head_sha` (two dots). A rename contributes its old and its new path; a deletion its
        path. None (unknown, so path filters let the workflow run rather than skip it) when
        there is no base (a push that created the branch: `base_sha` None or all zeros), when
        the forge does not know the base or cannot diff it exactly (GitHub, for a force push),
        and when the change is larger than `MAX_CHANGED_FILES` paths or the forge cannot tell
        whether it is.
        """
        ...

    async def resolve_ref(self, repo: Repository, ref: str) -> str | None:
        """The commit sha a branch name (or a sha) points at now; None if there is none."""
        ...

    async def pull_request_head(
        self, repo: Repository, *, pr_number: int, head_branch: str
    ) -> str | None:
        """The commit sha pull request `pr_number` proposes now; None when the forge cannot say.

        The planner asks it before planning a pull request event: deliveries can arrive out of
        order, and an event whose commit is no longer the head must run nothing (its run would
        supersede the real head's). `head_branch` is the head branch the event named: GitHub
        goes by the number (the branch may live in a fork), the local forge, whose pull
        requests are only a pair of branches, reads the branch's tip.

        None (so the event is planned as it says) when the forge does not know the pull
        request or its head branch is gone. Errors: `ForgeUnavailable` for anything worth
        retrying; `ForgeRejected` for the forge's other refusals.
        """
        ...

    async def is_ancestor(self, repo: Repository, ancestor: str, descendant: str) -> bool:
        """Whether commit `ancestor` is `descendant` or in its history (the head moved on by
        pushing), rather than a commit a force push left behind; False when the forge
        cannot say. Errors: `ForgeUnavailable` for anything worth retrying."""
        ...

    async def commits_between(
        self, repo: Repository, base_sha: str, head_sha: str
    ) -> list[str] | None:
        """The commits of `head_sha`'s first-parent line after `base_sha`, oldest first, up to
        and including `head_sha`: what a bisection searches. [] when they are the same commit.

        None (unknown) when `base_sha` is not on that line (a force push rewrote it, or it
        came in through a merge's second parent), when the forge does not know either
        commit, and when there are more than `MAX_LISTED_COMMITS`. Errors: `ForgeUnavailable`
        for anything worth retrying; `ForgeRejected` for the forge's other refusals.
        """
        ...

    async def comment_on_commit(self, repo: Repository, message: CommitCommentMessage) -> str:
        """Tell the people behind a commit: a comment on the pull request that merged it when
        the forge knows one, else on the commit itself; returns where it went ("pull request
        #12" or "commit 1a2b3c4").

        Idempotent by construction, like `upsert_comment`: the target's comments are read
        first and the first whose body starts with `marker` is updated (unless it already
        reads so); only when there is none is a comment created.

        Errors: `ForgeRejected(status=422)` before anything is sent for a message that can
        never be delivered (see `check_commit_comment`); `ForgeRejected` for the forge's own
        refusals; `ForgeUnavailable` for anything worth retrying.
        """
        ...

    async def post_status(self, repo: Repository, message: StatusMessage) -> None: ...

    async def has_status(self, repo: Repository, message: StatusMessage) -> bool:
        """Whether the forge already shows this exact status (read-back before re-posting)."""
        ...

    async def upsert_comment(self, repo: Repository, message: CommentMessage) -> str:
        """Create the pull request's labci comment, or update the one holding `marker`; returns
        the comment's id (as text).

        Idempotent by construction, so a retry after a lost answer is safe: the pull request's
        comments are listed first, oldest first; the first whose body starts with `marker` (one
        that merely quotes the marker further down is not labci's) gets the new body, unless it
        already reads so, and only when none does is a comment created. Several marked comments
        (a create whose answer was lost and whose retry listed before the forge showed it, or
        two concurrent upserts) are not merged: the oldest is updated, the rest left alone.
        Concurrent upserts for one pull request may both create, so callers serialize them;
        this method keeps no state between calls.

        Errors: `ForgeRejected(status=422)` before anything is sent when the message can never
        be delivered (see `check_comment`: a body over `MAX_COMMENT_CHARS`, a malformed marker,
        a body that does not start with it); `ForgeRejected` for the forge's own refusals (an
        unknown pull request, no right to comment); `ForgeUnavailable` for anything worth
        retrying, including a comment that vanished between the listing and the update.
        """
        ...

    async def upsert_check_run(self, repo: Repository, message: CheckRunMessage) -> str:
        """Create the commit's check run named by `external_id`, or update it; returns the
        check run's id (as text), or "" on a forge without check runs.

        Idempotent by construction: the commit's check runs of this name are read first and
        the newest one with the same `external_id` gets the message, unless it already reads
        so; only when there is none is one created. A check run the forge has completed keeps
        its status and conclusion for good, so a message that changes either gets a new check
        run (with the same `external_id`, which later upserts then find first).

        Errors: `ForgeRejected(status=422)` before anything is sent for a message that can
        never be delivered (an unknown status or conclusion, a completed one without a
        conclusion) and when the forge is not set up for check runs (GitHub: labci is not a
        GitHub App); `ForgeRejected` for the forge's own refusals (including a repository
        whose App installation labci has not seen yet); `ForgeUnavailable` for anything worth
        retrying.
        """
        ...


def check_comment(message: CommentMessage) -> None:
    """Raise `ForgeRejected(status=422)` for a comment that no forge should be sent."""
    _check_marked(
        f"labci comment on pull request #{message.pr_number}", message.marker, message.body
    )


def check_commit_comment(message: CommitCommentMessage) -> None:
    """Raise `ForgeRejected(status=422)` for a commit comment that no forge should be sent."""
    _check_marked(f"labci comment on commit {message.commit_sha[:7]}", message.marker, message.body)


def _check_marked(where: str, marker: str, body: str) -> None:
    if not (
        marker.startswith(COMMENT_MARKER_PREFIX)
        and marker.endswith("-->")
        and "-->" not in marker[len(COMMENT_MARKER_PREFIX) : -len("-->")]
    ):
        raise ForgeRejected(
            f"{where}: marker {marker[:80]!r} is not one HTML comment starting with "
            f"{COMMENT_MARKER_PREFIX!r}",
            status=422,
        )
    if not body.startswith(marker):
        raise ForgeRejected(
            f"{where}: the body must start with its marker {marker!r}, or it is never found again",
            status=422,
        )
    if len(body) > MAX_COMMENT_CHARS:
        raise ForgeRejected(
            f"{where}: the body is {len(body):,} characters, over GitHub's limit of "
            f"{MAX_COMMENT_CHARS:,}; truncate it before sending",
            status=422,
        )


def is_workflow_path(path: str) -> bool:
    folder, _, name = path.rpartition("/")
    return folder == WORKFLOW_DIR and name.endswith((".yml", ".yaml"))


def select_workflow_files(sizes: Mapping[str, int]) -> tuple[list[str], dict[str, str]]:
    """Split workflow blobs (path -> size in bytes) into the paths to read and the refused.

    The first `MAX_WORKFLOW_FILES` by path are candidates; any of them over
    `MAX_WORKFLOW_BYTES` is refused for its size, and every path after them for the count.
    """
    paths = sorted(sizes)
    to_read: list[str] = []
    refused: dict[str, str] = {}
    for path in paths[:MAX_WORKFLOW_FILES]:
        if sizes[path] > MAX_WORKFLOW_BYTES:
            refused[path] = (
                f"{_describe_size(sizes[path])} is over the {_describe_size(MAX_WORKFLOW_BYTES)} "
                "limit for a workflow file; not read"
            )
        else:
            to_read.append(path)
    for path in paths[MAX_WORKFLOW_FILES:]:
        refused[path] = f"beyond the limit of {MAX_WORKFLOW_FILES} workflow files; not read"
    return to_read, dict(sorted(refused.items()))


def _describe_size(size_bytes: int) -> str:
    """Like "2.3 MiB"; exact bytes when rounding would hide that a file is over the limit."""
    mib = size_bytes / _MIB
    if size_bytes % _MIB == 0:
        return f"{size_bytes // _MIB} MiB"
    if round(mib, 1) <= MAX_WORKFLOW_BYTES / _MIB:
        return f"{size_bytes:,} bytes"
    return f"{mib:.1f} MiB"


def limit_changed_paths(paths: set[str]) -> list[str] | None:
    """Sorted paths, or None (unknown) when there are more than `MAX_CHANGED_FILES`."""
    return sorted(paths) if len(paths) <= MAX_CHANGED_FILES else None
