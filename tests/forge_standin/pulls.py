"""``GET /repos/{owner}/{repo}/pulls/{pull_number}``: GitHub's ``pull-request`` object of a
stand-in pull request (``Standin.open_pull_request``).

What labci reads of it is ``head.sha``: the commit the head branch points at now, resolved on
every request, so a push to the branch moves it as on GitHub. The rest is filled with GitHub's
shapes and neutral values: open (or closed and merged, after ``Standin.merge_pull_request``),
no labels, reviewers or milestone.

``GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls`` lists ``pull-request-simple``
objects: the same without the fields only the full object has.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import Any

from .compare import PullRequest, Site
from .repository import CREATED_AT

# What ``pull-request`` has and ``pull-request-simple`` has not.
FULL_ONLY = (
    "additions",
    "changed_files",
    "comments",
    "commits",
    "deletions",
    "maintainer_can_modify",
    "mergeable",
    "mergeable_state",
    "merged",
    "merged_by",
    "rebaseable",
    "review_comments",
)


@dataclass(frozen=True)
class Merge:
    """How a pull request was merged: the commit it made on its base, and when."""

    merge_commit_sha: str
    merged_at: str  # GitHub's "YYYY-MM-DDTHH:MM:SSZ"


def pull_request_simple(
    site: Site,
    pr: PullRequest,
    *,
    head_sha: str,
    base_sha: str,
    repository: dict[str, Any],
    author: dict[str, Any],
    merge: Merge | None = None,
) -> dict[str, Any]:
    """The ``pull-request-simple`` body (arguments as for ``pull_request``)."""
    full = pull_request(
        site,
        pr,
        head_sha=head_sha,
        base_sha=base_sha,
        repository=repository,
        author=author,
        merge=merge,
    )
    return {k: v for k, v in full.items() if k not in FULL_ONLY}


def pull_request(
    site: Site,
    pr: PullRequest,
    *,
    head_sha: str,
    base_sha: str,
    repository: dict[str, Any],
    author: dict[str, Any],
    merge: Merge | None = None,
) -> dict[str, Any]:
    """The ``pull-request`` body; ``repository`` is GitHub's ``repository`` object of the
    base repository (which, with no forks modelled, is the head's as well) and ``author`` a
    ``simple-user``; ``merge``: how it was merged, if it was."""
    number = pr.number
    api, html = site.api, f"{site.html}/pull/{number}"
    url = f"{api}/pulls/{number}"
    issue = f"{api}/issues/{number}"
    statuses = f"{api}/statuses/{head_sha}"
    pr_id = 5_000_000_000 + zlib.crc32(f"{site.owner}/{site.repo}#{number}".lower().encode())
    links = {
        "self": url,
        "html": html,
        "issue": issue,
        "comments": f"{issue}/comments",
        "review_comments": f"{url}/comments",
        "review_comment": f"{api}/pulls/comments{{/number}}",
        "commits": f"{url}/commits",
        "statuses": statuses,
    }
    merged = {"merged_at": None, "merge_commit_sha": None, "closed_at": None}
    if merge is not None:
        merged = {
            "merged_at": merge.merged_at,
            "merge_commit_sha": merge.merge_commit_sha,
            "closed_at": merge.merged_at,
        }
    return {
        "url": url,
        "id": pr_id,
        "node_id": base64.b64encode(f"011:PullRequest{pr_id}".encode()).decode(),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue,
        "commits_url": links["commits"],
        "review_comments_url": links["review_comments"],
        "review_comment_url": links["review_comment"],
        "comments_url": links["comments"],
        "statuses_url": statuses,
        "number": number,
        "state": "open" if merge is None else "closed",
        "locked": False,
        "title": f"Merge {pr.head_ref} into {pr.base_ref}",
        "user": author,
        "body": None,
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
        **merged,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": _end(site, pr.head_ref, head_sha, repository),
        "base": _end(site, pr.base_ref, base_sha, repository),
        "_links": {name: {"href": href} for name, href in links.items()},
        "author_association": "OWNER",
        "auto_merge": None,
        "draft": False,
        "merged": merge is not None,
        "mergeable": None,  # GitHub computes it in the background; unknown at first
        "mergeable_state": "unknown",
        "merged_by": None,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": 1,
        "additions": 0,
        "deletions": 0,
        "changed_files": 0,
    }


def _end(site: Site, ref: str, sha: str, repository: dict[str, Any]) -> dict[str, Any]:
    """A pull request's ``head`` or ``base``: branch, commit and repository."""
    return {
        "label": f"{site.owner}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": repository["owner"],
        "repo": repository,
    }
