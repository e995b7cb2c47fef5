"""`metrics.baseline: auto`: measure a pull request's base commit once when nothing has.

The first context that finds no baseline stores a `baseline` event for (repository, base
commit, workflow file); its delivery id makes that once, however many contexts and pull
requests ask. The planner runs it like a push to the base branch, limited to the jobs that
report metrics and what they need. Each asking verdict waits (`awaiting_baseline`) and is
judged again when the base's context is done (`rejudge`); a base that cannot be measured
(no such workflow or job there, a failed job, a plan that failed) ends the wait with a
note saying why.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import TERMINAL_JOB_STATES, Event, Run
from ..db.queries.events import event_by_delivery, insert_event
from ..db.queries.runs import jobs_of_context, runs_for_event
from ..forge.base import ZERO_SHA

KIND = "baseline"


@dataclass(frozen=True)
class Progress:
    waiting: bool
    sha: str = ""
    note: str | None = None  # why the base gives no baseline, once that is settled


def delivery_id(repository_id: int, sha: str, workflow_path: str) -> str:
    digest = hashlib.sha256(workflow_path.encode()).hexdigest()[:16]
    return f"baseline:{repository_id}:{sha}:{digest}"


async def progress(session: AsyncSession, *, run: Run, event: Event, context: str) -> Progress:
    """Where measuring the base of `run` stands; starts it when nothing has yet."""
    sha = event.base_sha or ""
    if run.trigger != "pull_request" or not sha or sha == ZERO_SHA:
        return Progress(waiting=False)
    short = sha[:7]
    delivery = delivery_id(run.repository_id, sha, run.workflow_path)
    found = await event_by_delivery(session, delivery)
    if found is None:
        await insert_event(
            session,
            {
                "delivery_id": delivery,
                "provider": event.provider,
                "kind": KIND,
                "workflow_path": run.workflow_path,
                "repository_id": run.repository_id,
                "commit_sha": sha,
                "branch": event.base_branch or "",
            },
        )
        return Progress(waiting=True, sha=sha)
    if found.state == "received":
        return Progress(waiting=True, sha=sha)
    if found.state == "failed":
        return Progress(
            False,
            sha,
            f"measuring the base commit {short} failed: {found.error or 'it could not be planned'}",
        )
    runs = await runs_for_event(session, found.id or 0)
    if not runs:
        what = f"{run.workflow_path} with jobs that report metrics"
        return Progress(False, sha, f"the base commit {short} has no {what}")
    jobs = await jobs_of_context(session, runs[0].id or 0, context)
    if runs[0].error and not jobs:
        first = runs[0].error.splitlines()[0]
        return Progress(False, sha, f"the base commit {short} cannot be measured: {first}")
    if not jobs:
        return Progress(False, sha, f"the base commit {short} has no job for {context}")
    if any(job.state not in TERMINAL_JOB_STATES for job in jobs):
        return Progress(waiting=True, sha=sha)
    states = ", ".join(sorted({job.state for job in jobs}))
    return Progress(
        False, sha, f"the job did not produce metrics at the base commit {short} ({states})"
    )
