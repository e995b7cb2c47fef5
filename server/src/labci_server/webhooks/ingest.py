"""Store a verified event and hand it to planning; the reply waits only for the commit."""

from __future__ import annotations

import logging

from ..context import ServerContext
from ..db.queries.events import insert_event, pull_request_number
from ..db.queries.repositories import ensure_repository
from ..errors import BadRequest
from ..queue import enqueue_plan, unless_redis_is_down
from .github import NewEvent

log = logging.getLogger(__name__)


async def store_event(sc: ServerContext, new: NewEvent) -> int | None:
    """Commit the event; returns its id, or None for a delivery seen before.

    A NUL character in any of its text (which PostgreSQL cannot store) is the sender's
    mistake: a 400, not a 5xx that the forge would retry forever.

    A failure to enqueue after the commit is not the forge's problem: the reconciler
    plans every event left in `received`.
    """
    for name, value in vars(new).items():
        if isinstance(value, str) and "\x00" in value:
            raise BadRequest(f"{name} contains a NUL character")
    async with sc.sessions() as session, session.begin():
        repo = await ensure_repository(
            session,
            provider=new.provider,
            full_name=new.repo_full_name,
            clone_url=new.clone_url,
            private=new.private,
            # An installation is labci's to use only when labci is that App: a labci that
            # holds a token must not mirror statuses as check runs (forge/check_runs.py).
            installation_id=new.installation_id if sc.settings.github_app_id else None,
        )
        pr_number = new.pr_number
        if new.kind == "pull_request" and pr_number is None:
            pr_number = await pull_request_number(
                session,
                repository_id=repo.id or 0,
                head_branch=new.branch,
                base_branch=new.base_branch or "",
            )
        event_id = await insert_event(
            session,
            {
                "delivery_id": new.delivery_id,
                "provider": new.provider,
                "kind": new.kind,
                "action": new.action,
                "repository_id": repo.id,
                "commit_sha": new.commit_sha,
                "branch": new.branch,
                "base_branch": new.base_branch,
                "base_sha": new.base_sha,
                "pr_number": pr_number,
                "workflow_path": new.workflow_path,
                "inputs": new.inputs,
                "from_fork": new.from_fork,
                "author_association": new.author_association,
                "sender": new.sender,
                "title": new.title,
            },
        )
    if event_id is None:
        return event_id
    try:
        # Redis away: the outage is logged once (redis_outage), not once per delivery.
        with unless_redis_is_down(f"planning of event {event_id}"):
            await enqueue_plan(sc.redis, event_id)
    except Exception:  # noqa: BLE001 — Redis trouble must not turn a stored event into a 5xx
        log.exception("could not enqueue planning of event %s; the reconciler will", event_id)
    return event_id
