"""Contexts an earlier head of a pull request showed, and its new head does not run.

Branch protection waits for every required context on the head commit; a workflow that
path filters skip on a later push would leave its context waiting forever. So for each
context that an earlier head of the pull request had, and that the new head neither runs
nor already shows, the new head gets a final `success` saying why it was not run.
"""

from __future__ import annotations

from dataclasses import replace

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import EventFacts, Workflow, workflow_matches

from ..db.models import Event
from ..db.queries.pull_requests import contexts_of_other_heads, status_contexts_at
from ..forge.outbox import enqueue_status

# Actions that bring a new head commit; others (edited, labeled) change no commit.
NEW_HEAD_ACTIONS = ("opened", "synchronize", "reopened")


def why_not_run(workflow: Workflow | None, facts: EventFacts) -> str:
    if workflow is None:
        return "skipped: the workflow is not at this commit"
    if workflow_matches(workflow, replace(facts, changed_files=None)):
        return "skipped: no matching paths"  # only the path filters said no
    if workflow_matches(workflow, facts):
        return "skipped: not in the workflow at this commit"
    return "skipped: the workflow does not run for this event"


async def settle_vanished(
    session: AsyncSession,
    event: Event,
    *,
    workflows: dict[str, Workflow],
    facts: EventFacts,
    target_url: str | None,
) -> int:
    """Queue the final status of every vanished context; returns how many."""
    if event.kind != "pull_request" or event.pr_number is None:
        return 0
    if (event.action or "opened") not in NEW_HEAD_ACTIONS:
        return 0
    earlier = await contexts_of_other_heads(session, event)
    shown = await status_contexts_at(session, event.repository_id, event.commit_sha)
    count = 0
    for context, path in earlier.items():
        if context in shown:
            continue
        await enqueue_status(
            session,
            repository_id=event.repository_id,
            commit_sha=event.commit_sha,
            context=context,
            state="success",
            description=why_not_run(workflows.get(path), facts),
            target_url=target_url,
        )
        count += 1
    return count
