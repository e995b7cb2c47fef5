"""Manual-run events sent by `labci dispatch`, signed with LABCI_WEBHOOK_SECRET.

The command checked the inputs against the workflow already; here the body is only
checked for shape. Planning resolves the inputs again from what is stored.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ..context import ServerContext
from ..db.queries.repositories import find_repository
from ..errors import BadRequest
from .github import NewEvent
from .ingest import store_event

PROVIDERS = ("github", "git")
MAX_INPUTS = 100


def to_dispatch_event(data: dict[str, Any]) -> NewEvent:
    text_fields = ("delivery_id", "provider", "repo_full_name", "clone_url", "branch", "commit_sha")
    for name in (*text_fields, "workflow_path"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise BadRequest(f"{name} must be a non-empty string")
    if data["provider"] not in PROVIDERS:
        raise BadRequest(f"provider must be one of {', '.join(PROVIDERS)}")
    if not re.fullmatch(r"[0-9a-f]{40}", data["commit_sha"]):
        raise BadRequest("commit_sha must be a full 40-character hexadecimal sha")
    if data["provider"] == "git" and data["clone_url"] != data["repo_full_name"]:
        raise BadRequest("a local repository's clone_url is its path: it must equal its name")
    inputs = data.get("inputs") or {}
    if not isinstance(inputs, dict) or len(inputs) > MAX_INPUTS:
        raise BadRequest(f"inputs must be an object of at most {MAX_INPUTS} values")
    if not all(isinstance(v, str | int | float | bool) for v in inputs.values()):
        raise BadRequest("input values must be strings, numbers or booleans")
    return NewEvent(
        delivery_id=data["delivery_id"],
        provider=data["provider"],
        kind="workflow_dispatch",
        action=None,
        repo_full_name=data["repo_full_name"],
        clone_url=data["clone_url"],
        commit_sha=data["commit_sha"],
        branch=data["branch"],
        workflow_path=data["workflow_path"],
        inputs=inputs,
    )


async def store_dispatch(sc: ServerContext, new: NewEvent) -> int | None:
    """Store a manual run. A GitHub repository must be one labci learnt from its webhooks,
    and keeps the clone URL GitHub gave: a dispatch never redirects where code comes from."""
    if new.provider == "github":
        async with sc.sessions() as session:
            known = await find_repository(session, provider="github", full_name=new.repo_full_name)
        if known is None:
            raise BadRequest(f"repository {new.repo_full_name!r} is not known to labci")
        new = replace(new, clone_url=known.clone_url)
    return await store_event(sc, new)
