"""Check runs that mirror labci's commit statuses, for repositories reached through labci's
GitHub App (the checks API is open to Apps only).

Every status labci queues for such a repository also queues the check run of the same
context, reading the same: `pending` is `queued` (or `in_progress` once a job runs), a final
state is `completed` with its conclusion, and the summary is the context's section of the
pull request comment when there is one. The check run's `external_id` is the context, so
its "Re-run" button names what to run again.

In the outbox a check run is a message of kind `check_run` whose context is
`check:<status context>` and whose state is the hash of its content; like the PR comment, it
is upserted, and only its newest unsent version is sent.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import OutboxMessage, Repository
from ..db.queries import outbox as queries
from .base import CheckRunMessage

KIND = "check_run"
PREFIX = "check:"
CONCLUSIONS = {"success": "success", "failure": "failure", "error": "failure"}


def mirrors(repo: Repository | None) -> bool:
    """Whether statuses of `repo` get check runs: labci reached it as an installed App."""
    return repo is not None and repo.provider == "github" and repo.installation_id is not None


def check_run_of_status(
    *,
    commit_sha: str,
    context: str,
    state: str,
    description: str,
    target_url: str | None,
    summary: str | None,
) -> CheckRunMessage:
    if state == "pending":
        status = "in_progress" if description.startswith("running") else "queued"
        conclusion = None
    else:
        status, conclusion = "completed", CONCLUSIONS.get(state, "neutral")
    return CheckRunMessage(
        head_sha=commit_sha,
        name=context,
        external_id=context,
        status=status,
        conclusion=conclusion,
        title=description,
        summary=summary or description,
        details_url=target_url,
    )


def message_of(row: OutboxMessage) -> CheckRunMessage:
    return CheckRunMessage(**json.loads(row.body or "{}"))


async def enqueue_check_run(
    session: AsyncSession, *, repository_id: int, message: CheckRunMessage
) -> None:
    """Store the check run as it should read now; older unsent versions are superseded."""
    body = json.dumps(asdict(message), sort_keys=True)
    state = hashlib.sha256(body.encode()).hexdigest()[:40]
    context = PREFIX + message.name
    earlier = await queries.messages_for_context(
        session, repository_id=repository_id, commit_sha=message.head_sha, context=context
    )
    live = [m for m in earlier if m.status in ("pending", "sent")]
    if live and live[-1].state == state:
        return
    for row in earlier:
        if row.status == "pending":
            row.status = "superseded"
            session.add(row)
    same = [m for m in earlier if m.state == state]
    if same:  # back to what it read before (a re-run with the same outcome): send again
        row = same[0]
        row.status, row.attempts, row.next_attempt_at = "pending", 0, time.time()
        row.claimed_until, row.last_error = None, None
        session.add(row)
        return
    await queries.insert_message(
        session,
        {
            "repository_id": repository_id,
            "kind": KIND,
            "commit_sha": message.head_sha,
            "context": context,
            "state": state,
            "description": message.title,
            "target_url": message.details_url,
            "body": body,
        },
    )
