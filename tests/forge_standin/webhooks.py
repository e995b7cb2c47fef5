"""Webhook deliveries built from GitHub's real examples (npm ``@octokit/webhooks-examples``).

Builders start from a deep copy of a real example of the event (and action) and overwrite
only the fields labci reads; everything else keeps its real, sometimes odd, shape (for
example the integer ``repository.created_at`` of push payloads).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import threading
import uuid
from typing import Any

from .openapi import STANDIN_DIR, require_installed

EXAMPLES_PACKAGE = STANDIN_DIR / "node_modules" / "@octokit" / "webhooks-examples"
EXAMPLES_FILE = EXAMPLES_PACKAGE / "api.github.com" / "index.json"
ZERO_SHA = "0" * 40
HOOKSHOT_AGENT = "GitHub-Hookshot/abc123"

_examples: dict[str, list[dict[str, Any]]] | None = None
_examples_lock = threading.Lock()


def _load_all() -> dict[str, list[dict[str, Any]]]:
    global _examples
    with _examples_lock:
        if _examples is None:
            definitions = json.loads(require_installed(EXAMPLES_FILE).read_bytes())
            _examples = {d["name"]: d["examples"] for d in definitions}
        return _examples


def events() -> list[str]:
    """Event names that have examples."""
    return sorted(_load_all())


def load_examples(event: str) -> list[dict[str, Any]]:
    """Deep copies of GitHub's example payloads for ``event`` (e.g. "push", "pull_request")."""
    examples = _load_all().get(event)
    if not examples:
        raise KeyError(f"@octokit/webhooks-examples has no examples for event {event!r}")
    return copy.deepcopy(examples)


def sign(body: bytes, secret: str) -> str:
    """GitHub's ``X-Hub-Signature-256`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    """The delivery body as GitHub sends it (compact JSON, UTF-8)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def headers(
    event: str,
    delivery_id: str | None,
    body: bytes,
    secret: str | None,
    *,
    hook_id: int = 123456789,
    target_type: str = "repository",
    target_id: int = 35129377,
) -> dict[str, str]:
    """Request headers of a delivery; no signature headers when ``secret`` is None."""
    out = {
        "Content-Type": "application/json",
        "User-Agent": HOOKSHOT_AGENT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": str(hook_id),
        "X-GitHub-Hook-Installation-Target-Type": target_type,
        "X-GitHub-Hook-Installation-Target-ID": str(target_id),
    }
    if secret is not None:
        out["X-Hub-Signature"] = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        out["X-Hub-Signature-256"] = sign(body, secret)
    return out


def _set_repository(
    repo_obj: dict[str, Any],
    owner: str,
    repo: str,
    clone_url: str,
    *,
    private: bool,
    default_branch: str | None = None,
) -> None:
    full = f"{owner}/{repo}"
    old_full = repo_obj.get("full_name", "")
    for key, value in list(repo_obj.items()):
        if isinstance(value, str) and old_full and old_full in value and key.endswith("url"):
            repo_obj[key] = value.replace(old_full, full)
    repo_obj["name"] = repo
    repo_obj["full_name"] = full
    repo_obj["private"] = private
    repo_obj["clone_url"] = clone_url
    if "visibility" in repo_obj:
        repo_obj["visibility"] = "private" if private else "public"
    if default_branch is not None:
        repo_obj["default_branch"] = default_branch
        if "master_branch" in repo_obj:
            repo_obj["master_branch"] = default_branch
    owner_obj = repo_obj.setdefault("owner", {})
    owner_obj["login"] = owner
    if "name" in owner_obj:
        owner_obj["name"] = owner


def push_payload(
    owner: str,
    repo: str,
    clone_url: str,
    ref: str,
    before: str,
    after: str,
    *,
    private: bool = False,
    message: str = "labci test commit",
    default_branch: str = "main",
    pusher: str = "octo-pusher",
) -> dict[str, Any]:
    """A ``push`` delivery of ``before..after`` on ``ref`` (``refs/heads/...``)."""
    examples = load_examples("push")
    payload = next(
        (e for e in examples if e["ref"].startswith("refs/heads/") and e.get("head_commit")),
        examples[0],
    )
    _set_repository(
        payload["repository"],
        owner,
        repo,
        clone_url,
        private=private,
        default_branch=default_branch,
    )
    deleted = after == ZERO_SHA
    payload["ref"] = ref
    payload["before"] = before
    payload["after"] = after
    payload["created"] = before == ZERO_SHA
    payload["deleted"] = deleted
    payload["forced"] = False
    payload["base_ref"] = None
    short = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    payload["compare"] = (
        f"https://github.com/{owner}/{repo}/compare/{before[:12]}...{after[:12]}"
        if before != ZERO_SHA
        else f"https://github.com/{owner}/{repo}/compare/{short}"
    )
    payload["pusher"] = {"name": pusher, "email": f"{pusher}@users.noreply.github.com"}
    if deleted:
        payload["head_commit"] = None
        payload["commits"] = []
    else:
        head = payload["head_commit"] or {}
        head["id"] = after
        head["message"] = message
        head["url"] = f"https://github.com/{owner}/{repo}/commit/{after}"
        payload["head_commit"] = head
        payload["commits"] = [copy.deepcopy(head)]
    return payload


