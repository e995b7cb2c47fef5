"""GitHub webhooks: verify the signature, turn the delivery into an Event, store it.

Only `X-Hub-Signature-256` is accepted (the SHA-1 header is ignored, so a delivery that
carries only SHA-1 is unsigned and refused). The comparison is gidgethub's, which uses
`hmac.compare_digest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import gidgethub
from gidgethub.sansio import Event as GitHubEvent

from ..errors import BadRequest, Unauthorized

PR_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")
NULL_SHA = "0" * 40
SIGNATURE_HEADER = "x-hub-signature-256"


@dataclass(frozen=True)
class NewEvent:
    """A forge event in labci's words, ready to be stored."""

    delivery_id: str
    provider: str
    kind: str
    action: str | None
    repo_full_name: str
    clone_url: str
    commit_sha: str
    branch: str
    base_branch: str | None = None
    base_sha: str | None = None
    pr_number: int | None = None
    # Code from a fork is untrusted: docker runners only, no secrets, and (per the
    # repository's policy) nothing runs until a writer approves its commit.
    from_fork: bool = False
    # GitHub's word for the pull request's author (FIRST_TIME_CONTRIBUTOR, CONTRIBUTOR, …).
    author_association: str | None = None
    # Who sent it and its headline, for people reading the runs list (never for decisions).
    sender: str | None = None
    title: str | None = None
    # A manual run names its workflow file and carries its typed inputs.
    workflow_path: str | None = None
    inputs: dict[str, Any] | None = None
    # What the delivery says of the repository: used only when labci first sees it (planning
    # then reads them from GitHub's API); a known repository keeps what the API said.
    private: bool | None = None
    installation_id: int | None = None


def verify_delivery(headers: Mapping[str, str], body: bytes, secret: str) -> GitHubEvent:
    lowered = {k.lower(): v for k, v in headers.items() if k.lower() != "x-hub-signature"}
    if not lowered.get(SIGNATURE_HEADER, "").startswith("sha256="):
        raise Unauthorized("missing or malformed X-Hub-Signature-256")
    if not lowered.get("x-github-event"):
        raise BadRequest("missing X-GitHub-Event")
    if not lowered.get("x-github-delivery"):
        raise BadRequest("missing X-GitHub-Delivery")
    lowered.setdefault("content-type", "application/json")
    try:
        return GitHubEvent.from_http(lowered, body, secret=secret)
    except gidgethub.ValidationFailure as exc:
        raise Unauthorized("signature does not match") from exc
    except gidgethub.BadRequest as exc:
        raise BadRequest(f"body is not a JSON webhook delivery: {exc}") from exc


def to_new_event(event: GitHubEvent) -> NewEvent | str:
    """The event labci acts on, or the reason it is ignored."""
    data = event.data
    if not isinstance(data, dict):
        return "payload is not a JSON object"
    try:
        if event.event == "push":
            return _push(event.delivery_id, data)
        if event.event == "pull_request":
            return _pull_request(event.delivery_id, data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"{event.event} payload lacks a field labci needs: {exc}") from exc
    return f"event {event.event!r} is not acted on"


def _repo(data: dict[str, Any]) -> tuple[str, str]:
    repo = data["repository"]
    return str(repo["full_name"]), str(repo["clone_url"])


def _facts(data: dict[str, Any]) -> dict[str, Any]:
    installation = data.get("installation")
    found = installation.get("id") if isinstance(installation, dict) else None
    return {
        "private": bool(data["repository"].get("private")),
        "installation_id": found
        if isinstance(found, int) and not isinstance(found, bool)
        else None,
    }


@dataclass(frozen=True)
class EndedWork:
    """A delivery that makes runs moot: a pull request closed, or a branch deleted."""

    repo_full_name: str
    reason: str
    pr_number: int | None = None
    branch: str | None = None
    # When the forge says it happened (a pull request's `closed_at`): a delivery that
    # arrives late, after the pull request was reopened, must not end the newer work.
    at: float | None = None


