"""Events of the local `git` forge, sent by `labci trigger` (and the post-receive hook).

The body is signed like a GitHub delivery (HMAC-SHA256 with LABCI_WEBHOOK_SECRET), so
the same verification applies; the repository is a bare repository on this machine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from ..errors import BadRequest, Unauthorized
from .github import NewEvent

KINDS = ("push", "pull_request")


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_local(signature: str | None, body: bytes, secret: str) -> dict[str, Any]:
    # Bytes, so that a non-ASCII header is a mismatch rather than a TypeError.
    if not signature or not hmac.compare_digest(signature.encode(), sign(body, secret).encode()):
        raise Unauthorized("signature does not match")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest("body is not JSON") from exc
    if not isinstance(data, dict):
        raise BadRequest("body is not a JSON object")
    return data


def to_local_event(data: dict[str, Any], *, pr_number: int | None) -> NewEvent:
    for name in ("base_branch", "base_sha"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise BadRequest(f"{name} must be a string")
    if pr_number is not None and (isinstance(pr_number, bool) or not isinstance(pr_number, int)):
        raise BadRequest("pr_number must be an integer")
    try:
        kind = str(data["kind"])
        repo_path = str(data["repo_path"])
        new = NewEvent(
            delivery_id=str(data["delivery_id"]),
            provider="git",
            kind=kind,
            action="synchronize" if kind == "pull_request" else None,
            repo_full_name=str(Path(repo_path).resolve()),
            clone_url=repo_path,
            commit_sha=str(data["commit_sha"]),
            branch=str(data["branch"]),
            base_branch=data.get("base_branch"),
            base_sha=data.get("base_sha"),
            pr_number=pr_number,
        )
    except KeyError as exc:
        raise BadRequest(f"missing field {exc}") from exc
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
    if kind == "pull_request" and not new.base_branch:
        raise BadRequest("a pull_request needs base_branch")
    return new
