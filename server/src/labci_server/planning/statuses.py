"""The first `pending` status of each of a run's contexts, and why it waits."""

from __future__ import annotations

from typing import Final

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import JobInstance

from ..db.models import Job, Run
from ..forge.outbox import enqueue_status

AWAITING: Final = "awaiting"
AWAITING_DESCRIPTION: Final = "awaiting approval from a maintainer"


async def queued_statuses(
    session: AsyncSession, run: Run, rows: list[Job], *, run_url: str
) -> None:
    """The first `pending` status of each context with a job still to run: "queued",
    "waiting for …" its needs, or "awaiting approval" while a fork's run is held."""
    for context in dict.fromkeys(row.context for row in rows):
        members = [row for row in rows if row.context == context]
        waiting = [row for row in members if row.state == "waiting"]
        if not waiting and not any(row.state == "pending" for row in members):
            continue
        if run.approval == AWAITING:
            description = AWAITING_DESCRIPTION
        elif waiting:
            needs = ", ".join(JobInstance.model_validate(waiting[0].spec).job.needs)
            description = f"waiting for {needs}"
        else:
            description = "queued"
        await enqueue_status(
            session,
            repository_id=run.repository_id,
            commit_sha=run.commit_sha,
            context=context,
            state="pending",
            description=description,
            target_url=run_url,
        )
