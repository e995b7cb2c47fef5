"""Forge deliveries: GitHub webhooks and the local `git` forge's hook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..auth.policies import GITHUB_SIGNATURE, HOOK_TOKEN, policy
from ..context import ServerContext
from ..errors import BadRequest, ConfigError, LabciError
from ..forge.facts import refresh_named
from ..http.signed_body import read_verified_body
from ..results.cancel import cancel_moot_runs
from ..webhooks.approval_comments import approval_comment_delivery
from ..webhooks.github import ended_work, repository_change, to_new_event, verify_delivery
from ..webhooks.gitlocal import (
    BRANCH_DELETED,
    check_repository,
    hook_repository,
    to_local_event,
)
from ..webhooks.ingest import store_event
from ..webhooks.reruns import check_run_delivery
from .bodies import json_object
from .deps import Ctx

router = APIRouter()

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps its own deliveries at 25 MB


class PayloadTooLarge(LabciError):
    status_code = 413


async def read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_secret(sc: ServerContext) -> str:
    if sc.settings.webhook_secret is None:
        raise ConfigError("LABCI_WEBHOOK_SECRET is not set; webhooks cannot be verified")
    return sc.settings.webhook_secret.get_secret_value()


@router.post("/webhooks/github", dependencies=policy(GITHUB_SIGNATURE))
async def github_webhook(request: Request, sc: Ctx) -> JSONResponse:
    # The signature is checked while the body streams to a spooled file: a forged 25 MiB
    # delivery never sits in memory. `verify_delivery` then parses (and checks again).
    body = await read_verified_body(request, webhook_secret(sc), MAX_BODY_BYTES)
    event = verify_delivery(request.headers, body, webhook_secret(sc))
    if event.event == "ping":
        return JSONResponse({"ok": True, "message": "pong"})
    if event.event == "issue_comment":
        status, answer = await approval_comment_delivery(sc, event)
        return JSONResponse(answer, status_code=status)
    if event.event == "check_run":
        status, answer = await check_run_delivery(sc, event)
        return JSONResponse(answer, status_code=status)
    if event.event == "repository":
        names = repository_change(event)
        if isinstance(names, str):
            return JSONResponse({"ignored": names}, status_code=202)
        return JSONResponse({"repositories": await refresh_named(sc, "github", names)}, 202)
    ended = ended_work(event)
    if ended is not None:
        cancelled = await cancel_moot_runs(
            sc,
            provider="github",
            repo_full_name=ended.repo_full_name,
            reason=ended.reason,
            pr_number=ended.pr_number,
            branch=ended.branch,
            before=ended.at,
        )
        return JSONResponse({"ended": ended.reason, "cancelled_runs": cancelled}, 202)
    new = to_new_event(event)
    if isinstance(new, str):
        return JSONResponse({"ignored": new}, status_code=202)
    content = stored_answer(await store_event(sc, new))
    if new.from_fork:
        content["from_fork"] = (
            "pull request from a fork: its jobs run only on docker runners, without secrets,"
            " and wait for a writer's approval unless the repository's policy says otherwise"
        )
    return JSONResponse(content, status_code=202)


@router.post("/webhooks/git", dependencies=policy(HOOK_TOKEN))
async def git_trigger(request: Request, sc: Ctx) -> JSONResponse:
    # The hook's own token, checked before a byte of the body is read.
    repo = await hook_repository(sc, request.headers.get("authorization"))
    data = json_object(await read_capped(request))
    check_repository(data, repo)
    if data.get("kind") == BRANCH_DELETED:
        branch = data.get("branch")
        if not isinstance(branch, str) or not branch:
            raise BadRequest("branch must be a non-empty string")
        reason = f"branch {branch} was deleted"
        cancelled = await cancel_moot_runs(
            sc, provider="git", repo_full_name=repo.full_name, reason=reason, branch=branch
        )
        return JSONResponse({"ended": reason, "cancelled_runs": cancelled}, status_code=202)
    new = to_local_event(data, repo, pr_number=data.get("pr_number"))
    return JSONResponse(stored_answer(await store_event(sc, new)), status_code=202)


def stored_answer(event_id: int | None) -> dict[str, Any]:
    return {"event_id": event_id, "duplicate": event_id is None}
