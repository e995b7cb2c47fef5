"""Issue comments on the stand-in's pull requests, shaped as GitHub's ``issue-comment``.

The JSON of ``issues/list-comments``, ``issues/create-comment`` and ``issues/update-comment``
in ``@octokit/openapi``, and GitHub's refusals of a body. The handlers in ``app.py`` find the
repository and the pull request and page the listing; ``CommentStore`` keeps the comments
(thread-safe: the stand-in answers from uvicorn's thread while tests read from theirs) and
``render`` turns one into JSON for the base URL of the request being answered.

What GitHub leaves unclear, and what the stand-in chose:
- GitHub's error text says "maximum is 65536 characters", yet some measure what it stores as
  up to 2**18 UTF-8 bytes. The stand-in refuses more than 65,536 code points: the stricter
  reading, so whatever it accepts GitHub accepts too.
- A body that is empty or only whitespace is "blank" (GitHub's words), refused with 422.
- Any token may edit any comment (permissions are not modelled); an edit keeps the author.
"""

from __future__ import annotations

import base64
import json
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from .compare import Site

MAX_COMMENT_CHARS = 65_536
FIRST_COMMENT_ID = 2_000_000_001
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")

UserFactory = Callable[[str], dict[str, Any]]  # login -> GitHub's simple-user object


@dataclass(frozen=True)
class Comment:
    id: int
    number: int  # the pull request's
    body: str
    login: str  # the author
    created_at: str  # GitHub's "YYYY-MM-DDTHH:MM:SSZ"
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "body": self.body,
            "login": self.login,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


Key = tuple[str, str]  # (owner, repo), lower-case: GitHub's names are case-insensitive


@dataclass
class CommentStore:
    """Every comment of every repository, in creation order (ascending id, as GitHub lists)."""

    _by_repo: dict[Key, list[Comment]] = field(default_factory=dict)
    _next_id: int = FIRST_COMMENT_ID
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, owner: str, repo: str, number: int, body: str, login: str) -> Comment:
        now = now_text()
        with self._lock:
            comment = Comment(self._next_id, number, body, login, now, now)
            self._next_id += 1
            self._by_repo.setdefault(_key(owner, repo), []).append(comment)
        return comment

    def update(self, owner: str, repo: str, comment_id: int, body: str) -> Comment | None:
        """The edited comment; None when the repository has no comment with that id."""
        with self._lock:
            comments = self._by_repo.get(_key(owner, repo), [])
            for i, old in enumerate(comments):
                if old.id == comment_id:
                    comments[i] = replace(old, body=body, updated_at=now_text())
                    return comments[i]
        return None

    def exists(self, owner: str, repo: str, comment_id: int) -> bool:
        with self._lock:
            return any(c.id == comment_id for c in self._by_repo.get(_key(owner, repo), []))

    def on_pull_request(self, owner: str, repo: str, number: int) -> list[Comment]:
        with self._lock:
            return [c for c in self._by_repo.get(_key(owner, repo), []) if c.number == number]

    def clear(self) -> None:
        """Forget the comments; ids keep counting up, as GitHub never reuses one."""
        with self._lock:
            self._by_repo.clear()


def _key(owner: str, repo: str) -> Key:
    return owner.lower(), repo.lower()


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def updated_since(comments: list[Comment], since: str) -> list[Comment] | None:
    """The comments updated at or after ``since`` (ISO 8601); None if it is not a time."""
    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return [c for c in comments if datetime.fromisoformat(c.updated_at) >= when]


def render(site: Site, comment: Comment, user: UserFactory) -> dict[str, Any]:
    """GitHub's ``issue-comment`` for ``comment`` (``body`` as the default media type gives)."""
    url = f"{site.api}/issues/comments/{comment.id}"
    return {
        "id": comment.id,
        "node_id": base64.b64encode(f"012:IssueComment{comment.id}".encode()).decode(),
        "url": url,
        "html_url": f"{site.html}/pull/{comment.number}#issuecomment-{comment.id}",
        "body": comment.body,
        "user": user(comment.login),
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "issue_url": f"{site.api}/issues/{comment.number}",
        "author_association": "NONE",
        "performed_via_github_app": None,
        "reactions": {"url": f"{url}/reactions", "total_count": 0} | dict.fromkeys(REACTIONS, 0),
        "pin": None,
        "minimized": None,
    }


def user_id(login: str) -> int:
    """A stable id for a login other than the stand-in's own."""
    return 10_000 + zlib.crc32(login.encode()) % 1_000_000


def body_error(payload: Any, doc: str) -> JSONResponse | None:
    """GitHub's 422 for a create or update request whose ``body`` it refuses, else None."""
    if not isinstance(payload, dict) or "body" not in payload:
        return _invalid('"body" wasn\'t supplied.', doc)
    body = payload["body"]
    if not isinstance(body, str):
        return _invalid(f"For 'properties/body', {json.dumps(body)} is not a string.", doc)
    if not body.strip():
        return _failed("custom", "body", "body cannot be blank", doc)
    if len(body) > MAX_COMMENT_CHARS:
        message = f"Body is too long (maximum is {MAX_COMMENT_CHARS} characters)"
        return _failed("unprocessable", "data", message, doc)
    return None


def _invalid(reason: str, doc: str) -> JSONResponse:
    """A request that fails GitHub's schema check (it names no ``errors``)."""
    return JSONResponse(
        {"message": f"Invalid request.\n\n{reason}", "documentation_url": doc, "status": "422"},
        422,
    )


def _failed(code: str, fld: str, message: str, doc: str) -> JSONResponse:
    error = {"resource": "IssueComment", "code": code, "field": fld, "message": message}
    return JSONResponse(
        {
            "message": "Validation Failed",
            "errors": [error],
            "documentation_url": doc,
            "status": "422",
        },
        422,
    )
