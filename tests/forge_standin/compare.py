"""GitHub's diff entries, commits and comparisons, built from a bare repository with real git.

The JSON shapes of ``pulls/list-files``, ``repos/compare-commits-with-basehead`` and
``repos/get-commit`` in ``@octokit/openapi``. The handlers in ``app.py`` find the repository,
resolve refs and page the results; the functions here get ``run``, which runs git in that
repository and returns its stdout (``functools.partial(app._git, gitdir)``), so this module
needs nothing from ``app.py``.

Like the rest of the stand-in, API and web URLs share the stand-in's base URL.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

GitRun = Callable[..., bytes]  # run("diff-tree", ...) -> stdout; raises if git exits non-zero

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree
MAX_PULL_FILES = 3000  # GitHub lists at most 3,000 files of a pull request
MAX_COMPARE_FILES = 300  # ... and of a comparison (all on the first page)
MAX_COMMIT_FILES = 300  # ... and of a commit on one page (the stand-in serves one page)
UNPAGED_COMPARE_COMMITS = 250  # without page/per_page, the last 250 commits of a comparison

_STATUS = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied"}
_COMMIT_FIELDS = ("%H", "%T", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%B")
_UNSIGNED = {
    "verified": False,
    "reason": "unsigned",
    "signature": None,
    "payload": None,
    "verified_at": None,
}


@dataclass(frozen=True)
class PullRequest:
    """An open pull request of the stand-in: both branches live in the base repository."""

    number: int
    head_ref: str
    base_ref: str


@dataclass(frozen=True)
class Site:
    """Where a repository's API and web pages are, for the URLs inside bodies."""

    base: str  # the stand-in's base URL, no trailing slash
    owner: str
    repo: str

    @property
    def api(self) -> str:
        return f"{self.base}/repos/{self.owner}/{self.repo}"

    @property
    def html(self) -> str:
        return f"{self.base}/{self.owner}/{self.repo}"


@dataclass(frozen=True)
class Change:
    """One file of ``git diff-tree --raw --numstat``."""

    status: str  # git's letter: A D M R C T
    path: str
    old_path: str
    old_blob: str
    new_blob: str
    additions: int
    deletions: int


# -- git ---------------------------------------------------------------------------------


def split_basehead(owner: str, basehead: str) -> tuple[str, str] | None:
    """(base, head) of ``BASE...HEAD``; an ``owner:`` prefix may name this repository's owner.

    None for other forms: two dots (GitHub answers 404) and other owners' forks (not modelled).
    """
    base, dots, head = basehead.partition("...")
    refs = [
        r.split(":", 1)[1] if r.lower().startswith(f"{owner.lower()}:") else r for r in (base, head)
    ]
    if not dots or not all(refs) or any(":" in r for r in refs):
        return None
    return refs[0], refs[1]


def merge_base(run: GitRun, a: str, b: str) -> str | None:
    """The best common ancestor of commits ``a`` and ``b``; None if they have none."""
    try:
        return run("merge-base", a, b).decode().strip()
    except Exception:  # git exits 1 when there is no common ancestor (``run`` raises)
        return None


def changes(run: GitRun, old: str, new: str) -> list[Change]:
    """Files changed from commit (or tree) ``old`` to ``new``, with GitHub's rename detection."""
    out = run("diff-tree", "-r", "-z", "-M", "--raw", "--numstat", "--no-commit-id", old, new)
    tokens = out.split(b"\0")
    raw: list[tuple[str, str, str, str, str]] = []  # (status, path, old path, old, new blob)
    counts: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token:
            i += 1
        elif token.startswith(b":"):
            _old_mode, _new_mode, old_blob, new_blob, status = token[1:].decode().split()
            names = [t.decode(errors="replace") for t in tokens[i + 1 : i + 3]]
            if status[0] in "RC":
                raw.append((status[0], names[1], names[0], old_blob, new_blob))
                i += 3
            else:
                raw.append((status[0], names[0], names[0], old_blob, new_blob))
                i += 2
        else:
            added, deleted, path = token.split(b"\t", 2)
            counts.append((_count(added), _count(deleted)))
            i += 3 if path == b"" else 1  # a rename's numstat names both paths after it
    return [Change(*r, *c) for r, c in zip(raw, counts, strict=True)]


def _count(text: bytes) -> int:
    return 0 if text == b"-" else int(text)  # "-": a binary file


def ahead_behind(run: GitRun, base: str, head: str) -> tuple[int, int]:
    behind, ahead = run("rev-list", "--left-right", "--count", f"{base}...{head}").split()
    return int(ahead), int(behind)


def commits_between(run: GitRun, base: str, head: str) -> list[str]:
    """Commits reachable from head but not base, oldest first (``git log base..head``)."""
    return run("rev-list", "--reverse", f"{base}..{head}").decode().split()


def first_parent(run: GitRun, sha: str) -> str | None:
    parents = run("rev-list", "--parents", "-n", "1", sha).decode().split()[1:]
    return parents[0] if parents else None


# -- bodies ------------------------------------------------------------------------------