def pull_request_payload(
    action: str,
    owner: str,
    repo: str,
    clone_url: str,
    number: int,
    head_ref: str,
    head_sha: str,
    base_ref: str,
    base_sha: str,
    *,
    head_owner: str | None = None,
    head_repo: str | None = None,
    head_clone_url: str | None = None,
    author: str = "octo-author",
    author_association: str = "OWNER",
    title: str = "labci test pull request",
    before: str | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """A ``pull_request`` delivery. A fork PR: give ``head_owner`` (and repo/clone URL)."""
    examples = load_examples("pull_request")
    payload = next((e for e in examples if e.get("action") == action), None)
    if payload is None:
        payload = next(e for e in examples if e.get("action") == "opened")
    payload["action"] = action
    payload["number"] = number
    _set_repository(payload["repository"], owner, repo, clone_url, private=private)
    pr = payload["pull_request"]
    old_full = pr["base"]["repo"]["full_name"]
    old_number = pr["number"]
    for key, value in list(pr.items()):
        if isinstance(value, str) and key.endswith("url") and old_full in value:
            value = value.replace(old_full, f"{owner}/{repo}")
            pr[key] = re.sub(rf"/(pulls?|issues)/{old_number}\b", rf"/\g<1>/{number}", value)
    pr["number"] = number
    pr["statuses_url"] = pr["statuses_url"].rsplit("/", 1)[0] + f"/{head_sha}"
    pr["title"] = title
    pr["author_association"] = author_association
    pr["user"]["login"] = author
    pr["state"] = "closed" if action == "closed" else "open"

    base = pr["base"]
    base["ref"] = base_ref
    base["sha"] = base_sha
    base["label"] = f"{owner}:{base_ref}"
    base["repo"] = copy.deepcopy(payload["repository"])
    base["user"]["login"] = owner

    h_owner = head_owner or owner
    h_repo = head_repo or repo
    head = pr["head"]
    head["ref"] = head_ref
    head["sha"] = head_sha
    head["label"] = f"{h_owner}:{head_ref}"
    head["user"]["login"] = h_owner
    head_repo_obj = copy.deepcopy(payload["repository"])
    _set_repository(
        head_repo_obj,
        h_owner,
        h_repo,
        head_clone_url or clone_url,
        private=private,
    )
    head_repo_obj["fork"] = (h_owner, h_repo) != (owner, repo)
    head["repo"] = head_repo_obj

    if action == "synchronize":
        payload["before"] = before or payload.get("before", ZERO_SHA)
        payload["after"] = head_sha
    else:
        payload.pop("before", None)
        payload.pop("after", None)
    return payload


def check_run_payload(
    owner: str,
    repo: str,
    clone_url: str,
    *,
    check_run_id: int,
    head_sha: str,
    name: str,
    external_id: str,
    app_id: int,
    installation_id: int,
    action: str = "rerequested",
    private: bool = False,
) -> dict[str, Any]:
    """A ``check_run`` delivery (``rerequested``: someone asked to re-run the check) for a
    check run of App ``app_id``, as GitHub sends it to that App's installation."""
    examples = load_examples("check_run")
    payload = next((e for e in examples if e.get("action") == action), None)
    if payload is None:
        payload = next(e for e in examples if e.get("action") == "rerequested")
    payload["action"] = action
    _set_repository(payload["repository"], owner, repo, clone_url, private=private)
    run = payload["check_run"]
    api = f"https://api.github.com/repos/{owner}/{repo}"
    run["id"] = check_run_id
    run["head_sha"] = head_sha
    run["name"] = name
    run["external_id"] = external_id
    run["url"] = f"{api}/check-runs/{check_run_id}"
    run["html_url"] = f"https://github.com/{owner}/{repo}/runs/{check_run_id}"
    run["app"]["id"] = app_id
    suite = run.get("check_suite")
    if isinstance(suite, dict):
        suite["head_sha"] = head_sha
        suite["after"] = head_sha
        suite["url"] = f"{api}/check-suites/{suite.get('id')}"
        if isinstance(suite.get("app"), dict):
            suite["app"]["id"] = app_id
    payload["installation"] = {**(payload.get("installation") or {}), "id": installation_id}
    return payload


def issue_comment_payload(
    owner: str,
    repo: str,
    clone_url: str,
    *,
    number: int,
    body: str,
    login: str,
    user_id: int,
    action: str = "created",
) -> dict[str, Any]:
    """An ``issue_comment`` delivery: ``login`` commented ``body`` on pull request
    ``number`` (GitHub's examples are on plain issues; a pull request's issue carries a
    ``pull_request`` object, added here as GitHub sends it)."""
    payload = next(e for e in load_examples("issue_comment") if e.get("action") == action)
    _set_repository(payload["repository"], owner, repo, clone_url, private=False)
    api = f"https://api.github.com/repos/{owner}/{repo}"
    issue = payload["issue"]
    issue["number"] = number
    issue["pull_request"] = {
        "url": f"{api}/pulls/{number}",
        "html_url": f"https://github.com/{owner}/{repo}/pull/{number}",
        "diff_url": f"https://github.com/{owner}/{repo}/pull/{number}.diff",
        "patch_url": f"https://github.com/{owner}/{repo}/pull/{number}.patch",
        "merged_at": None,
    }
    comment = payload["comment"]
    comment["body"] = body
    comment["user"]["login"] = login
    comment["user"]["id"] = user_id
    payload["sender"] = {**payload.get("sender", {}), "login": login, "id": user_id}
    return payload


def repository_payload(
    action: str, owner: str, repo: str, clone_url: str, *, private: bool = False
) -> dict[str, Any]:
    """A ``repository`` delivery (``privatized``, ``publicized``, ``renamed``, ...) from
    GitHub's example of that action; ``changes`` (a rename's old name) is the example's."""
    examples = load_examples("repository")
    payload = next(e for e in examples if e.get("action") == action)
    _set_repository(payload["repository"], owner, repo, clone_url, private=private)
    return payload
