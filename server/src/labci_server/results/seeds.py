"""Adaptive repeats, the asking side: more seeds for a context of an existing run.

A `seeds` event names a run, one of its contexts and how many seeds it should have in all
(`metrics.repeats.max`); the planner (`planning.seeds`) adds the missing seed jobs to that
run. The head's run and the baseline's run (at the base commit) each get one, so the seeds
measured on a base commit stay in its run and every later pull request on that base
reuses them. The delivery id makes each request once per (run, context).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import TERMINAL_JOB_STATES, Run
from ..db.queries.events import event_by_delivery, insert_event
from ..db.queries.runs import jobs_of_context

KIND = "seeds"


@dataclass(frozen=True)
class Request:
    """Where a run's request for more seeds stands."""

    asked: bool  # an event exists for this (run, context)
    settled: bool  # planned (or failed) and every seed job of the context is terminal


def delivery_id(run_id: int, context: str) -> str:
    digest = hashlib.sha256(context.encode()).hexdigest()[:16]
    return f"seeds:{run_id}:{digest}"


async def request(
    session: AsyncSession, *, run: Run, provider: str, context: str, upto: int
) -> None:
    """Ask for `upto` seeds in all for `context` of `run` (once; later asks are no-ops)."""
    await insert_event(
        session,
        {
            "delivery_id": delivery_id(run.id or 0, context),
            "provider": provider,
            "kind": KIND,
            "workflow_path": run.workflow_path,
            "repository_id": run.repository_id,
            "commit_sha": run.commit_sha,
            "branch": run.branch,
            "inputs": {"run_id": run.id, "context": context, "upto": upto},
        },
    )


async def status(session: AsyncSession, *, run_id: int, context: str) -> Request:
    found = await event_by_delivery(session, delivery_id(run_id, context))
    if found is None:
        return Request(asked=False, settled=True)
    if found.state == "received":
        return Request(asked=True, settled=False)
    jobs = await jobs_of_context(session, run_id, context)
    return Request(asked=True, settled=all(job.state in TERMINAL_JOB_STATES for job in jobs))
