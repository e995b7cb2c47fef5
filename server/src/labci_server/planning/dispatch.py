"""Manual runs (`on: workflow_dispatch`): checked where the operator types them.

`labci dispatch` resolves the branch to a commit, reads the workflow file there and
checks the inputs against its `inputs:` (types, required, choices) before anything is
sent, so a typo is an immediate error on the terminal rather than a red status later.
The event it then sends is signed with LABCI_WEBHOOK_SECRET, like the local forge's
events; the planner resolves the inputs again from the stored event (the source of truth).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from labci_spec import load_workflow, resolve_inputs

from ..db.engine import make_engine, make_sessionmaker
from ..db.models import Repository
from ..db.queries.repositories import find_repository
from ..errors import BadRequest
from ..forge.base import WORKFLOW_DIR, Forge
from ..forge.github import GitHubForge
from ..forge.gitlocal import GitLocalForge
from ..settings import Settings


@dataclass(frozen=True)
class DispatchRequest:
    repo: str  # owner/name of a GitHub repository labci knows, or a bare repository's path
    workflow: str  # `sweep.yml` or `.labci/sweep.yml`
    ref: str = "main"
    inputs: dict[str, str] | None = None


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    """`name=value` pairs from the command line; the workflow gives them their types."""
    inputs: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BadRequest(f"--input {pair!r}: expected name=value")
        inputs[name] = value
    return inputs


async def prepare_dispatch(settings: Settings, request: DispatchRequest) -> dict[str, Any]:
    """The event body for a manual run, checked; raises BadRequest/SpecErrors/InputsError."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            async with sessions() as session:
                repo = await _repository(session, request.repo)
            forge: Forge = (
                GitLocalForge(sessions)
                if repo.provider == "git"
                else GitHubForge(http, api_url=str(settings.github_api_url), token=_token(settings))
            )
            return await _checked_event(forge, repo, request)
    finally:
        await engine.dispose()


async def _checked_event(
    forge: Forge, repo: Repository, request: DispatchRequest
) -> dict[str, Any]:
    sha = await forge.resolve_ref(repo, request.ref)
    if sha is None:
        raise BadRequest(f"{repo.full_name}: no branch or commit {request.ref!r}")
    path = request.workflow if "/" in request.workflow else f"{WORKFLOW_DIR}/{request.workflow}"
    listing = await forge.read_workflow_files(repo, sha)
    if path in listing.refused:
        raise BadRequest(f"{path}: {listing.refused[path]}")
    if path not in listing.files:
        known = ", ".join(sorted(listing.files)) or "none"
        raise BadRequest(f"no {path} at {request.ref} ({sha[:7]}); workflow files: {known}")
    workflow = load_workflow(listing.files[path], path)
    if workflow.on.workflow_dispatch is None:
        raise BadRequest(f"{path} has no `on: workflow_dispatch`, so it cannot be run by hand")
    inputs = resolve_inputs(workflow.on.workflow_dispatch, request.inputs or {})
    return {
        "delivery_id": f"dispatch-{uuid.uuid4()}",
        "provider": repo.provider,
        "repo_full_name": repo.full_name,
        "clone_url": repo.clone_url,
        "branch": request.ref,
        "commit_sha": sha,
        "workflow_path": path,
        "workflow_name": workflow.name,
        "inputs": inputs,
    }


def _local_repo(name: str) -> str | None:
    """The resolved path when `name` is a directory on this machine (a bare repository)."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else None


async def _repository(session: Any, name: str) -> Repository:
    full_name = await asyncio.to_thread(_local_repo, name)
    if full_name is not None:
        found = await find_repository(session, provider="git", full_name=full_name)
        return found or Repository(provider="git", full_name=full_name, clone_url=full_name)
    found = await find_repository(session, provider="github", full_name=name)
    if found is None:
        raise BadRequest(
            f"labci has not seen repository {name!r} yet (it learns repositories from their"
            " webhooks); for a local bare repository, pass its path"
        )
    return found


def _token(settings: Settings) -> str | None:
    return settings.github_token.get_secret_value() if settings.github_token else None
