"""Judging a finished context and telling the forge: the stored verdict, the commit status,
and the pull request's comment — all in the caller's transaction, through the outbox."""

from __future__ import annotations

import logging

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import TERMINAL_JOB_STATES, Job, Repository, Run
from ..db.queries.events import get_event
from ..db.queries.runs import get_run, jobs_of_run, metrics_of_jobs
from ..db.queries.verdicts import save_verdict, verdicts_awaiting
from ..forge import check_runs
from ..forge.outbox import enqueue_status
from .comment import context_summary, queue_comment
from .groups import Finished
from .verdict import Judgement, judge

log = logging.getLogger(__name__)


async def judge_and_publish(
    session: AsyncSession, run: Run, context: str, members: list[Job], *, run_url: str
) -> Judgement:
    judgement = await _judge(session, run, context, members)
    await publish(session, run, context, judgement, run_url=run_url)
    return judgement


async def _judge(session: AsyncSession, run: Run, context: str, members: list[Job]) -> Judgement:
    metrics = await metrics_of_jobs(session, [row.id or 0 for row in members])
    finished = [Finished.of(row, metrics.get(row.id or 0, {})) for row in members]
    event = await get_event(session, run.event_id)
    return await judge(
        session,
        run=run,
        event=event,
        context=context,
        members=members,
        finished=finished,
        metrics=metrics,
    )


async def publish(
    session: AsyncSession, run: Run, context: str, judgement: Judgement, *, run_url: str
) -> None:
    details = {
        **judgement.details,
        "state": judgement.state,
        "description": judgement.description,
        "run_url": run_url,
    }
    await save_verdict(
        session,
        {
            "run_id": run.id,
            "repository_id": run.repository_id,
            "commit_sha": run.commit_sha,
            "context": context,
            "phase": judgement.phase,
            "state": judgement.state,
            "description": judgement.description,
            "baseline_sha": judgement.baseline_sha,
            "details": details,
        },
    )
    summary = None
    if check_runs.mirrors(await session.get(Repository, run.repository_id)):
        summary = await context_summary(session, run, context, run_url=run_url)
    await enqueue_status(
        session,
        repository_id=run.repository_id,
        commit_sha=run.commit_sha,
        context=context,
        state=judgement.state,
        description=judgement.description,
        target_url=run_url,
        summary=summary,
    )
    if run.trigger == "pull_request" and run.pr_number is not None:
        await queue_comment(session, run, run_url=run_url)


async def rejudge_awaiting(
    session: AsyncSession,
    *,
    repository_id: int | None = None,
    sha: str | None = None,
    updated_before: float | None = None,
) -> int:
    """Judge again the verdicts waiting for a baseline (at `sha`); returns how many ended."""
    ended = 0
    waiting = await verdicts_awaiting(
        session, repository_id=repository_id, baseline_sha=sha, updated_before=updated_before
    )
    for verdict in waiting:
        run = await get_run(session, verdict.run_id)
        if run is None:
            continue
        members = [
            row
            for row in await jobs_of_run(session, verdict.run_id)
            if row.context == verdict.context
        ]
        if any(row.state not in TERMINAL_JOB_STATES for row in members):
            continue  # seeds being added: judged when they finish
        judgement = await _judge(session, run, verdict.context, members)
        if judgement.phase == "awaiting_baseline":
            continue
        run_url = str(verdict.details.get("run_url") or "")
        await publish(session, run, verdict.context, judgement, run_url=run_url)
        log.info("%s of run %s: judged against the measured baseline", verdict.context, run.id)
        ended += 1
    return ended
