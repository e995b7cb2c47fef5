"""Events of the local `git` forge, sent by `labci trigger` and the post-receive hook.

Each local repository's hook has a credential of its own (`labci hook install` mints it;
only its SHA-256 is stored): the request carries it as `Authorization: Bearer <token>`, and
it is checked before the body is read. A token speaks for its one repository: a body naming
another is refused. LABCI_WEBHOOK_SECRET verifies GitHub's deliveries only.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..db.models import Repository
from ..db.queries.repositories import find_by_hook_token
from ..errors import BadRequest, Forbidden, Unauthorized
from ..tokens import HOOK_TOKEN_PREFIX, bearer_value, hash_token
from .github import MAX_SENDER, NewEvent, headline

if TYPE_CHECKING:
    from ..context import ServerContext

KINDS = ("push", "pull_request")
# Sent by the post-receive hook for a deleted branch: its unfinished push runs end.
BRANCH_DELETED = "branch_deleted"


def sign(body: bytes, secret: str) -> str:
    """GitHub's `X-Hub-Signature-256` of `body` (HMAC-SHA256)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def hook_repository(sc: ServerContext, authorization: str | None) -> Repository:
    """The local repository whose hook token the request carries; 401 for none or an
    unknown one. Found by the token's hash (unique), as runner and API tokens are."""
    token = bearer_value(authorization)
    if token is None or not token.startswith(HOOK_TOKEN_PREFIX + "_"):
        raise Unauthorized("a local repository's hook token is required (Authorization: Bearer)")
    async with sc.sessions() as session:
        repo = await find_by_hook_token(session, hash_token(token))
    if repo is None:
        raise Unauthorized("unknown hook token; run `labci hook install` for this repository")
    return repo


def check_repository(data: dict[str, Any], repo: Repository) -> None:
    """Refuse a body that names another repository than the token's own."""
    repo_path = data.get("repo_path")
    if not isinstance(repo_path, str) or not repo_path:
        raise BadRequest("missing field 'repo_path'")
    if str(Path(repo_path).resolve()) != repo.full_name:
        raise Forbidden("this hook token belongs to another repository")


def to_local_event(data: dict[str, Any], repo: Repository, *, pr_number: int | None) -> NewEvent:
    """The event, for the repository the token belongs to (its stored name and path)."""
    for name in ("base_branch", "base_sha", "sender", "title"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise BadRequest(f"{name} must be a string")
    if pr_number is not None and (isinstance(pr_number, bool) or not isinstance(pr_number, int)):
        raise BadRequest("pr_number must be an integer")
    try:
        kind = str(data["kind"])
        new = NewEvent(
            delivery_id=str(data["delivery_id"]),
            provider="git",
            kind=kind,
            action="synchronize" if kind == "pull_request" else None,
            repo_full_name=repo.full_name,
            clone_url=repo.clone_url,
            commit_sha=str(data["commit_sha"]),
            branch=str(data["branch"]),
            base_branch=data.get("base_branch"),
            base_sha=data.get("base_sha"),
            pr_number=pr_number,
            sender=(data.get("sender") or "")[:MAX_SENDER] or None,
            title=headline(data.get("title")),
        )
    except KeyError as exc:
        raise BadRequest(f"missing field {exc}") from exc
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
    if kind == "pull_request" and not new.base_branch:
        raise BadRequest("a pull_request needs base_branch")
    return new
