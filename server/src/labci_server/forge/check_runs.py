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

import json
from dataclasses import asdict

from ..db.models import OutboxMessage, Repository
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


def body_of(message: CheckRunMessage) -> str:
    """The outbox body of a check run: its fields as JSON, in a stable order."""
    return json.dumps(asdict(message), sort_keys=True)


def message_of(row: OutboxMessage) -> CheckRunMessage:
    return CheckRunMessage(**json.loads(row.body or "{}"))