def ended_work(event: GitHubEvent) -> EndedWork | None:
    data = event.data
    if event.event == "pull_request" and data.get("action") == "closed":
        pr = data.get("pull_request") or {}
        number = _number(data.get("number") or pr.get("number"))
        how = "merged" if pr.get("merged") else "closed"
        return EndedWork(
            _repo(data)[0],
            f"pull request #{number} was {how}",
            pr_number=number,
            at=_timestamp(pr.get("closed_at")),
        )
    if event.event == "push" and (data.get("deleted") or data.get("after") == NULL_SHA):
        ref = str(data.get("ref") or "")
        if ref.startswith("refs/heads/"):
            branch = ref.removeprefix("refs/heads/")
            return EndedWork(_repo(data)[0], f"branch {branch} was deleted", branch=branch)
    return None


def _timestamp(value: Any) -> float | None:
    """GitHub's ISO 8601 time (`2026-12-06T01:40:00Z`) as seconds; None if absent or not one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _push(delivery_id: str, data: dict[str, Any]) -> NewEvent | str:
    ref = str(data["ref"])
    if not ref.startswith("refs/heads/"):
        return f"push to {ref} is not a branch"
    after = str(data["after"])
    if after == NULL_SHA or data.get("deleted"):
        return "branch deleted"
    full_name, clone_url = _repo(data)
    return NewEvent(
        delivery_id=delivery_id,
        provider="github",
        kind="push",
        action=None,
        repo_full_name=full_name,
        clone_url=clone_url,
        commit_sha=after,
        branch=ref.removeprefix("refs/heads/"),
        base_sha=str(data.get("before") or "") or None,
        sender=_login(data.get("sender")),
        title=headline(_dig(data, "head_commit", "message")),
        **_facts(data),
    )


def _pull_request(delivery_id: str, data: dict[str, Any]) -> NewEvent | str:
    action = data.get("action")
    if action not in PR_ACTIONS:
        return f"pull_request action {action!r} is not acted on"
    pr = data["pull_request"]
    # The base repository serves the head commit too (refs/pull/N/head), fork or not.
    full_name, clone_url = _repo(data)
    head_repo = pr["head"].get("repo") or {}
    from_fork = head_repo.get("full_name") != full_name
    return NewEvent(
        delivery_id=delivery_id,
        provider="github",
        kind="pull_request",
        action=str(action),
        repo_full_name=full_name,
        clone_url=clone_url,
        commit_sha=str(pr["head"]["sha"]),
        branch=str(pr["head"]["ref"]),
        base_branch=str(pr["base"]["ref"]),
        base_sha=str(pr["base"]["sha"]),
        pr_number=_number(data.get("number") or pr["number"]),
        from_fork=from_fork,
        author_association=_text_or_none(pr.get("author_association")),
        sender=_login(data.get("sender")),
        title=headline(pr.get("title")),
        **_facts(data),
    )


MAX_SENDER = 100
MAX_TITLE = 300


def _login(user: object) -> str | None:
    login = user.get("login") if isinstance(user, dict) else None
    return login[:MAX_SENDER] if isinstance(login, str) and login else None


def headline(text: object) -> str | None:
    """The first line of a title or commit message, cut to MAX_TITLE characters."""
    if not isinstance(text, str):
        return None
    first = text.strip().split("\n", 1)[0].strip()
    return first[:MAX_TITLE] or None


def _text_or_none(value: object) -> str | None:
    return value[:64] if isinstance(value, str) and value else None


def _number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise BadRequest(f"pull request number {value!r} is not a number")
    return int(value)


REPOSITORY_ACTIONS = ("privatized", "publicized", "renamed", "transferred", "edited")


def repository_change(event: GitHubEvent) -> list[str] | str:
    """The names under which labci may know a repository GitHub says changed (its name now,
    and before a rename or transfer), or the reason the delivery is ignored. Only the names
    are read: the facts themselves are read again from GitHub's API."""
    data = event.data if isinstance(event.data, dict) else {}
    action = data.get("action")
    if action not in REPOSITORY_ACTIONS:
        return f"repository action {action!r} is not acted on"
    full_name = _dig(data, "repository", "full_name")
    if not isinstance(full_name, str) or "/" not in full_name:
        raise BadRequest("repository payload lacks repository.full_name")
    owner, _, name = full_name.partition("/")
    names = [full_name]
    old_name = _dig(data, "changes", "repository", "name", "from")
    if isinstance(old_name, str) and old_name:
        names.append(f"{owner}/{old_name}")
    for kind in ("user", "organization"):
        login = _dig(data, "changes", "owner", "from", kind, "login")
        if isinstance(login, str) and login:
            names.append(f"{login}/{name}")
    return names


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
