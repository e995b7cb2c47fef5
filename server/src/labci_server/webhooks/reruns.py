"""`check_run` webhooks: the "Re-run" button of one of labci's check runs."""

from __future__ import annotations

from typing import Any

from gidgethub.sansio import Event as GitHubEvent

from ..context import ServerContext
from ..results.rerun import rerun_context
from .github_checks import parse_check_run

MAX_LOGIN_CHARS = 39  # GitHub's limit for a login


async def check_run_delivery(sc: ServerContext, event: GitHubEvent) -> tuple[int, dict[str, Any]]:
    """The answer to a `check_run` delivery: (HTTP status, body)."""
    app_id = sc.settings.github_app_id
    if not app_id:
        return 202, {"ignored": "check_run: labci is not set up as a GitHub App"}
    request = parse_check_run(event.data, app_id=app_id)
    if request is None:
        return 202, {"ignored": "check_run: not a re-run of one of labci's check runs"}
    sender = event.data.get("sender") if isinstance(event.data, dict) else None
    login = sender.get("login") if isinstance(sender, dict) else None
    who = "@" + login[:MAX_LOGIN_CHARS] if isinstance(login, str) and login else "someone"
    context = request.external_id or request.name  # labci's external id is the context
    run_id = await rerun_context(
        sc,
        provider="github",
        repo_full_name=request.repo_full_name,
        commit_sha=request.head_sha,
        context=context,
        who=who,
    )
    if run_id is None:
        return 202, {"ignored": f"nothing to re-run for {request.name!r} (unknown or still going)"}
    return 202, {"rerun": {"run_id": run_id, "context": context}}
