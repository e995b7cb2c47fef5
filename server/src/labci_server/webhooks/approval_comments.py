"""`issue_comment` webhooks: `/labci approve` on a fork's pull request.

The comment's author must have write permission on the repository, as GitHub's
collaborator-permission API says it now (asked with labci's own credential, for the
account id the comment names: a login renamed and reused carries nothing). The approval
binds to the pull request's head as GitHub reports it at that moment; a later push needs
a new approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gidgethub.sansio import Event as GitHubEvent

from ..auth.levels import at_least
from ..context import ServerContext
from ..db.queries.repositories import find_repository
from ..forge.github import GitHubForge
from ..forge.github_people import collaborator_level
from ..planning.approval import approve_commit

COMMAND = "/labci approve"
MAX_LOGIN_CHARS = 39  # GitHub's limit for a login


@dataclass(frozen=True)
class ApprovalComment:
    repo_full_name: str
    pr_number: int
    login: str
    user_id: int


def parse_approval_comment(data: Any) -> ApprovalComment | str:
    """The approval a comment asks for, or why the delivery is ignored."""
    if not isinstance(data, dict) or data.get("action") != "created":
        return "issue_comment: only new comments are acted on"
    issue, comment = data.get("issue"), data.get("comment")
    repository = data.get("repository")
    if not isinstance(issue, dict) or not isinstance(comment, dict):
        return "issue_comment: no issue or comment in the payload"
    if not issue.get("pull_request"):
        return "issue_comment: not on a pull request"
    body = comment.get("body")
    first_line = body.strip().split("\n", 1)[0].strip() if isinstance(body, str) else ""
    if first_line.lower() != COMMAND:
        return f"issue_comment: not a {COMMAND!r} command"
    user = comment.get("user") if isinstance(comment.get("user"), dict) else {}
    login, user_id, number = user.get("login"), user.get("id"), issue.get("number")
    full_name = repository.get("full_name") if isinstance(repository, dict) else None
    if (
        not isinstance(login, str)
        or not login
        or not isinstance(user_id, int)
        or isinstance(user_id, bool)
        or not isinstance(number, int)
        or isinstance(number, bool)
        or not isinstance(full_name, str)
        or "/" not in full_name
    ):
        return "issue_comment: the payload lacks the comment's author, number or repository"
    return ApprovalComment(full_name, number, login[:MAX_LOGIN_CHARS], user_id)


async def approval_comment_delivery(
    sc: ServerContext, event: GitHubEvent
) -> tuple[int, dict[str, Any]]:
    """The answer to an `issue_comment` delivery: (HTTP status, body). Refusals are 202
    with the reason: the delivery itself was fine, and GitHub must not retry it."""
    asked = parse_approval_comment(event.data)
    if isinstance(asked, str):
        return 202, {"ignored": asked}
    forge = sc.forges.get("github")
    async with sc.sessions() as session:
        repo = await find_repository(session, provider="github", full_name=asked.repo_full_name)
    if repo is None or not isinstance(forge, GitHubForge):
        return 202, {"ignored": f"{asked.repo_full_name} is not known to labci"}
    level = await collaborator_level(forge, repo, asked.login, user_id=asked.user_id)
    if not at_least(level, "write"):
        return 202, {"ignored": f"@{asked.login} may not approve: it takes write permission"}
    head = await forge.pull_request_head(repo, pr_number=asked.pr_number, head_branch="")
    if head is None:
        return 202, {"ignored": f"pull request #{asked.pr_number} is gone"}
    released = await approve_commit(
        sc,
        repository_id=repo.id or 0,
        commit_sha=head,
        pr_number=asked.pr_number,
        by=f"@{asked.login}",
        via="comment",
    )
    return 202, {"approved": {"commit": head, "runs": released, "by": f"@{asked.login}"}}
