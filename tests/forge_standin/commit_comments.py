"""Comments on the stand-in's commits, shaped as GitHub's ``commit-comment``.

The JSON of ``repos/list-comments-for-commit``, ``repos/create-commit-comment`` and
``repos/update-commit-comment`` in ``@octokit/openapi``. Only comments on the commit as a
whole are modelled (no ``path``/``position``: ``null``, as GitHub gives them). Bodies are
refused as for issue comments (``comments.body_error``). The handlers in ``app.py`` find the
repository and resolve the commit; ``CommitCommentStore`` keeps the comments (thread-safe).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .comments import REACTIONS, now_text
from .compare import Site

FIRST_COMMIT_COMMENT_ID = 3_000_000_001

UserFactory = Callable[[str], dict[str, Any]]  # login -> GitHub's simple-user object


@dataclass(frozen=True)
class CommitComment:
    id: int
    commit_id: str  # the commit's full sha
    body: str
    login: str
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "commit_id": self.commit_id,
            "body": self.body,
            "login": self.login,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


Key = tuple[str, str]  # (owner, repo), lower-case


@dataclass
class CommitCommentStore:
    """Every commit comment of every repository, in creation order (ascending id)."""

    _by_repo: dict[Key, list[CommitComment]] = field(default_factory=dict)
    _next_id: int = FIRST_COMMIT_COMMENT_ID
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, owner: str, repo: str, sha: str, body: str, login: str) -> CommitComment:
        now = now_text()
        with self._lock:
            comment = CommitComment(self._next_id, sha, body, login, now, now)
            self._next_id += 1
            self._by_repo.setdefault(_key(owner, repo), []).append(comment)
        return comment

    def update(self, owner: str, repo: str, comment_id: int, body: str) -> CommitComment | None:
        """The edited comment; None when the repository has no commit comment with that id."""
        with self._lock:
            comments = self._by_repo.get(_key(owner, repo), [])
            for i, old in enumerate(comments):
                if old.id == comment_id:
                    comments[i] = replace(old, body=body, updated_at=now_text())
                    return comments[i]
        return None

    def on_commit(self, owner: str, repo: str, sha: str) -> list[CommitComment]:
        with self._lock:
            return [c for c in self._by_repo.get(_key(owner, repo), []) if c.commit_id == sha]

    def clear(self) -> None:
        """Forget the comments; ids keep counting up, as GitHub never reuses one."""
        with self._lock:
            self._by_repo.clear()


def _key(owner: str, repo: str) -> Key:
    return owner.lower(), repo.lower()


def render(site: Site, comment: CommitComment, user: UserFactory) -> dict[str, Any]:
    """GitHub's ``commit-comment`` for ``comment``."""
    url = f"{site.api}/comments/{comment.id}"
    return {
        "html_url": f"{site.html}/commit/{comment.commit_id}#commitcomment-{comment.id}",
        "url": url,
        "id": comment.id,
        "node_id": base64.b64encode(f"013:CommitComment{comment.id}".encode()).decode(),
        "body": comment.body,
        "path": None,
        "position": None,
        "line": None,
        "commit_id": comment.commit_id,
        "user": user(comment.login),
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "author_association": "NONE",
        "reactions": {"url": f"{url}/reactions", "total_count": 0} | dict.fromkeys(REACTIONS, 0),
    }