def diff_entry(site: Site, change: Change, head_commit: str) -> dict[str, Any]:
    """A ``diff-entry``. GitHub gives a deleted file its old blob, and a mode-only change
    status "changed" and sha null."""
    status = _STATUS.get(change.status, "changed")  # T (type change): "changed"
    sha: str | None = change.old_blob if change.status == "D" else change.new_blob
    if change.status == "M" and change.old_blob == change.new_blob:
        status, sha = "changed", None
    path = quote(change.path)
    entry: dict[str, Any] = {
        "sha": sha,
        "filename": change.path,
        "status": status,
        "additions": change.additions,
        "deletions": change.deletions,
        "changes": change.additions + change.deletions,
        "blob_url": f"{site.html}/blob/{head_commit}/{path}",
        "raw_url": f"{site.html}/raw/{head_commit}/{path}",
        "contents_url": f"{site.api}/contents/{path}?ref={head_commit}",
    }
    if change.status in "RC":
        entry["previous_filename"] = change.old_path
    return entry


def commits(run: GitRun, site: Site, shas: Sequence[str]) -> list[dict[str, Any]]:
    """``commit`` objects (without stats and files) for full ``shas``, in one git call."""
    unique = list(dict.fromkeys(shas))  # git log shows each commit once
    if not unique:
        return []
    fmt = "%x00".join(_COMMIT_FIELDS)
    out = run("log", "-z", "--no-walk=unsorted", f"--format={fmt}", *unique, "--")
    fields = out.decode(errors="replace").split("\0")
    n = len(_COMMIT_FIELDS)
    found = [_commit(site, fields[k * n : (k + 1) * n]) for k in range(len(unique))]
    by_sha = {c["sha"]: c for c in found}
    return [by_sha[sha] for sha in shas]


def _commit(site: Site, f: list[str]) -> dict[str, Any]:
    sha, tree, parents, a_name, a_email, a_date, c_name, c_email, c_date, message = f
    return {
        "url": f"{site.api}/commits/{sha}",
        "sha": sha,
        "node_id": base64.b64encode(f"06:Commit{sha}".encode()).decode(),
        "html_url": f"{site.html}/commit/{sha}",
        "comments_url": f"{site.api}/commits/{sha}/comments",
        "commit": {
            "url": f"{site.api}/git/commits/{sha}",
            "author": {"name": a_name, "email": a_email, "date": _utc(a_date)},
            "committer": {"name": c_name, "email": c_email, "date": _utc(c_date)},
            "message": message.rstrip("\n"),
            "tree": {"sha": tree, "url": f"{site.api}/git/trees/{tree}"},
            "comment_count": 0,
            "verification": dict(_UNSIGNED),
        },
        # GitHub links authors to accounts by e-mail; the stand-in has no accounts: null.
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{site.api}/commits/{p}", "html_url": f"{site.html}/commit/{p}"}
            for p in parents.split()
        ],
    }


def _utc(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def commit_with_files(run: GitRun, site: Site, sha: str) -> dict[str, Any]:
    """``repos/get-commit``: the commit with its diff against its first parent."""
    body = commits(run, site, [sha])[0]
    found = changes(run, first_parent(run, sha) or EMPTY_TREE, sha)
    additions = sum(c.additions for c in found)
    deletions = sum(c.deletions for c in found)
    body["stats"] = {"total": additions + deletions, "additions": additions, "deletions": deletions}
    body["files"] = [diff_entry(site, c, sha) for c in found[:MAX_COMMIT_FILES]]
    return body


def comparison(
    run: GitRun,
    site: Site,
    *,
    basehead: str,
    base: str,
    head: str,
    page: tuple[int, int] | None,
) -> dict[str, Any] | None:
    """``repos/compare-commits-with-basehead`` of commits ``base`` and ``head``.

    A three-dot comparison (the API has no other): ``files`` are the changes on ``head``
    since the merge base, listed on the first page only. ``page`` is (page, per_page), or
    None when the request had no paging parameters: then the last 250 commits. None when
    the two commits have no common ancestor.
    """
    mb = merge_base(run, base, head)
    if mb is None:
        return None
    ahead, behind = ahead_behind(run, base, head)
    status = "identical" if base == head else "diverged"
    if status == "diverged" and behind == 0:
        status = "ahead"
    elif status == "diverged" and ahead == 0:
        status = "behind"
    listed = commits_between(run, base, head)
    if page is None:
        shown = listed[-UNPAGED_COMPARE_COMMITS:]
    else:
        number, per_page = page
        shown = listed[(number - 1) * per_page : number * per_page]
    base_commit, mb_commit, *shown_commits = commits(run, site, [base, mb, *shown])
    body: dict[str, Any] = {
        "url": f"{site.api}/compare/{basehead}",
        "html_url": f"{site.html}/compare/{basehead}",
        "permalink_url": f"{site.html}/compare/{site.owner}:{base}...{site.owner}:{head}",
        "diff_url": f"{site.html}/compare/{basehead}.diff",
        "patch_url": f"{site.html}/compare/{basehead}.patch",
        "base_commit": base_commit,
        "merge_base_commit": mb_commit,
        "status": status,
        "ahead_by": ahead,
        "behind_by": behind,
        "total_commits": ahead,
        "commits": shown_commits,
    }
    if page is None or page[0] == 1:
        found = changes(run, mb, head)[:MAX_COMPARE_FILES]
        body["files"] = [diff_entry(site, c, head) for c in found]
    return body


def pull_request_files(run: GitRun, site: Site, *, base: str, head: str) -> list[dict[str, Any]]:
    """``pulls/list-files``: the head's changes since its merge base with the base branch."""
    mb = merge_base(run, base, head)
    if mb is None:
        return []
    return [diff_entry(site, c, head) for c in changes(run, mb, head)[:MAX_PULL_FILES]]
